"""Memory of the pod's `metrics` container at rest and under a flood of connections, to check
its 128 MiB limit (k8s_charts/mlflow_chart.py) and the figures in mlflow_launcher/metrics.py.

    .venv-image/bin/python bench/metrics_flood.py [--idle 2000] [--slow 100] [--scrapes 200]

Writes counters and latency histograms as MLflow's workers do (prometheus_client's
multiprocess mode, 40 endpoints x 3 statuses), starts `mlflow-launcher metrics` on loopback,
then holds `--idle` connections that send nothing, `--slow` that send a header byte a second,
and makes `--scrapes` scrapes at once (5 s client timeout, as the old readiness probe). Prints
the exporter's VmHWM (peak resident memory, an upper bound of what its cgroup is charged) and
PSS at rest and after the flood, and how many scrapes were answered.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

WRITE = """
from prometheus_client import Counter, Histogram
count = Counter("mlflow_http_request_total", "requests", ["method", "status", "path"])
took = Histogram("mlflow_http_request_duration_seconds", "latency", ["method", "status", "path"])
for n in range(40):
    for status in ("200", "400", "500"):
        count.labels("GET", status, f"/api/2.0/mlflow/endpoint{n}").inc(n + 1)
        took.labels("GET", status, f"/api/2.0/mlflow/endpoint{n}").observe(n / 100)
"""


def memory(pid: int) -> tuple[float, float]:
    """(VmHWM, PSS) in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return hwm / 1024, pss / 1024


def scrape(port: int, answered: list[bool]) -> None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            answered.append(
                response.status == 200 and b"mlflow_http_request_total" in response.read()
            )
    except OSError:
        answered.append(False)


def dribble(port: int, stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            if stop.wait(1):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return


def hostile(port: int, idle: int, slow: int, scrapes: int) -> list[bool]:
    """Hold `idle` silent and `slow` dribbling connections while `scrapes` scrapes run at once,
    past the exporter's request deadline; whether each scrape was answered."""
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    stop = threading.Event()
    answered: list[bool] = []
    threads = [threading.Thread(target=dribble, args=(port, stop)) for _ in range(slow)]
    threads += [threading.Thread(target=scrape, args=(port, answered)) for _ in range(scrapes)]
    for thread in threads:
        thread.start()
    time.sleep(8)
    stop.set()
    for thread in threads:
        thread.join()
    for sock in held:
        sock.close()
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        counters = Path(directory, "prometheus")
        counters.mkdir()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(counters)}
        subprocess.run([sys.executable, "-c", WRITE], env=env, check=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        launcher = Path(sys.executable).with_name("mlflow-launcher")
        env = {**os.environ, "MLFLOW_EXPOSE_PROMETHEUS": str(counters)}
        env["MLFLOW_METRICS_PORT"] = str(port)
        exporter = subprocess.Popen([str(launcher), "metrics"], env=env)
        try:
            time.sleep(3)
            scrape(port, [])
            rest = memory(exporter.pid)
            # Within the cap: every scrape must be answered meanwhile.
            within = hostile(port, 100, 50, 100)
            # Far beyond it: scrapes may be refused while it lasts; memory must hold.
            beyond = hostile(port, args.idle, args.slow, args.scrapes)
            flood = memory(exporter.pid)
            after: list[bool] = []
            scrape(port, after)
            alive = exporter.poll() is None
        finally:
            exporter.terminate()
            exporter.wait(10)
    print(f"at rest: VmHWM {rest[0]:.1f} MiB, PSS {rest[1]:.1f} MiB")
    print(f"within the cap (100 idle, 50 slow): {sum(within)}/100 scrapes answered")
    print(
        f"beyond it ({args.idle} idle, {args.slow} slow): {sum(beyond)}/{args.scrapes} scrapes "
        f"answered; then VmHWM {flood[0]:.1f} MiB, PSS {flood[1]:.1f} MiB"
    )
    print(f"after: scrape answered {after}; alive {alive}; exit status {exporter.returncode}")


if __name__ == "__main__":
    main()
