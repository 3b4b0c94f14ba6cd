"""`make local` runs `mlflow-launcher local`: SQLite + a local artifact folder, no AWS."""

from __future__ import annotations

import json
import re
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


def test_local_preview_serves_health_and_api(tmp_path):
    venv = launcher.image_venv()
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_LOCAL_DIR": str(tmp_path / "preview"),
        "MLFLOW_PORT": str(port),
    }
    # Nothing about AWS or a database may be needed.
    assert not any(k.startswith(("AWS_", "MLFLOW_DB_")) for k in env)
    server = launcher.Server(
        env, tmp_path / "local.log", command=[str(venv / "bin" / "mlflow-launcher"), "local"]
    )
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
