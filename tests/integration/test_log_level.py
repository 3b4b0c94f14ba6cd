"""`server.log_level` from the config file to the running server's log: the synthesized
ConfigMap carries it, the launcher hands it to MLflow and uvicorn, and the log says as much."""

from __future__ import annotations

import urllib.request

import itest_launcher as launcher
import pytest
from itest_chart import anonymous_server_env

pytestmark = pytest.mark.integration

ACCESS_LINE = '"GET /health HTTP/1.1" 200'
"""uvicorn's access log line for a request (its INFO level)."""


def _served_log(env: dict[str, str], log) -> str:
    server = launcher.Server(env, log)
    try:
        server.wait_healthy()
        for _ in range(3):
            with urllib.request.urlopen(f"{server.base_url}/health", timeout=10) as answer:  # noqa: S310
                assert answer.status == 200
    finally:
        server.stop()
    return server.logs()


def test_the_log_level_reaches_mlflow_and_uvicorn(mariadb, new_database, moto, test_ca, tmp_path):
    env = anonymous_server_env(
        {"log_level": "warning"}, "log-level", tmp_path, mariadb, new_database, moto, test_ca
    )
    assert env["MLFLOW_LOG_LEVEL"] == "warning"  # the ConfigMap's, from the config file

    quiet = _served_log(env, tmp_path / "warning.log")
    # uvicorn's INFO lines (its start, a line per request) are gone.
    assert ACCESS_LINE not in quiet, quiet
    assert "Uvicorn running on" not in quiet, quiet

    # The same pod at info, the default: they are there. (MLflow's own loggers get the level
    # through MLFLOW_LOGGING_LEVEL: tests/unit/launcher/test_launcher_server.py.)
    loud = _served_log(env | {"MLFLOW_LOG_LEVEL": "info"}, tmp_path / "info.log")
    assert ACCESS_LINE in loud, loud
    assert "Uvicorn running on" in loud, loud
