"""Metrics as the chart's pod serves them: the server's uvicorn workers write their counters
into the directory the ConfigMap names (prometheus_client's multiprocess mode), and the pod's
`metrics` container serves their sum on its own port, where the scrape annotations point; real
counters after real requests. And it keeps serving while other clients hold connections open,
dribble a request or open more connections than it takes."""

from __future__ import annotations

import re
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import itest_launcher as launcher
import itest_template as template
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


@pytest.fixture(scope="module")
def chart(tmp_path_factory):
    return synthesize(
        "metrics",
        parse_settings(
            {"auth": {"enabled": False, "allow_anonymous_through": ["cluster", "internal"]}}
        ),
        tmp_path_factory.mktemp("s"),
    )


def test_metrics_count_real_requests_across_workers(
    chart, mariadb, new_database, moto, test_ca, tmp_path
):
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

    template.migrate(mariadb, init["args"], local(container_env(chart, init)))
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


PROBE_TIMEOUT = 5
"""What a probe or scraper waits for an answer (the old readiness probe's timeoutSeconds)."""
CLOSE_BOUND = 30
"""Beyond any deadline the exporter sets: an idle connection still open then is never closed
(wsgiref's server never closed one)."""
IDLE_CONNECTIONS = 8
SCRIPT_COUNTS = 7
# What each MLflow worker does (prometheus_flask_exporter in multiprocess mode), standing in
# for the server: this test is about the exporter's connections, the one above about the sum.
WRITE_COUNTERS = """
import sys
from prometheus_client import Counter
counter = Counter("mlflow_http_request_total", "requests", ["method", "status"])
counter.labels("GET", "200").inc(int(sys.argv[1]))
"""


def _scrape(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as response:
        return response.read().decode()


def _status(port: int, method: str, path: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _connect(port: int) -> socket.socket:
    """A connection the server accepts (into its backlog at least) within the probe's time."""
    return socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT)


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """The server ended the connection (EOF or reset) without answering, by `deadline`."""
    sock.settimeout(max(deadline - time.monotonic(), 0.1))
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class _Dribbler(threading.Thread):
    """A client that sends a request's headers one byte every half second and never ends them
    (slowloris); notes whether the server closed the connection."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = _connect(port)
        self.closed = threading.Event()

    def run(self) -> None:
        request = b"GET /metrics HTTP/1.1\r\nHost: mlflow\r\nX-Slow: " + b"a" * 1000
        deadline = time.monotonic() + CLOSE_BOUND
        for byte in request:
            if time.monotonic() > deadline:
                return
            readable, _, _ = select.select([self.sock], [], [], 0.5)
            try:
                if readable and self.sock.recv(1) == b"":
                    self.closed.set()
                    return
                self.sock.send(bytes([byte]))
            except OSError:
                self.closed.set()
                return


def _memory_mib(status: Path, field: str) -> float:
    line = next(row for row in status.read_text().splitlines() if row.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def test_metrics_keep_serving_through_idle_slow_and_surplus_connections(chart, tmp_path):
    """One idle connection used to block every later scrape and the readiness probe (wsgiref
    serves one connection at a time, with no timeout): about 90 s later every pod was
    NotReady. Now: scrapes answer meanwhile, the idle and the slow clients are closed at the
    exporter's deadline, a flood beyond its cap ends with the flood, the process stays up
    within its container's memory limit and still ends at once on SIGTERM."""
    exporter = metrics_container(chart)
    env = launcher.container_env(container_env(chart, exporter), tmp_path / "home")
    env["MLFLOW_METRICS_PORT"] = str(port := free_port())
    counters = Path(env["MLFLOW_EXPOSE_PROMETHEUS"])
    counters.mkdir(parents=True)
    launcher.image_python(
        "-c",
        WRITE_COUNTERS,
        str(SCRIPT_COUNTS),
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(counters)},
    )
    metrics = launcher.Server(
        {**env, "MLFLOW_PORT": str(port)},
        tmp_path / "metrics.log",
        command=[*launcher.entrypoint(), *exporter["args"]],
    )
    idle: list[socket.socket] = []
    flood: list[socket.socket] = []
    try:
        wait_for_port(port, 60, "the metrics container")
        idle += [_connect(port) for _ in range(IDLE_CONNECTIONS)]
        slow = _Dribbler(port)
        idle.append(slow.sock)
        slow.start()
        # With the idle and the slow clients connected first: wsgiref's server sat on the
        # first of them, and this scrape timed out as the probe did.
        assert _get_count(_scrape(port)) == SCRIPT_COUNTS
        assert (_status(port, "HEAD", "/metrics"), _status(port, "GET", "/")) == (200, 404)
        assert _status(port, "POST", "/metrics") == 405
        deadline = time.monotonic() + CLOSE_BOUND
        silent = idle[:IDLE_CONNECTIONS]
        assert [_closed_by_server(s, deadline) for s in silent] == [True] * IDLE_CONNECTIONS
        slow.join(CLOSE_BOUND + 5)
        assert slow.closed.is_set(), "the slow client was never cut off"

        cap = int(
            launcher.image_python(
                "-c", "from mlflow_launcher.metrics import MAX_CONNECTIONS as m; print(m)"
            ).stdout
        )
        flood = [_connect(port) for _ in range(cap + 50)]
        deadline = time.monotonic() + CLOSE_BOUND
        while "connection(s) refused" not in metrics.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metrics.proc.poll() is None, metrics.logs()
        for sock in flood:
            sock.close()
        # Once the flood is gone (the exporter may still be reading its hang-ups), it serves.
        for _ in range(10):
            try:
                text = _scrape(port)
                break
            except (ConnectionError, urllib.error.URLError):
                time.sleep(1)
        else:
            raise AssertionError(f"no scrape answered after the flood:\n{metrics.logs()}")
        assert _get_count(text) == SCRIPT_COUNTS
        # A counters file a worker left unreadable fails that scrape, not the exporter.
        broken = counters / "counter_99999.db"
        broken.write_bytes(b"garbage-garbage-garbage")
        assert _status(port, "GET", "/metrics") == 500
        broken.unlink()
        assert _get_count(_scrape(port)) == SCRIPT_COUNTS
        [exporter_pid] = metrics.process_tree()[1:]  # tini's child
        peak = _memory_mib(Path(f"/proc/{exporter_pid}/status"), "VmHWM")
    finally:
        for sock in idle + flood:
            sock.close()
        metrics.stop()
    limit = exporter["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and peak < int(limit[:-2]), (peak, limit)
    assert metrics.proc.returncode == 0, metrics.logs()
    # The cap is logged, but not once per refused connection.
    refusals = metrics.logs().count("connection(s) refused")
    assert 1 <= refusals < 50, metrics.logs()
