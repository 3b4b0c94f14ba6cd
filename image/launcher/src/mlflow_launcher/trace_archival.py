"""MLflow's server-owned trace archival, from the contract's MLFLOW_TRACE_ARCHIVAL_* variables.

MLflow 3.17 moves the spans of traces older than a retention out of the database into an
artifact location, and reads them back from there when a trace is opened
(mlflow/tracing/trace_archival_service.py). It takes its settings from a YAML file that
MLFLOW_TRACE_ARCHIVAL_CONFIG names (mlflow/tracing/trace_archival_config.py): the launcher
writes that file into the pod's scratch space at start, in every pod, since every pod answers
reads of archived traces and reports archival in /server-info; only the job runner archives
(its periodic task). MLflow's CLI validates the file before it starts the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlflow_launcher import contract
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.files import write_private
from mlflow_launcher.settings import parse

CONFIG_FILE = "mlflow-trace-archival.yaml"
CONFIG_ENV: str = contract.TRACE_ARCHIVAL_CONFIG_FLAG.envvar  # type: ignore[assignment]


@dataclass(frozen=True)
class TraceArchival:
    retention: str
    location: str
    interval_seconds: int


def load(env: Mapping[str, str]) -> TraceArchival | None:
    """None when archival is off (no retention). A retention needs its location."""
    v = contract
    values = parse(env, *v.TRACE_ARCHIVAL)
    retention = values[v.TRACE_ARCHIVAL_RETENTION.name]
    location = values[v.TRACE_ARCHIVAL_LOCATION.name]
    if retention is None:
        return None
    if location is None:
        raise LauncherError(
            f"invalid environment: {v.TRACE_ARCHIVAL_RETENTION.name} is set but "
            f"{v.TRACE_ARCHIVAL_LOCATION.name} is not: archival needs a place for the spans"
        )
    return TraceArchival(retention, location, values[v.TRACE_ARCHIVAL_INTERVAL_SECONDS.name])


def write_config(directory: Path, archival: TraceArchival) -> Path:
    """The file MLflow reads, in MLflow's format (trace_archival: enabled, location,
    retention, interval_seconds)."""
    path = directory / CONFIG_FILE
    config = {
        "trace_archival": {
            "enabled": True,
            "location": archival.location,
            "retention": archival.retention,
            "interval_seconds": archival.interval_seconds,
        }
    }
    return write_private(path, yaml.safe_dump(config, sort_keys=False))


def server_env(config_path: Path) -> dict[str, str]:
    """What `mlflow server` reads: the file's path (its --trace-archival-config option's
    variable)."""
    return {CONFIG_ENV: str(config_path)}
