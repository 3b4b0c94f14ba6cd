"""Memory of `mlflow server` per uvicorn worker, to size the server container's memory limit.

    .venv-image/bin/python bench/server_memory.py [--workers 1 2 4] [--auth on off]
        [--repeats 2] [--requests 200] [--clients 8] [--json out.json]

Starts the server the way the pod's launcher does (mlflow_launcher.server.server_start: the
uvicorn command `mlflow server --host --port --workers --serve-artifacts
--artifacts-destination --allowed-hosts --app-name mlflow-on-eks` would run, without the CLI
process; MLflow's basic-auth app behind the launcher's guard when sign-in is on; the store URI
and the auth secrets in the environment, Prometheus counters on through
MLFLOW_EXPOSE_PROMETHEUS, job execution off), on loopback with a SQLite store and a local
artifacts folder, with the interpreter running this script (so run it with the image's
environment, .venv-image). For each configuration it measures the whole process tree (the
uvicorn supervisor, its workers, any other child):

* idle: after /health answers and the tree's memory has settled, before any API request;
* load_peak: the largest total sampled while concurrent clients send the request mix (runs
  and experiments created, log_batch with 100 metrics, search_runs, the UI's page, one of its
  scripts, ajax-api calls, a proxied artifact upload and download), spread over the workers;
* after_load: the largest of a few samples once the load has ended.

Why PSS: a page shared by k processes counts 1/k in each one's PSS, so the PSS sum over the
tree counts every resident page once, which is what the container's memory cgroup charges for
them. The RSS sum counts the shared pages (the interpreter, the C extensions, the SQLite and
numpy libraries) once per process, and overstates the total; USS (private pages only) leaves
the shared ones out and understates it. Not in PSS, but charged to the cgroup too: page cache
of files the server reads or writes without mapping them (the store, proxied artifacts).

From the per-process numbers it derives, per auth mode and phase, the base (the non-worker
processes) and the memory per worker, and a memory limit of (base + per_worker * N) * 1.25.
Each server and its children are in a session and process group of their own, stopped with
SIGTERM to the group and then SIGKILL to what remains, also when this script is interrupted.
Nothing here asserts a number: it is a measurement, read by people.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

ADMIN = ("bench-admin", "bench-admin-password-0123")
HEADROOM = 1.25
MIB = 1024 * 1024
# The pod's environment beyond the launcher's settings (k8s_charts/contract.py, server.py).
POD_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "5",  # the pod's is longer; only shutdown differs
}


# --- the process tree and its memory --------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(root: int) -> list[int]:
    tree, pids, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(tree.get(pid, []))
    return sorted(pids)


def _cmdline(pid: int) -> str:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _role(cmd: str, has_children: bool) -> str:
    if " -m mlflow server" in cmd:
        return "cli"
    if " -m uvicorn" in cmd or " -m mlflow_launcher.uvicorn_main" in cmd:
        # With --workers 1 uvicorn serves in this process itself; with more it supervises.
        return "supervisor" if has_children else "worker"
    if "multiprocessing.spawn" in cmd and "spawn_main" in cmd:
        return "worker"
    return "other"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def snapshot(root: int) -> dict:
    """PSS, RSS and USS (MiB) of every process of the tree, and their sums."""
    tree = _children()
    processes = []
    for pid in process_tree(root):
        try:
            values = {}
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0])  # kB
            cmd = _cmdline(pid)
            cpu = _cpu_seconds(pid)
        except (OSError, ValueError):
            continue  # exited meanwhile
        uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
        processes.append(
            {
                "pid": pid,
                "role": _role(cmd, bool(tree.get(pid))),
                "cmd": cmd,
                "pss_mib": round(values.get("Pss", 0) / 1024, 1),
                "pss_anon_mib": round(values.get("Pss_Anon", 0) / 1024, 1),
                "rss_mib": round(values.get("Rss", 0) / 1024, 1),
                "uss_mib": round(uss / 1024, 1),
                "cpu_s": round(cpu, 2),
            }
        )
    return {
        "pss_total_mib": round(sum(p["pss_mib"] for p in processes), 1),
        "rss_total_mib": round(sum(p["rss_mib"] for p in processes), 1),
        "uss_total_mib": round(sum(p["uss_mib"] for p in processes), 1),
        "processes": processes,
    }


class Sampler(threading.Thread):
    """Samples the tree every `interval` seconds and keeps the snapshot of the largest PSS."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak: dict | None = None
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.take()
            self._done.wait(self.interval)

    def take(self) -> None:
        current = snapshot(self.root)
        self.samples += 1
        if self.peak is None or current["pss_total_mib"] > self.peak["pss_total_mib"]:
            self.peak = current

    def stop(self) -> dict:
        self._done.set()
        self.join()
        self.take()
        assert self.peak is not None
        return {**self.peak, "samples": self.samples}


