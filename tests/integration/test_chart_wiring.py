"""Chart <-> image wiring: the synthesized ConfigMap and Deployment, run as the container runs
them (image/Dockerfile's ENTRYPOINT + each container's args), against MariaDB/PostgreSQL, S3 and
Secrets Manager stand-ins. Only endpoints are substituted; everything else is the chart's.

The real MLflow client then logs params, metrics, an artifact directory and a registered model
version; the rows are checked in the database and the objects in the bucket; the pod is
"restarted" (initContainer again, then the server) and everything is read back.
"""

from __future__ import annotations

from pathlib import Path

import itest_launcher as launcher
import pytest
from itest_browser import OTHER_NLB_HOST
from itest_chart import LOAD_BALANCER_HOSTS, container_env, pod, substitute_endpoints
from itest_servers import PORT_80

pytestmark = [pytest.mark.integration, PORT_80]

CONFIG_FOR_ENGINE = {"mysql": "default", "postgres": "postgres"}
# Every character the contract names, plus non-ASCII (4-byte UTF-8 included).
NASTY_PASSWORD = "@:/?#[]%&+=' \"\\ pässwörd-密码-🔑 end"


# Host headers as clients send them, in the formats AWS and Kubernetes give the names:
# the ClusterIP Service's FQDN, the internal NLB's DNS name as the deploy reads it back
# (itest_chart), and what `kubectl port-forward svc/mlflow 5000:80` sends.
SERVICE_HOST = "mlflow.mlflow.svc.cluster.local"
NLB_HOST = LOAD_BALANCER_HOSTS["internal"]
PORT_FORWARD_HOST = "localhost:5000"
# Refused: a foreign name, another region's NLB, another NLB of this region, and an ALB/CLB-form
# name the chart never makes.
DENIED_HOSTS = (
    "attacker.example.com",
    NLB_HOST.replace("eu-west-1", "us-east-1"),
    OTHER_NLB_HOST,  # another NLB of this region: the region's every name was once allowed
    "k8s-mlflow-mlflow-4f8a2b1c9d-1234567890.eu-west-1.elb.amazonaws.com",
)


def _client_env(server_env: dict[str, str], tracking_uri: str) -> dict[str, str]:
    """A user's machine: no AWS credentials, no S3 endpoint, nothing of the server's."""
    keep = ("PATH", "HOME", "TMPDIR", "LANG")
    env = {key: server_env[key] for key in keep if key in server_env}
    assert not [k for k in env if k.startswith(("AWS_", "MLFLOW_S3_"))]
    return {**env, "MLFLOW_TRACKING_URI": tracking_uri}


def _db_rows(target, run_id: str) -> dict:
    # Fixed test values only (run ids are hex), so plain string SQL is fine here.
    key = "`key`" if target.server.engine == "mysql" else '"key"'
    where = f"WHERE run_uuid = '{run_id}'"
    db = target.server
    params = db.query(target.name, f"SELECT {key}, value FROM params {where}")  # noqa: S608
    metrics = db.query(
        target.name,
        f"SELECT value FROM metrics {where} AND {key} = 'loss' ORDER BY step",  # noqa: S608
    )
    return {
        "params": dict(params),
        "metrics": [float(v) for (v,) in metrics],
        "versions": db.query(target.name, "SELECT name, version, run_id FROM model_versions"),
    }


