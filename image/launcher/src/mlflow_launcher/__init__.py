"""Entrypoint of the MLflow server image.

``mlflow-launcher migrate`` (the migration Job), ``mlflow-launcher wait-schema`` (the server
pods' init container) and ``mlflow-launcher serve`` (the server container) read their settings
from the environment the chart's ConfigMap provides, fetch the database credentials from Secrets
Manager, connect with TLS verification, and either bring the schema to head under a database
advisory lock, wait for it there, or exec ``mlflow server`` with the store URI in the
environment only. ``mlflow-launcher local`` previews the same server on SQLite, without AWS.
"""

__all__ = ["LauncherError"]

from mlflow_launcher.errors import LauncherError
