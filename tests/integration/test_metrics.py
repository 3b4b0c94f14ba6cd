"""Metrics as the chart's pod serves them: the server's uvicorn workers write their counters
into the directory the ConfigMap names (prometheus_client's multiprocess mode), and the pod's
`metrics` container serves their sum on its own port, where the scrape annotations point; real
counters after real requests."""

from __future__ import annotations

import re
import urllib.request

import itest_launcher as launcher
import pytest
from itest_chart import container_env, metrics_container, pod, substitute_endpoints
from itest_servers import free_port, wait_for_port

from config import parse_settings
from tests.conftest import synthesize

pytestmark = pytest.mark.integration

REQUESTS = 12
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
# prometheus_flask_exporter with MLflow's prefix: one counter per method and status.
COUNTER = re.compile(r"^mlflow_http_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def _get_count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = COUNTER.match(line)
        if match and 'method="GET"' in match["labels"] and 'status="200"' in match["labels"]:
            total += float(match["value"])
    return total


def test_metrics_count_real_requests_across_workers(mariadb, new_database, moto, test_ca, tmp_path):
    chart = synthesize("metrics", parse_settings({"auth": {"enabled": False}}), tmp_path / "s")
    deployment, (init, main) = pod(chart)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    exporter = metrics_container(chart)
    assert exporter["args"] == ["metrics"]
    assert int(annotations["prometheus.io/port"]) == exporter["ports"][0]["containerPort"]
    target = new_database(mariadb)
    bucket = moto.create_bucket()

    def local(env: dict[str, str]) -> dict[str, str]:
        env = substitute_endpoints(env, target, moto, test_ca.ca, bucket)
        env |= {"MLFLOW_DB_NAME": target.name, "MLFLOW_WORKERS": "2"}  # counters of both
        return launcher.container_env(env, tmp_path / "home")

    assert launcher.run(init["args"], local(container_env(chart, init))).returncode == 0
    server_env = local(container_env(chart, main))
    # A file a previous container of the pod left: the launcher starts from a clean directory.
    stale = tmp_path / "home" / "prometheus" / "counter_99999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    server = launcher.Server(server_env, tmp_path / "server.log")
    exporter_env = local(container_env(chart, exporter))
    assert exporter_env["MLFLOW_EXPOSE_PROMETHEUS"] == server_env["MLFLOW_EXPOSE_PROMETHEUS"]
    exporter_env["MLFLOW_METRICS_PORT"] = str(port := free_port())
    metrics = launcher.Server(
        {**exporter_env, "MLFLOW_PORT": str(port)},
        tmp_path / "metrics.log",
        command=[*launcher.entrypoint(), *exporter["args"]],
    )
    try:
        server.wait_healthy()
        assert not stale.exists()
        wait_for_port(port, 60, "the metrics container")
        for _ in range(REQUESTS):
            status, _ = server.get(SEARCH, "localhost")
            assert status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
    finally:
        server.stop()
        metrics.stop()
    # /health (the probes') is excluded by MLflow; the searches above are all GET 200s.
    assert _get_count(text) >= REQUESTS, text[:2000]
    assert "mlflow_http_request_duration_seconds_bucket" in text
    worker_files = list((tmp_path / "home" / "prometheus").glob("*.db"))
    assert len({f.name.rsplit("_", 1)[-1] for f in worker_files}) >= 2, worker_files
    # SIGTERM ends the container at once and cleanly (the pod's shutdown).
    assert metrics.proc.returncode == 0, metrics.logs()