# --- the server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_stores(workdir: Path, store_uri: str, auth_uri: str | None) -> None:
    """Create the schemas first, as the pod's `migrate` initContainer does: MLflow's workers
    would otherwise race each other creating a fresh SQLite store."""
    code = (
        "import sys\n"
        "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore\n"
        "SqlAlchemyStore(sys.argv[1], sys.argv[2]).engine.dispose()\n"
    )
    commands = [[sys.executable, "-c", code, store_uri, str(workdir / "artifacts")]]
    if auth_uri:
        commands.append(
            [sys.executable, "-m", "mlflow.server.auth", "db", "upgrade", "--url", auth_uri]
        )
    for command in commands:
        subprocess.run(command, check=True, cwd=workdir, capture_output=True, timeout=300)


def _write_auth_config(workdir: Path, auth_uri: str) -> Path:
    """What the launcher's auth.write_config writes (MLFLOW_AUTH_CONFIG_PATH)."""
    path = workdir / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {auth_uri}\n"
        f"admin_username = {ADMIN[0]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path


class Server:
    """The server as the launcher starts it (mlflow_launcher.server.server_start: uvicorn with
    MLflow's app behind the launcher's guard, as `mlflow server` would start it, without the
    CLI process), in a process group of its own."""

    def __init__(self, workdir: Path, workers: int, auth: bool) -> None:
        # The image's venv has the launcher; bench/server.py imports this module's sampler from
        # the dev venv, which has not.
        from mlflow_launcher import app, server
        from mlflow_launcher.settings import ServerEnvironment

        self.workdir, self.workers, self.auth = workdir, workers, auth
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        store_uri = f"sqlite:///{workdir / 'mlflow.db'}"
        auth_uri = f"sqlite:///{workdir / 'auth.db'}" if auth else None
        _prepare_stores(workdir, store_uri, auth_uri)
        # The ambient MLflow/uvicorn settings are left out: the pod's are set below.
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "UVICORN_"))}
        base.update(POD_ENV)
        base["TMPDIR"] = str(workdir)
        base["MLFLOW_EXPOSE_PROMETHEUS"] = str(workdir / "metrics")
        secrets = {}
        if auth_uri:
            secrets = {
                app.AUTH_ENV: app.BASIC_AUTH,
                "MLFLOW_AUTH_CONFIG_PATH": str(_write_auth_config(workdir, auth_uri)),
                "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
                "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "bench-flask-secret-key-0123456789",
                "MLFLOW_CRYPTO_KEK_PASSPHRASE": "bench-kek-passphrase-0123456789",
            }
        settings = ServerEnvironment(
            host="127.0.0.1",
            port=self.port,
            workers=workers,
            artifacts_destination=str(workdir / "artifacts"),
            allowed_hosts=("localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"),
        )
        start = server.server_start(settings, server.server_env(base, store_uri, secrets))
        self.argv, self.env = start.argv, start.env

    def start(self, timeout: float) -> None:
        log = open(self.workdir / "server.log", "wb")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"no /health within {timeout:.0f} s\n{self.log()}")
        self._settle(deadline)

    def _settle(self, deadline: float) -> None:
        """Until every worker is running and the tree's RSS has stopped growing: /health
        answers as soon as one worker has loaded the app."""
        assert self.proc is not None
        previous = -1.0
        while time.monotonic() < deadline:
            current = snapshot(self.proc.pid)
            workers = sum(p["role"] == "worker" for p in current["processes"])
            if workers >= self.workers and abs(current["rss_total_mib"] - previous) < 2:
                return
            previous = current["rss_total_mib"]
            time.sleep(2)
        raise RuntimeError(f"the workers did not settle\n{self.log()}")

    def log(self, lines: int = 40) -> str:
        text = (self.workdir / "server.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM to the group (the pod's SIGTERM), then SIGKILL to whatever is left."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group's id
        leftover = process_tree(self.proc.pid)
        _signal_group(pgid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        _signal_group(pgid, signal.SIGKILL)
        self.proc.wait()
        for pid in leftover:  # a child that left the group: only if it is still ours
            try:
                if os.getpgid(pid) == pgid:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@contextmanager
def running(workdir: Path, workers: int, auth: bool, timeout: float):
    server = Server(workdir, workers, auth)
    # Stop the server also when this script is interrupted or terminated.
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for s in previous:
        signal.signal(s, interrupted)
    try:
        server.start(timeout)
        yield server
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


# --- the load -------------------------------------------------------------------------------


class Client:
    def __init__(self, url: str, auth: bool) -> None:
        self.url = url
        self.headers = {"Content-Type": "application/json"}
        if auth:
            token = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def request(
        self, kind: str, path: str, body: object = None, method: str | None = None,
        data: bytes | None = None,
    ) -> bytes:  # fmt: skip
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.url + path, data=data, headers=self.headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                payload = response.read()
            failure = None
        except urllib.error.HTTPError as exc:
            payload, failure = b"", f"{kind} HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            payload, failure = b"", f"{kind} {type(exc).__name__}"
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if failure:
                self.errors[failure] = self.errors.get(failure, 0) + 1
        return payload

    def json(self, kind: str, path: str, body: object = None) -> dict:
        payload = self.request(kind, path, body)
        return json.loads(payload) if payload else {}


def _static_asset(client: Client) -> str | None:
    """One of the scripts the UI's page loads, if the page names one."""
    page = client.request("ui_page", "/").decode(errors="replace")
    match = re.search(r'src="\.?/?(static-files/[^"]+\.js)"', page)
    return "/" + match.group(1) if match else None


def drive_load(url: str, auth: bool, requests: int, clients: int, seed: int = 0) -> dict:
    """About `requests` requests from `clients` concurrent threads. urllib opens a connection
    per request, so the kernel hands them out over all the workers' accepts."""
    client = Client(url, auth)
    rng = random.Random(seed)  # noqa: S311 - test data
    started = time.monotonic()
    experiments = []
    with ThreadPoolExecutor(clients) as pool:
        names = [f"bench-{seed}-{i}-{rng.randrange(10**9)}" for i in range(clients)]
        for reply in pool.map(
            lambda n: client.json("create_experiment", "/api/2.0/mlflow/experiments/create",
                                  {"name": n}),
            names,
        ):  # fmt: skip
            if reply.get("experiment_id"):
                experiments.append(reply["experiment_id"])
        if not experiments:
            raise RuntimeError(f"could not create an experiment: {client.errors}")
        asset = _static_asset(client)
        runs: list[str] = []

        def run_with_metrics() -> None:
            now = int(time.time() * 1000)
            reply = client.json(
                "create_run", "/api/2.0/mlflow/runs/create",
                {"experiment_id": rng.choice(experiments), "start_time": now},
            )  # fmt: skip
            run_id = reply.get("run", {}).get("info", {}).get("run_id")
            if not run_id:
                return
            metrics = [
                {"key": f"m{i % 10}", "value": rng.random(), "timestamp": now, "step": i}
                for i in range(100)
            ]
            params = [{"key": f"p{i}", "value": str(rng.random())} for i in range(10)]
            client.request(
                "log_batch", "/api/2.0/mlflow/runs/log-batch",
                {"run_id": run_id, "metrics": metrics, "params": params},
            )  # fmt: skip
            with client.lock:
                runs.append(run_id)

        def search_runs() -> None:
            client.request(
                "search_runs", "/api/2.0/mlflow/runs/search",
                {"experiment_ids": experiments, "max_results": 100,
                 "filter": "metrics.m1 > 0.1", "order_by": ["metrics.m1 DESC"]},
            )  # fmt: skip

        def ui_page() -> None:
            client.request("ui_page", "/")

        def ui_asset() -> None:
            if asset:
                client.request("ui_asset", asset)

        def ajax() -> None:
            kind = rng.randrange(4)
            if kind == 0:
                client.request(
                    "ajax_search_experiments",
                    "/ajax-api/2.0/mlflow/experiments/search?max_results=25",
                )
            elif kind == 1:
                client.request(
                    "ajax_search_runs",
                    "/ajax-api/2.0/mlflow/runs/search",
                    {"experiment_ids": experiments, "max_results": 50},
                )
            elif runs:
                run_id = rng.choice(runs)
                if kind == 2:
                    client.request("ajax_get_run", f"/ajax-api/2.0/mlflow/runs/get?run_id={run_id}")
                else:
                    client.request(
                        "ajax_metric_history",
                        f"/ajax-api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=m1",
                    )

        def artifact() -> None:
            """A proxied upload and download of 1 MiB (--serve-artifacts)."""
            path = f"/api/2.0/mlflow-artifacts/artifacts/bench/{rng.randrange(10**9)}.bin"
            client.request("artifact_put", path, method="PUT", data=os.urandom(MIB))
            client.request("artifact_get", path)

        # (task, requests it sends, weight)
        mix = [(run_with_metrics, 2, 4), (search_runs, 1, 2), (ui_page, 1, 1), (ui_asset, 1, 1),
               (ajax, 1, 3), (artifact, 2, 1)]  # fmt: skip
        tasks, planned = [], len(names) + 1
        while planned < requests:
            task, cost, _ = rng.choices(mix, weights=[w for *_, w in mix])[0]
            tasks.append(task)
            planned += cost
        for future in [pool.submit(task) for task in tasks]:
            future.result()
    return {
        "requests": sum(client.counts.values()),
        "by_kind": dict(sorted(client.counts.items())),
        "errors": dict(sorted(client.errors.items())),
        "seconds": round(time.monotonic() - started, 1),
    }


# --- one configuration, and what follows from all ------------------------------------------


def measure(workers: int, auth: bool, args: argparse.Namespace, repeat: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="mem", dir=args.tmp))
    try:
        with running(workdir, workers, auth, args.start_timeout) as server:
            assert server.proc is not None
            root = server.proc.pid
            time.sleep(1)
            idle = max((snapshot(root) for _ in range(3)), key=lambda s: s["pss_total_mib"])
            sampler = Sampler(root)
            sampler.start()
            try:
                load = drive_load(server.url, auth, args.requests, args.clients, seed=repeat)
            finally:
                peak = sampler.stop()
            after = []
            for _ in range(args.samples):
                time.sleep(1)
                after.append(snapshot(root))
            after_load = max(after, key=lambda s: s["pss_total_mib"])
            argv = server.argv
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    # CPU seconds each process spent during the load: shows the load reached every worker.
    before = {p["pid"]: p["cpu_s"] for p in idle["processes"]}
    for process in after_load["processes"]:
        process["load_cpu_s"] = round(process["cpu_s"] - before.get(process["pid"], 0.0), 2)
    return {
        "workers": workers,
        "auth": auth,
        "repeat": repeat,
        "argv": argv,
        "load": load,
        "phases": {"idle": idle, "load_peak": peak, "after_load": after_load},
    }


def _split(phase: dict) -> tuple[float, list[float]]:
    base = sum(p["pss_mib"] for p in phase["processes"] if p["role"] != "worker")
    workers = [p["pss_mib"] for p in phase["processes"] if p["role"] == "worker"]
    return base, workers


def _slope(points: list[tuple[int, float]]) -> float | None:
    xs = {x for x, _ in points}
    if len(xs) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def derive(results: list[dict]) -> dict:
    """Per auth mode: per phase, the base (non-worker PSS; the largest, as the uvicorn
    supervisor only exists with 2+ workers) and the memory per worker (the largest mean worker
    PSS over runs, and the slope of the total over N). Then the transient: how far the load's
    peak rose above the settled after-load total. It scales with the requests in flight per pod
    (with basic-auth, each one's scrypt password check takes 32 MiB), not with N, so the limit
    is (base + per_worker * N) * headroom + transient, from the after-load phase."""
    summary = {}
    for auth in sorted({r["auth"] for r in results}, reverse=True):
        runs = [r for r in results if r["auth"] == auth]
        mode: dict = {}
        for phase in ("idle", "load_peak", "after_load"):
            bases, per_worker, totals = [], [], []
            for r in runs:
                base, workers = _split(r["phases"][phase])
                bases.append(base)
                per_worker.append(statistics.fmean(workers) if workers else 0.0)
                totals.append((r["workers"], r["phases"][phase]["pss_total_mib"]))
            slope = _slope(totals)
            mode[phase] = {
                "base_mib": round(max(bases), 1),
                "per_worker_mib": round(max(per_worker), 1),
                "slope_mib_per_worker": round(slope, 1) if slope is not None else None,
            }
        steady = mode["after_load"]
        base = steady["base_mib"]
        worker = max(steady["per_worker_mib"], steady["slope_mib_per_worker"] or 0.0)
        transient = max(
            r["phases"]["load_peak"]["pss_total_mib"] - r["phases"]["after_load"]["pss_total_mib"]
            for r in runs
        )
        mode["transient_mib"] = round(max(transient, 0.0), 1)
        mode["limit_formula"] = f"({base:.0f} + {worker:.0f} * N) * {HEADROOM} + {transient:.0f}"
        mode["limit_mib"] = {
            n: math.ceil((base + worker * n) * HEADROOM + max(transient, 0.0))
            for n in sorted({r["workers"] for r in runs})
        }
        summary["auth" if auth else "no_auth"] = mode
    return summary


def environment() -> dict:
    def run(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    mlflow_version = run(sys.executable, "-c", "import mlflow; print(mlflow.__version__)")
    return {
        "mlflow": mlflow_version,
        "python": platform.python_version(),
        "executable": sys.executable,
        "nproc": run("nproc"),
        "free_m": run("free", "-m"),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_run(r: dict) -> None:
    auth = "auth" if r["auth"] else "no-auth"
    load = r["load"]
    print(
        f"\n== workers={r['workers']} {auth} repeat={r['repeat']}: {load['requests']} requests "
        f"in {load['seconds']} s, errors {load['errors'] or 'none'}"
    )
    for name, phase in r["phases"].items():
        base, workers = _split(phase)
        print(
            f"  {name:10} PSS {phase['pss_total_mib']:7.1f}  RSS {phase['rss_total_mib']:7.1f}"
            f"  USS {phase['uss_total_mib']:7.1f} MiB  (base {base:.1f}, workers "
            f"{', '.join(f'{w:.1f}' for w in workers)})"
        )
    for p in r["phases"]["after_load"]["processes"]:
        print(
            f"    {p['role']:10} pid {p['pid']:>7}  PSS {p['pss_mib']:6.1f}"
            f"  RSS {p['rss_mib']:6.1f}  load CPU {p.get('load_cpu_s', 0):5.1f} s  {p['cmd'][:90]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--auth", choices=("on", "off"), nargs="+", default=["on", "off"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--samples", type=int, default=3, help="after-load samples, 1 s apart")
    parser.add_argument("--start-timeout", type=float, default=300)
    parser.add_argument(
        "--tmp", default=tempfile.gettempdir(), help="where each server's folder goes"
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' folders")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()

    env = environment()
    print(f"mlflow {env['mlflow']}, Python {env['python']}, nproc {env['nproc']}")
    results = []
    for repeat in range(args.repeats):
        for auth in args.auth:
            for workers in args.workers:
                result = measure(workers, auth == "on", args, repeat)
                print_run(result)
                results.append(result)
                if args.json:  # after every run: a long session that dies keeps its data
                    out = {"environment": env, "results": results, "summary": derive(results)}
                    args.json.write_text(json.dumps(out, indent=1))
    summary = derive(results)
    print(f"\n== derived (PSS, MiB; transient at {args.clients} concurrent clients)")
    for mode, d in summary.items():
        for phase in ("idle", "load_peak", "after_load"):
            p = d[phase]
            print(
                f"  {mode:8} {phase:10} base {p['base_mib']:6.1f}  per worker "
                f"{p['per_worker_mib']:6.1f} (slope {p['slope_mib_per_worker']})"
            )
        print(f"  {mode:8} limit {d['limit_formula']} -> {d['limit_mib']}")


if __name__ == "__main__":
    main()
