"""Deployment settings: the typed model and the YAML loader (the config boundary)."""

from config.loader import ConfigError, check_context, load_settings, parse_settings
from config.settings import SUPPORTED_KUBERNETES_VERSIONS, Settings

__all__ = [
    "SUPPORTED_KUBERNETES_VERSIONS",
    "ConfigError",
    "Settings",
    "check_context",
    "load_settings",
    "parse_settings",
]
