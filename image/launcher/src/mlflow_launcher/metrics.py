"""Prometheus metrics: `mlflow server --expose-prometheus` writes each worker's counters into a
directory on the pod's scratch space; `mlflow-launcher metrics` (the pod's `metrics` container)
serves their sum on its own port.

Why not MLflow's own /metrics: with authentication on, MLflow serves it to admins only (its
auth app refuses routes it has no rule for), and a scraper should not hold an admin login. The
counters say how many requests of which kind and status, and how long they took: no data, no
names, so the port needs no login; the NetworkPolicy decides who may reach it.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from mlflow_launcher.errors import LauncherError

log = logging.getLogger(__name__)

METRICS_DIR_ENV = "MLFLOW_EXPOSE_PROMETHEUS"
PORT_ENV = "MLFLOW_METRICS_PORT"


def reset_directory(env: Mapping[str, str]) -> None:
    """prometheus_client's multiprocess mode sums every file in the directory: the files of a
    container this pod ran before (a restart keeps the emptyDir) would add dead workers'
    counts for good. Emptied before the server starts."""
    path = env.get(METRICS_DIR_ENV, "").strip()
    if not path:
        return
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """A scrape every few seconds is not news."""


def serve(env: Mapping[str, str]) -> None:
    """Serve the workers' summed counters on 0.0.0.0:MLFLOW_METRICS_PORT until SIGTERM."""
    directory = env.get(METRICS_DIR_ENV, "").strip()
    raw_port = env.get(PORT_ENV, "").strip()
    if not directory or not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        raise LauncherError(
            f"{METRICS_DIR_ENV} (the counters directory) and {PORT_ENV} (a port) must be set; "
            f"got {directory!r} and {raw_port!r}"
        )
    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.multiprocess import MultiProcessCollector

    Path(directory).mkdir(parents=True, exist_ok=True)  # the server may not have started yet
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    address = "0.0.0.0"  # noqa: S104 - the pod's port, fenced by the NetworkPolicy
    httpd = make_server(address, int(raw_port), make_wsgi_app(registry), handler_class=_Quiet)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("serving the server's metrics from %s on port %s", directory, raw_port)
    with httpd:
        httpd.serve_forever()
