"""Entrypoint of the MLflow server image.

``mlflow-launcher migrate`` (the Deployment's initContainer) and ``mlflow-launcher serve`` (the
server container) read their settings from the environment the chart's ConfigMap provides, fetch
the database credentials from Secrets Manager, connect with TLS verification, and either bring the
schema to head under a database advisory lock or exec ``mlflow server`` with the store URI in the
environment only. ``mlflow-launcher local`` previews the same server on SQLite, without AWS.
"""

__all__ = ["LauncherError"]

from mlflow_launcher.errors import LauncherError
