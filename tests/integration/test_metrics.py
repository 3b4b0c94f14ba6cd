"""/metrics on the chart's server: real counters after real requests, summed over the uvicorn
workers (prometheus_client's multiprocess mode, in the directory the ConfigMap names), and the
scrape annotations pointing at it."""

from __future__ import annotations

import re
import urllib.request

import itest_launcher as launcher
import pytest
from itest_chart import container_env, pod, substitute_endpoints

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
    assert int(annotations["prometheus.io/port"]) == main["ports"][0]["containerPort"]
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
    try:
        server.wait_healthy()
        assert not stale.exists()
        for _ in range(REQUESTS):
            status, _ = server.get(SEARCH, "localhost")
            assert status == 200
        with urllib.request.urlopen(f"{server.base_url}/metrics", timeout=30) as response:  # noqa: S310
            text = response.read().decode()
    finally:
        server.stop()
    # /health (the probes') is excluded by MLflow; the searches above are all GET 200s.
    assert _get_count(text) >= REQUESTS, text[:2000]
    assert "mlflow_http_request_duration_seconds_bucket" in text
    worker_files = list((tmp_path / "home" / "prometheus").glob("*.db"))
    assert len({f.name.rsplit("_", 1)[-1] for f in worker_files}) >= 2, worker_files