@pytest.mark.parametrize("engine", ["mysql", "postgres"])
def test_chart_runs_against_real_servers(
    engine, synth, request, new_database, moto, test_ca, tmp_path
):
    server_fixture = request.getfixturevalue("mariadb" if engine == "mysql" else "postgres")
    chart = synth(CONFIG_FOR_ENGINE[engine])
    _, (init, main) = pod(chart)
    assert init["args"] == ["migrate"] and main["args"] == ["serve"]
    assert "command" not in init and "command" not in main, "command would bypass the ENTRYPOINT"

    chart_env = container_env(chart, main)
    assert chart_env["MLFLOW_DB_ENGINE"] == engine
    target = new_database(server_fixture, password=NASTY_PASSWORD, name=chart_env["MLFLOW_DB_NAME"])
    bucket = moto.create_bucket()
    home = tmp_path / "home"
    init_env = launcher.container_env(
        substitute_endpoints(container_env(chart, init), target, moto, test_ca.ca, bucket), home
    )
    main_env = launcher.container_env(
        substitute_endpoints(chart_env, target, moto, test_ca.ca, bucket), home
    )
    main_env["MLFLOW_PORT"] = init_env["MLFLOW_PORT"]
    output = []

    def start_pod(log: Path) -> launcher.Server:
        migrate = launcher.run(init["args"], init_env)
        output.append(migrate.stderr + migrate.stdout)
        assert migrate.returncode == 0, migrate.stderr
        server = launcher.Server(main_env, log)
        server.wait_healthy(timeout=120)
        return server

    # ---- first pod: migrate, serve, log through the real client ----
    server = start_pod(tmp_path / "server-1.log")
    assert "migrated schema from empty to head" in output[0]
    allowed = NLB_HOST
    try:
        for host in (SERVICE_HOST, NLB_HOST, PORT_FORWARD_HOST):
            status, body = server.get("/api/2.0/mlflow/experiments/search?max_results=5", host)
            assert status == 200, (host, body)
        for host in DENIED_HOSTS:
            status, _ = server.get("/api/2.0/mlflow/experiments/search?max_results=5", host)
            assert status == 403, host
        client_env = _client_env(main_env, server.base_url)
        written = launcher.mlflow_client(
            client_env, "write", server.base_url, allowed, str(tmp_path / "w")
        )
        assert written["mlflow"].startswith("3.17.")
        # Proxied artifacts: the client never needs (and here has no) AWS credentials.
        assert written["artifact_uri"].startswith("mlflow-artifacts:"), written["artifact_uri"]

        # No password in any argv of the server's process tree (tini, mlflow CLI, uvicorn...).
        tree = server.process_tree()
        cmdlines = [
            Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            for pid in tree
            if Path(f"/proc/{pid}/cmdline").exists()
        ]
        assert any("tini" in c for c in cmdlines) and any("uvicorn" in c for c in cmdlines)
        for cmdline in cmdlines:
            launcher.assert_no_secret(cmdline, NASTY_PASSWORD, "a server process's argv")
    finally:
        server.stop()
    output.append(server.logs())

    run_id = written["run_id"]
    rows = _db_rows(target, run_id)
    assert rows["params"] == {"alpha": "0.5", "optimizer": "adam"}
    assert rows["metrics"] == [0.9, 0.5, 0.25]
    assert rows["versions"] == [["wiring-model", "1", run_id]]

    objects = moto.objects(bucket)
    by_suffix = {key.split(f"{run_id}/artifacts/", 1)[-1]: body for key, body in objects.items()}
    assert all(k.startswith(f"artifacts/{written['experiment_id']}/{run_id}/") for k in objects)
    assert by_suffix["outputs/a.txt"] == b"alpha artifact\n"
    assert by_suffix["outputs/sub/b.txt"] == "beta artifact ü\n".encode()
    assert "model/MLmodel" in by_suffix

    # ---- restart: a new pod runs the initContainer (already at head) and reads it all back ----
    server = start_pod(tmp_path / "server-2.log")
    assert "schema already at head" in output[-1]
    try:
        read = launcher.mlflow_client(
            _client_env(main_env, server.base_url),
            "read",
            server.base_url,
            allowed,
            run_id,
            str(tmp_path / "r"),
        )
    finally:
        server.stop()
    output.append(server.logs())
    assert read["params"] == read["expected"]["params"]
    assert read["metrics"] == read["expected"]["metrics"]
    assert read["artifacts"] == read["expected"]["artifacts"]
    assert read["status"] == "FINISHED"
    assert read["versions"] == [{"version": "1", "run_id": run_id}]

    for text in output:
        launcher.assert_no_secret(text, NASTY_PASSWORD, "the launcher's or server's logs")
