"""Files the launcher writes for MLflow into the pod's scratch space, and MLflow's own files."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mlflow_launcher.errors import LauncherError


def write_private(path: Path, text: str) -> Path:
    """`text` into `path`, readable by this user only from the moment it exists (created with
    mode 0600, not chmod'ed after): the pod's scratch space is shared by its containers."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def mlflow_file(*parts: str) -> Path:
    """A file of the installed MLflow package, found without importing MLflow: its server's
    import costs seconds of CPU, which the launcher spends only where it must."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or spec.origin is None:
        raise LauncherError("MLflow is not installed in this environment")
    return Path(spec.origin).parent.joinpath(*parts)
