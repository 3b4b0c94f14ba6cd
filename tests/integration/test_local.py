"""`make local` runs `mlflow-launcher local`: SQLite + a local artifact folder, no AWS."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import urllib.request
from pathlib import Path

import itest_launcher as launcher
import pytest
from itest_servers import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_make_local_runs_the_launcher_from_the_image_venv():
    recipe = re.search(r"^local:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "Makefile has no `local` target"
    assert "$(IMAGE_VENV)/bin/mlflow-launcher local" in recipe.group(1)


def start_local(tmp_path: Path, own_group: bool = False) -> launcher.Server:
    venv = launcher.image_venv()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_LOCAL_DIR": str(tmp_path / "preview"),
        "MLFLOW_PORT": str(free_port()),
    }
    # Nothing about AWS or a database may be needed.
    assert not any(k.startswith(("AWS_", "MLFLOW_DB_")) for k in env)
    command = [str(venv / "bin" / "mlflow-launcher"), "local"]
    return launcher.Server(env, tmp_path / "local.log", command=command, own_group=own_group)


def test_local_preview_serves_health_and_api(tmp_path):
    server = start_local(tmp_path)
    port = server.port
    try:
        server.wait_healthy(timeout=120)
        request = urllib.request.Request(  # noqa: S310 - http on loopback
            f"{server.base_url}/api/2.0/mlflow/experiments/create",
            data=json.dumps({"name": "preview"}).encode(),
            headers={"Content-Type": "application/json", "Host": f"localhost:{port}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            experiment_id = json.load(response)["experiment_id"]
        status, body = server.get(
            f"/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", f"127.0.0.1:{port}"
        )
        assert status == 200 and json.loads(body)["experiment"]["name"] == "preview"
    finally:
        server.stop()
    assert (tmp_path / "preview" / "mlflow.db").is_file()
    assert (tmp_path / "preview" / "artifacts").is_dir()
    assert f"http://127.0.0.1:{port}" in server.logs()


def test_ctrl_c_stops_the_preview_cleanly(tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the whole foreground group. With a browser's
    keep-alive connection open, MLflow's CLI and uvicorn used to both take it and uvicorn's
    shutdown was cut off with a CancelledError traceback and a non-zero status."""
    server = start_local(tmp_path, own_group=True)
    try:
        server.wait_healthy(timeout=120)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as browser:
            browser.sendall(
                f"GET /health HTTP/1.1\r\nHost: localhost:{server.port}\r\n"
                "Connection: keep-alive\r\n\r\n".encode()
            )
            assert browser.recv(4096).startswith(b"HTTP/1.1 200")
            tree = server.process_tree()
            assert len(tree) > 1, "the launcher runs the server as its child"
            os.killpg(server.proc.pid, signal.SIGINT)
            status = server.proc.wait(timeout=60)
    finally:
        server.stop()
    logs = server.logs()
    assert status == 0, logs
    assert "Traceback" not in logs and "CancelledError" not in logs, logs
    assert "stopped" in logs
    # Nothing of the server outlives the launcher.
    assert not [pid for pid in tree if launcher.running(pid)]
