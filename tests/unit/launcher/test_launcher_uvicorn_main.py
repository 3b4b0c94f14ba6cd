"""What uvicorn's supervisor imports before it forks the workers (uvicorn_main.PRELOAD), in the
image's Python: no thread (a fork copies a lock another thread holds, held forever), and none of
the modules the launcher's app factory must patch before they are imported, in each worker:
mlflow.server.auth (it makes its store on import) and its sqlalchemy_store, which binds
mlflow.store.db.utils._get_routing_session_maker by name (app.py `_replica_for_searches` patches
it first, so that sign-in reads stay on the primary). An MLflow upgrade that pulls them into the
preload fails here; the read replica's tests run one worker, which is never forked."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
IMAGE_PYTHON = ROOT / ".venv-image" / "bin" / "python"
LAUNCHER_SRC = ROOT / "image" / "launcher" / "src"

PROBE = """
import importlib, json, sys, threading
from mlflow_launcher import uvicorn_main
for module in uvicorn_main.PRELOAD:
    importlib.import_module(module)
print(json.dumps({
    "threads": [t.name for t in threading.enumerate()],
    "modules": sorted(m for m in sys.modules if m.startswith("mlflow")),
}))
"""


def test_the_preload_starts_no_thread_and_leaves_what_the_factory_patches():
    done = subprocess.run(
        [str(IMAGE_PYTHON), "-W", "ignore", "-c", PROBE],
        env={"PYTHONPATH": str(LAUNCHER_SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["threads"] == ["MainThread"]
    assert "mlflow.server.fastapi_app" in found["modules"]  # the preload did import MLflow
    patched_first = {"mlflow.server.auth", "mlflow.server.auth.sqlalchemy_store"}
    assert not patched_first & set(found["modules"])
