"""The uvicorn start an API pod execs is the one MLflow's own CLI would exec, setting by setting.

`serve` starts uvicorn without MLflow's CLI (mlflow_launcher.uvicorn_start.plan). What the CLI
gives uvicorn (its command line and the variables its workers read) is taken here from MLflow's
CLI itself: the installed MLflow's `mlflow server` runs with the same settings up to its start
of uvicorn, caught there (uvicorn_start.via_mlflow_cli, which also serves `server.extra_args`);
both then run through uvicorn_main, which only changes the exit status of a graceful stop.
Both must agree exactly, but for the per-start boot ID, for every combination the chart can
set; an MLflow upgrade that changes what the CLI gives its workers fails here. That the started
server answers, signs in and drains is shown by the tests that serve (test_chart_wiring,
test_auth, test_drain).
"""

from __future__ import annotations

import json

import itest_launcher as launcher
import pytest
from itest_chart import container_env, pod

pytestmark = pytest.mark.integration

CASES = {
    "plain": {},
    "browser origins": {"cors_allowed_origins": ["https://mlflow.example.com"]},
    "workspaces": {"workspaces": True},
    "replica": {"replica": True},
    "frame options": {"extra_env": {"MLFLOW_SERVER_X_FRAME_OPTIONS": "DENY"}},
    "trace archival": {"trace_archival": True},
    "everything": {
        "cors_allowed_origins": ["https://a.example.com", "https://b.example.com"],
        "workspaces": True,
        "replica": True,
        "extra_env": {"MLFLOW_SERVER_X_FRAME_OPTIONS": "NONE"},
        "trace_archival": True,
    },
}

# In the image's Python: for each case, the launcher's plan and what MLflow's CLI would start.
COMPARE = """
import json, sys
from pathlib import Path
from mlflow.server import handlers
from mlflow_launcher import server, settings, trace_archival, uvicorn_start

folder, cases, pod_env = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = {}
for n, (name, case) in enumerate(cases.items()):
    # `mlflow server` makes its stores once per process, and caches them by URI: each case
    # needs its own, so each names the one database its own way.
    handlers._tracking_store = handlers._model_registry_store = None
    store = f"sqlite:///{folder}/{'./' * n}mlflow.db"
    srv = settings.ServerEnvironment(
        host="0.0.0.0", port=5000, workers=2, artifacts_destination="s3://bucket/artifacts",
        allowed_hosts=("mlflow", "mlflow.ns.svc", "*.elb.amazonaws.com"),
        cors_allowed_origins=tuple(case.get("cors_allowed_origins", ())),
        workspaces=case.get("workspaces", False), job_role="submit",
    )
    features = {}
    if case.get("trace_archival"):
        archival = trace_archival.TraceArchival("30d", f"file://{folder}/archive", 3600)
        features = trace_archival.server_env(trace_archival.write_config(Path(folder), archival))
    env = server.server_env(
        {**pod_env, "PATH": "/usr/bin", "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32}, store,
        secrets=features, read_uri=store if case.get("replica") else None,
        extra=case.get("extra_env"),
    )
    ours = server.server_start(srv, env)
    theirs = uvicorn_start.ending_with_zero(
        uvicorn_start.via_mlflow_cli(server.server_argv(srv)[3:], env)
    )
    out[name] = {"ours": [ours.argv, ours.env], "mlflow": [theirs.argv, theirs.env]}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def starts(tmp_path_factory, synth):
    """Each case's two starts, from one run of the image's Python (one MLflow import) on one
    SQLite database, which MLflow's CLI creates on its first case; in the environment the
    default chart gives the server container (its ConfigMap: the counters' folder among it)."""
    _, [_, server_container] = pod(synth("default"))
    folder = tmp_path_factory.mktemp("store")
    pod_env = json.dumps(container_env(synth("default"), server_container))
    done = launcher.image_python("-c", COMPARE, str(folder), json.dumps(CASES), pod_env)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES)
def test_the_launcher_starts_uvicorn_as_mlflows_cli_would(starts, case):
    (our_argv, our_env), (their_argv, their_env) = starts[case]["ours"], starts[case]["mlflow"]
    assert our_argv == their_argv
    # uvicorn's command line, through the module that ends it with 0 after a graceful stop.
    assert our_argv[1:3] == ["-m", "mlflow_launcher.uvicorn_main"]
    boot = "_MLFLOW_SERVER_BOOT_ID"
    assert len(our_env.pop(boot)) == len(their_env.pop(boot)) == 32
    assert our_env == their_env


def test_every_case_sets_what_it_names(starts):
    """The cases differ where they should, so agreement is not agreement on a default."""
    env = {name: start["ours"][1] for name, start in starts.items()}
    assert "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS" not in env["plain"]
    assert env["browser origins"]["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"] == (
        "https://mlflow.example.com"
    )
    assert env["plain"]["MLFLOW_ENABLE_WORKSPACES"] == "false"
    assert env["workspaces"]["MLFLOW_ENABLE_WORKSPACES"] == "true"
    assert "_MLFLOW_SERVER_READ_REPLICA_BACKEND_STORE" not in env["plain"]
    assert env["replica"]["_MLFLOW_SERVER_READ_REPLICA_BACKEND_STORE"].startswith("sqlite:")
    assert env["plain"]["MLFLOW_SERVER_X_FRAME_OPTIONS"] == "SAMEORIGIN"
    assert env["plain"]["prometheus_multiproc_dir"] == env["plain"]["MLFLOW_EXPOSE_PROMETHEUS"]
    assert env["frame options"]["MLFLOW_SERVER_X_FRAME_OPTIONS"] == "DENY"
    assert "MLFLOW_TRACE_ARCHIVAL_CONFIG" not in env["plain"]
    assert env["trace archival"]["MLFLOW_TRACE_ARCHIVAL_CONFIG"].endswith(".yaml")
    assert env["everything"]["MLFLOW_SERVER_ALLOWED_HOSTS"] == (
        "mlflow,mlflow.ns.svc,*.elb.amazonaws.com"
    )
