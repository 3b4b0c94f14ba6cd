"""The tracking server as deployed, against the recipe it replaces and the in-process limit.

    .venv/bin/python bench/server.py [--engines mysql postgres] [--clients 8] [--runs 120]
        [--search-sizes 1000 10000] [--searches 48] [--start-repeats 3] [--quick]
        [--artifacts-mib 1024] [--artifacts-repeats 1] [--report-only]
        [--json bench/results/server.json] [--markdown docs/benchmarks.md]

Configurations, each on MariaDB and on PostgreSQL (the integration tests' TLS-only servers,
started here on loopback, with moto's server for S3 and Secrets Manager):

* recipe: what this project replaces, plain `mlflow server --backend-store-uri <URI>
  --artifacts-destination s3://...` with MLflow's defaults (its 4 workers, no sign-in), as most
  guides write it: `mysql+pymysql://` (PyMySQL is not in the image: bench/requirements-pymysql.txt,
  installed into .venv-pymysql and put on this one server's PYTHONPATH), `postgresql+psycopg2://`.
* recipe-mysqlclient (MariaDB only): the same recipe exactly as the seed runs it on MySQL, a
  `mysql://` URI, which SQLAlchemy gives to mysqlclient (the C driver on libmariadb, the
  image's). (On PostgreSQL a `postgresql://` URI names psycopg2, which the recipe already runs.)
* ours: the synthesized pod as the integration tests run it: the chart's ConfigMap with only
  the AWS endpoints made local (tests/integration/itest_chart.py), the initContainer's
  `migrate`, then the container's `serve` through the image's ENTRYPOINT, sign-in on (the
  default: basic-auth, its secrets in Secrets Manager), the chart's worker count.
* ours-noauth: the same pod with `auth.enabled: false` (the chart then drops MLFLOW_AUTH_*),
  so the cost of sign-in shows apart from the launcher's.
* limit: the same calls on MLflow's SqlAlchemyStore in the client processes, same database and
  driver as the pod's (mysqlclient, certificate and host name verified; psycopg2): what the work
  costs without HTTP and without a server.

Workloads on each: concurrent tracking writes (create_run + log_batch of 100 metrics, 10
params, 5 tags + update_run per run), search_runs with a metric filter over experiments of each
search size, and the start from process start to an answering (signed-in) API. The clients are
persistent processes of the image's Python (bench/server_client.py: the real MLflow client)
so no client shares a GIL with the measurement. Server CPU is utime+stime of the server's
process tree, memory its PSS (bench/server_memory.py). Artifact transfers come from
bench/artifacts.py when present (`artifact_figures`).

Nothing here asserts a speed: it is a measurement, read by people. Every process it starts is
in a process group of its own and stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import logging
import math
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
INTEGRATION = ROOT / "tests" / "integration"
# The integration tests' real server starters, used as they are (not copied).
for _path in (INTEGRATION, BENCH, ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import itest_launcher as launcher  # noqa: E402
from itest_auth import DB_NAME_ENV, create_auth_secrets, new_login  # noqa: E402
from itest_chart import container_env, pod, substitute_endpoints  # noqa: E402
from itest_servers import (  # noqa: E402
    PG_BIN_DIR,
    REGION,
    MariaDb,
    Postgres,
    free_port,
    make_test_ca,
)
from server_memory import Sampler, snapshot  # noqa: E402

CLIENT = BENCH / "server_client.py"
PROTOCOL = "@@ "  # server_client.PROTOCOL (that module needs MLflow, so it is not imported)
CONFIG_FOR_ENGINE = {"mysql": "default", "postgres": "postgres"}
ENGINE_NAMES = {"mysql": "MariaDB", "postgres": "PostgreSQL"}
CONFIGURATIONS = ("recipe", "recipe-mysqlclient", "ours", "ours-noauth", "limit")
SERVERS = CONFIGURATIONS[:4]
RECIPES = {"recipe": "pymysql", "recipe-mysqlclient": "mysqldb"}
"""The recipe configurations and the SQLAlchemy MySQL driver each names."""
PYMYSQL = Path(os.environ.get("MLFLOW_BENCH_PYMYSQL") or ROOT / ".venv-pymysql")
RECIPE_HOW = "mlflow server --backend-store-uri <URI> --artifacts-destination s3://... (defaults)"
POD_HOW = "tini -- mlflow-launcher serve, the synthesized ConfigMap, after its migrate"
SEARCH_FILTER = "metrics.m1 > 0.5"
SEARCH_MAX_RESULTS = 100
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DEFAULTS = {"clients": 8, "runs": 120, "search_sizes": [1000, 10000], "searches": 48}
DEFAULTS |= {"start_repeats": 3, "warmup_runs": 2, "artifacts_mib": 1024, "artifacts_repeats": 1}
DEFAULTS |= {"quick": False}
QUICK = {"clients": 2, "runs": 4, "search_sizes": [50], "searches": 2, "start_repeats": 1}
QUICK |= {"warmup_runs": 0, "artifacts_mib": 0, "artifacts_repeats": 1, "quick": True}
"""--quick: a smoke test's workload. Its servers start side by side and stop together at the
end (their start times then mean nothing), no warm-up, no 1 GiB artifact transfers."""
QUICK_RECIPE_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
QUICK_RECIPE_WORKERS = 1
"""--quick (every bench's): the recipe without MLflow's job runner and with one worker, unless
a bench gives its count (bench/hostile.py: the pod's). Its huey consumers and three more
workers each import MLflow: 32 s of CPU for a start here against 10 s, in a smoke test whose
figures mean nothing. The recipe still starts as `mlflow server` through the same starter."""


def configurations(engine: str) -> tuple[str, ...]:
    """What runs on `engine`: mysqlclient is a MySQL driver."""
    return tuple(c for c in CONFIGURATIONS if engine == "mysql" or c != "recipe-mysqlclient")


def servers(engine: str) -> tuple[str, ...]:
    return tuple(c for c in configurations(engine) if c in SERVERS)


def pymysql_path() -> Path:
    """PyMySQL for the image's Python (`make .venv-pymysql/.stamp`): the recipe's driver."""
    if not (PYMYSQL / "pymysql").is_dir():
        raise RuntimeError(
            f"{PYMYSQL}/pymysql missing: install it with `make .venv-pymysql/.stamp` "
            "(PyMySQL from bench/requirements-pymysql.txt)"
        )
    return PYMYSQL


_T0 = time.monotonic()


def progress(message: str) -> None:
    """A line on stderr with the seconds since the bench started: where the time goes."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- processes: every one in a group of its own, all stopped at the end ---------------------

_STARTED: list[subprocess.Popen] = []


def _stop_group(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM to the process's group, SIGKILL to what is left after `timeout`."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def stop_everything() -> None:
    """What this run started and has not stopped yet (servers, clients): for Ctrl-C and errors."""
    while _STARTED:
        _stop_group(_STARTED.pop())


# --- the clients ----------------------------------------------------------------------------


class Clients:
    """`count` persistent client processes (bench/server_client.py in the image's Python)."""

    def __init__(self, count: int, home: Path, *, pythonpath: str | None = None) -> None:
        """`pythonpath`: more modules for the image's Python (a driver, bench/drivers.py)."""
        home.mkdir(parents=True, exist_ok=True)
        env = {"PATH": f"{launcher.image_venv() / 'bin'}:/usr/bin:/bin", "HOME": str(home)}
        env |= {"TMPDIR": str(home), "LANG": "C.UTF-8", "MPLCONFIGDIR": str(home / ".mpl")}
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        self.procs = []
        for i in range(count):
            proc = subprocess.Popen(
                [str(launcher.image_venv() / "bin" / "python"), str(CLIENT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(home / f"client-{i}.log").open("ab"),
                text=True,
                env=env,
                start_new_session=True,
            )
            _STARTED.append(proc)
            self.procs.append(proc)
        self.home = home
        self._starting = list(range(count))

    def wait_started(self) -> None:
        """Until each has imported MLflow (once: later calls return at once)."""
        while self._starting:
            self._expect(self._starting.pop(), "started")

    def _line(self, i: int) -> str:
        """The client's next protocol line (MLflow's client prints lines of its own)."""
        while line := self.procs[i].stdout.readline():  # type: ignore[union-attr]
            if line.startswith(PROTOCOL):
                return line.removeprefix(PROTOCOL).strip()
        log = (self.home / f"client-{i}.log").read_text(errors="replace")
        raise RuntimeError(f"client {i} exited:\n{log[-3000:]}")

    def _expect(self, i: int, word: str) -> None:
        line = self._line(i)
        if line != word:
            raise RuntimeError(f"client {i} said {line!r}, not {word!r}")

    def _send(self, i: int, text: str) -> None:
        self.procs[i].stdin.write(text + "\n")  # type: ignore[union-attr]
        self.procs[i].stdin.flush()  # type: ignore[union-attr]

    def call(self, spec: dict) -> dict:
        """A command without a timed part (populate), on the first client."""
        self._send(0, json.dumps(spec))
        return json.loads(self._line(0))

    def timed(self, specs: list[dict], meter: Meter) -> tuple[list[dict], float]:
        """Each spec to one client; all set up, then go together. Returns their answers and
        the wall seconds from go to the last answer; `meter` runs over exactly that window."""
        for i, spec in enumerate(specs):
            self._send(i, json.dumps(spec))
        for i in range(len(specs)):
            self._expect(i, "ready")
        meter.start()
        started = time.perf_counter()
        for i in range(len(specs)):
            self._send(i, "go")
        answers = [json.loads(self._line(i)) for i in range(len(specs))]
        wall = time.perf_counter() - started
        meter.stop()
        return answers, wall

    def close(self) -> None:
        for proc in self.procs:
            with suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                _stop_group(proc)
            if proc in _STARTED:
                _STARTED.remove(proc)


# --- measuring a process tree ---------------------------------------------------------------


def tree_cpu(root: int | None) -> dict[str, float]:
    """utime + stime (s) of `root` and its descendants now: in all, and in uvicorn workers
    (the rest is the CLI, the supervisor and, in the recipe, MLflow's job runner)."""
    if root is None:
        return {"all": 0.0, "workers": 0.0}
    processes = snapshot(root)["processes"]
    return {
        "all": sum(p["cpu_s"] for p in processes),
        "workers": sum(p["cpu_s"] for p in processes if p["role"] == "worker"),
    }


@dataclass
class Meter:
    """Server and database CPU over one timed window, and the server's peak PSS in it."""

    server_pid: int | None
    db_pid: int
    cpu: dict[str, float] = field(default_factory=dict)
    peak: dict | None = None
    _sampler: Sampler | None = None
    _before: tuple = ()

    def start(self) -> None:
        self._before = (tree_cpu(self.server_pid), tree_cpu(self.db_pid))
        if self.server_pid is not None:
            self._sampler = Sampler(self.server_pid, interval=1.0)
            self._sampler.start()

    def stop(self) -> None:
        server, db = tree_cpu(self.server_pid), tree_cpu(self.db_pid)
        self.cpu = {
            "server": server["all"] - self._before[0]["all"],
            "workers": server["workers"] - self._before[0]["workers"],
            "db": db["all"] - self._before[1]["all"],
        }
        if self._sampler is not None:
            self.peak = self._sampler.stop()


def db_root_pid(db) -> int:
    """The database server's top process (mariadbd; PostgreSQL's postmaster)."""
    if isinstance(db, MariaDb):
        return db.proc.pid  # type: ignore[union-attr]
    return int((db.datadir / "postmaster.pid").read_text().split()[0])


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (no interpolation: with few samples, a real sample)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def memory_figures(snap: dict | None) -> dict:
    """PSS of the whole tree and the mean PSS of its uvicorn workers (MiB)."""
    if not snap:
        return {}
    workers = [p["pss_mib"] for p in snap["processes"] if p["role"] == "worker"]
    return {
        "pss_total_mib": snap["pss_total_mib"],
        "workers": len(workers),
        "pss_per_worker_mib": round(statistics.mean(workers), 1) if workers else None,
        "pss_rest_mib": round(snap["pss_total_mib"] - sum(workers), 1),
        "processes": len(snap["processes"]),
    }


# --- one engine's deployment: database, charts' environments, servers -----------------------


@dataclass
class Deployment:
    """One engine's database (migrated by the pod's initContainer) and what each
    configuration needs to start against it."""

    engine: str
    db: object
    chart: object
    moto: object
    ca: Path
    home: Path
    login: object = None
    auth: object = None
    bucket: str = ""
    main: dict = field(default_factory=dict)
    """The pod's server container (its environment is the chart's ConfigMap)."""
    quick: bool = False
    """--quick: the recipe lighter (QUICK_RECIPE)."""

    def prepare(self) -> None:
        """A login allowed to create databases (as RDS's master user: `migrate` creates the
        auth database), the auth secrets, a bucket, then the initContainer's `migrate`."""
        self.login = new_login(self.db, self.moto, f"bench-{secrets.token_urlsafe(12)}")
        self.auth = create_auth_secrets(self.moto)
        self.bucket = self.moto.create_bucket()
        _, (init, self.main) = pod(self.chart)
        result = launcher.run(init["args"], self.pod_env(init, "migrate", auth=True))
        if result.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{result.stdout}\n{result.stderr}")

    def pod_env(self, container: dict, name: str, *, auth: bool) -> dict[str, str]:
        """`container`'s environment as Kubernetes sets it, AWS made local; with the chart's
        own worker count (the integration tests pin 1), in a pod home of its own."""
        config = container_env(self.chart, container)
        env = substitute_endpoints(
            config,
            self.login,
            self.moto,
            self.ca,
            self.bucket,
            self.auth.arns if auth else None,
        )
        env |= {"MLFLOW_DB_NAME": self.login.name, "MLFLOW_WORKERS": config["MLFLOW_WORKERS"]}
        if auth:
            env[DB_NAME_ENV] = f"{self.login.name}_auth"  # its own on a shared server
        return launcher.container_env(env, self.home / name)

    def store_uri(self, driver: str = "pymysql") -> str:
        """The URI as the recipe's user writes it, TLS on. On MySQL `driver` is PyMySQL
        (given a CA, it checks the chain and the host name) or mysqldb, written `mysql://` as
        the seed's recipe does: given only a CA, libmariadb checks the chain but not the host
        name (that takes ssl_mode=VERIFY_IDENTITY), as the recipe's users get it."""
        login, ca = self.login, quote(str(self.ca))
        user, password = quote(login.user, safe=""), quote(login.password, safe="")
        where = f"{user}:{password}@127.0.0.1:{self.db.port}/{login.name}"
        if self.engine == "mysql":
            scheme = "mysql" if driver == "mysqldb" else f"mysql+{driver}"
            return f"{scheme}://{where}?ssl_ca={ca}"
        return f"postgresql+psycopg2://{where}?sslmode=verify-full&sslrootcert={ca}"

    def limit_uri(self) -> str:
        """The store URI on the pod's drivers, verified as the launcher verifies: on MySQL
        mysqlclient with VERIFY_IDENTITY (the chain and the host name)."""
        if self.engine == "mysql":
            return self.store_uri("mysqldb") + "&ssl_mode=VERIFY_IDENTITY"
        return self.store_uri()

    def recipe(
        self, name: str, driver: str = "pymysql", workers: int | None = None
    ) -> tuple[dict[str, str], list[str]]:
        """Plain `mlflow server`, MLflow's defaults (but `workers`, when given), AWS through the
        standard variables; a driver outside the image (PyMySQL) from its own folder on
        PYTHONPATH; under --quick lighter still (QUICK_RECIPE)."""
        home = self.home / name
        home.mkdir(parents=True, exist_ok=True)
        port = str(free_port())
        env = {
            "PATH": f"{launcher.image_venv() / 'bin'}:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(home),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "MLFLOW_PORT": port,  # read by launcher.Server; the same as --port
            "AWS_DEFAULT_REGION": REGION,
            "MLFLOW_S3_ENDPOINT_URL": self.moto.endpoint,
            **FAKE_AWS,
        }
        if driver == "pymysql" and self.engine == "mysql":
            env["PYTHONPATH"] = str(pymysql_path())
        command = [
            str(launcher.image_venv() / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            self.store_uri(driver),
            "--artifacts-destination",
            f"s3://{self.bucket}/recipe-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            port,
        ]
        if self.quick:
            env |= QUICK_RECIPE_ENV
            workers = workers or QUICK_RECIPE_WORKERS
        if workers is not None:
            command += ["--workers", str(workers)]
        return env, command

    def target(self, configuration: str, server: launcher.Server | None) -> dict:
        """How the clients reach `configuration`."""
        if configuration == "limit":
            root = f"s3://{self.bucket}/limit-artifacts"
            return {"kind": "store", "uri": self.limit_uri(), "artifact_root": root}
        login = list(self.auth.admin_login()) if configuration == "ours" else None
        return {"kind": "http", "uri": server.base_url, "login": login}  # type: ignore[union-attr]


# --- start: process start to an answering API -----------------------------------------------

LAUNCHER_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) mlflow-launcher \w+ (.*)$", re.MULTILINE
)
START_MARKS = {
    "connecting to ": "secret_fetched",
    "schema at head": "schema_checked",
    "starting mlflow server": "exec_mlflow",
}


def api_ready(server: launcher.Server, login: list[str] | None) -> bool:
    """/health answers 200 and so does a (signed-in) experiments search."""
    headers = {}
    if login:
        token = base64.b64encode(":".join(login).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    for path, extra in (
        ("/health", {}),
        ("/api/2.0/mlflow/experiments/search?max_results=1", headers),
    ):
        request = urllib.request.Request(server.base_url + path, headers=extra)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                if response.status != 200:
                    return False
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
    return True


def start_server(
    env: dict[str, str], log: Path, command: list[str] | None, login: list[str] | None
) -> tuple[launcher.Server, float]:
    """Start, poll until the API answers; returns the server and the seconds that took."""
    started = time.time()
    server = launcher.Server(env, log, command=command, own_group=True)
    _STARTED.append(server.proc)
    if command is not None:
        _RECIPE_PIDS.add(server.proc.pid)
    deadline = time.monotonic() + 300
    while not api_ready(server, login):
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not come up ({server.proc.poll()}):\n{server.logs()}")
        time.sleep(0.05)
    return server, time.time() - started


_RECIPE_PIDS: set[int] = set()


def stop_server(server: launcher.Server) -> None:
    """The pod's way (SIGTERM, a graceful stop), checked to leave no process behind. A recipe
    stopped right after its start can leave processes of MLflow's job runner behind (its huey
    consumers, still importing MLflow, outlive the CLI): MLflow's, not what is measured here,
    so they go with the recipe's process group; ours must leave none."""
    try:
        server.stop()
    except AssertionError:
        if server.proc.pid not in _RECIPE_PIDS:
            raise
        progress(f"the recipe left processes behind; killing its group {server.proc.pid}")
        _stop_group(server.proc)
    finally:
        _STARTED.remove(server.proc)


def start_phases(log: str, started: float, ready: float) -> dict[str, float]:
    """Ours' start in phases, from the launcher's log timestamps (ms, local time): Python and
    the launcher's imports + the database secret; the database wait + schema check; the auth
    schema check + auth secrets (sign-in on); MLflow's import and app up to an answering API."""
    marks = {"process_start": started}
    for stamp, millis, message in LAUNCHER_LINE.findall(log):
        for prefix, mark in START_MARKS.items():
            if message.startswith(prefix) and mark not in marks:
                marks[mark] = (
                    time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
                )
    marks["api_ready"] = ready
    names = list(marks)
    if names != ["process_start", *START_MARKS.values(), "api_ready"]:
        return {}
    labels = ("launcher_and_secret_s", "db_wait_and_schema_s", "auth_check_s", "mlflow_up_s")
    return {
        label: round(marks[b] - marks[a], 3)
        for label, a, b in zip(labels, names[:-1], names[1:], strict=True)
    }


def measure_starts(
    repeats: int, launch: Callable[[int], tuple[launcher.Server, float, dict]]
) -> tuple[launcher.Server, dict]:
    """`repeats` starts (each stopped but the last, which serves the workloads)."""
    seconds, phases, server = [], [], None
    for i in range(repeats):
        if server is not None:
            stop_server(server)
        server, took, phase = launch(i)
        progress(f"started in {took:.1f} s")
        seconds.append(round(took, 3))
        if phase:
            phases.append(phase)
    figures = {"seconds": seconds, "median_s": round(statistics.median(seconds), 3)}
    if phases:
        figures["phases_median_s"] = {
            key: round(statistics.median(p[key] for p in phases), 3) for key in phases[0]
        }
    return server, figures  # type: ignore[return-value]


# --- workloads ------------------------------------------------------------------------------


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def measure_writes(
    clients: Clients, target: dict, meter: Meter, runs: int, warmup: int, tag: str
) -> dict:
    """Concurrent runs: create_run + log_batch(100 metrics, 10 params, 5 tags) + update_run.
    Each client first logs `warmup` runs untimed, so every worker has done its first requests
    (lazy imports, connection pool) before the clock starts."""
    counts = [c for c in _shares(runs, len(clients.procs)) if c]
    spec = {"mode": "writes", "target": target, "experiment": f"writes-{tag}"}
    specs = [{**spec, "count": c, "seed": i, "warmup": warmup} for i, c in enumerate(counts)]
    answers, wall = clients.timed(specs, meter)
    return _op_figures(answers, wall, meter, runs, ("run", "runs"))


def measure_searches(
    clients: Clients, target: dict, meter: Meter, experiment_id: str, searches: int
) -> dict:
    """Concurrent search_runs with a metric filter, max_results 100, on one experiment."""
    counts = [c for c in _shares(searches, len(clients.procs)) if c]
    spec = {"mode": "searches", "target": target, "experiment_id": experiment_id}
    spec |= {"filter": SEARCH_FILTER, "max_results": SEARCH_MAX_RESULTS}
    answers, wall = clients.timed([{**spec, "count": c} for c in counts], meter)
    return _op_figures(answers, wall, meter, searches, ("search", "searches"))


def _op_figures(
    answers: list[dict], wall: float, meter: Meter, ops: int, name: tuple[str, str]
) -> dict:
    op, plural = name
    latencies = [x for a in answers for x in a["latencies"]]
    client_cpu = sum(a["cpu_s"] for a in answers)
    in_process = meter.server_pid is None  # the limit: the store works in the clients
    figures = {
        plural: ops,
        "clients": len(answers),
        "wall_s": round(wall, 3),
        f"{plural}_per_s": round(ops / wall, 2),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        f"server_cpu_s_per_{op}": round(
            (client_cpu if in_process else meter.cpu["server"]) / ops, 5
        ),
        f"worker_cpu_s_per_{op}": round(
            (client_cpu if in_process else meter.cpu["workers"]) / ops, 5
        ),
        f"db_cpu_s_per_{op}": round(meter.cpu["db"] / ops, 5),
        f"client_cpu_s_per_{op}": round(client_cpu / ops, 5),
    }
    if meter.peak:
        figures["memory_peak"] = memory_figures(meter.peak)
    return figures


# --- artifacts: bench/artifacts.py's figures, when that bench is present ---------------------


def artifact_figures(opts: Options, workdir: Path) -> dict:
    """The hook for bench/artifacts.py (1 GiB transfers through our server against boto3
    straight to S3, written separately; it brings up its own stand-ins): its
    `measure_artifacts` figures, or a clear "not measured" entry."""
    if not opts.artifacts_mib:
        return {"status": "not measured", "why": "left out (--quick or --artifacts-mib 0)"}
    if not (BENCH / "artifacts.py").exists():
        return {"status": "not measured", "why": "bench/artifacts.py is not there (yet)"}
    measure = getattr(_load("bench_artifacts", BENCH / "artifacts.py"), "measure_artifacts", None)
    if measure is None:
        return {"status": "not measured", "why": "bench/artifacts.py has no measure_artifacts"}
    progress(f"artifacts: {opts.artifacts_mib} MiB x {opts.artifacts_repeats}")
    try:
        figures = measure(opts.artifacts_mib, opts.artifacts_repeats, workdir=workdir, log=progress)
    except TypeError as error:  # the hook's arguments and the function's disagree
        return {"status": "not measured", "why": f"measure_artifacts(...): {error}"}
    return {"status": "measured", **figures}


# --- one engine -----------------------------------------------------------------------------


@dataclass
class Options:
    clients: int
    runs: int
    search_sizes: list[int]
    searches: int
    start_repeats: int
    warmup_runs: int
    """Untimed runs per client before each write workload."""
    artifacts_mib: int
    artifacts_repeats: int
    quick: bool


def bench_engine(d: Deployment, clients: Clients, opts: Options) -> dict:
    """Every configuration on one engine: starts, writes, searches, memory."""
    progress(f"{d.engine}: migrate")
    d.prepare()
    clients.wait_started()  # they import MLflow meanwhile
    progress(f"{d.engine}: populate")
    populated = {}
    for size in opts.search_sizes:  # once per engine, shared by every configuration
        spec = {"mode": "populate", "target": d.target("limit", None), "count": size}
        populated[size] = clients.call({**spec, "experiment": f"search-{size}"})["experiment_id"]
    out: dict = {"configurations": {}, "start": {}, "writes": {}, "memory": {}}
    out["search"] = {str(size): {} for size in opts.search_sizes}
    out["configurations"]["limit"] = {"how": "SqlAlchemyStore in each client process"}
    db_pid = db_root_pid(d.db)
    started = _start_all(d, opts, out) if opts.quick else {}
    for configuration in configurations(d.engine):
        progress(f"{d.engine}: {configuration}")
        server = started.get(configuration)
        if configuration != "limit" and server is None:
            server = _start_one(d, configuration, opts, out)
        target = d.target(configuration, server)
        pid = server.proc.pid if server else None
        out["writes"][configuration] = measure_writes(
            clients,
            target,
            Meter(pid, db_pid),
            opts.runs,
            opts.warmup_runs,
            f"{configuration}-{d.engine}",
        )
        for size, experiment_id in populated.items():
            out["search"][str(size)][configuration] = measure_searches(
                clients, target, Meter(pid, db_pid), experiment_id, opts.searches
            )
        if server is not None:
            peak = out["writes"][configuration].pop("memory_peak")
            out["memory"][configuration]["load_peak"] = peak
            if not opts.quick:
                stop_server(server)
    with ThreadPoolExecutor(len(SERVERS)) as pool:  # --quick's, together
        list(pool.map(stop_server, started.values()))
    return out


def _start_one(d: Deployment, configuration: str, opts: Options, out: dict) -> launcher.Server:
    """Start a server configuration (its start repeats), noting its figures in `out`."""
    server, out["start"][configuration], out["configurations"][configuration] = _start(
        d, configuration, opts
    )
    out["memory"][configuration] = {"idle": memory_figures(snapshot(server.proc.pid))}
    return server


def _start_all(d: Deployment, opts: Options, out: dict) -> dict[str, launcher.Server]:
    """--quick: every server configuration started at once, to save the smoke test time."""
    with ThreadPoolExecutor(len(SERVERS)) as pool:
        futures = {c: pool.submit(_start_one, d, c, opts, out) for c in servers(d.engine)}
        return {c: f.result() for c, f in futures.items()}


def _start(d: Deployment, configuration: str, opts: Options):
    """Start `configuration` `start_repeats` times; the last start stays up."""
    login = list(d.auth.admin_login()) if configuration == "ours" else None

    def launch(i: int) -> tuple[launcher.Server, float, dict]:
        log = d.home / f"{configuration}-{i}.log"
        if configuration in RECIPES:
            env, command = d.recipe(f"{configuration}-{i}", RECIPES[configuration])
            server, took = start_server(env, log, command, login)
            return server, took, {}
        env = d.pod_env(d.main, f"{configuration}-{i}", auth=configuration == "ours")
        started = time.time()
        server, took = start_server(env, log, None, login)
        return server, took, start_phases(server.logs(), started, started + took)

    server, figures = measure_starts(opts.start_repeats, launch)
    described = {
        "how": RECIPE_HOW if configuration in RECIPES else POD_HOW,
        "workers": memory_figures(snapshot(server.proc.pid))["workers"],
        "sign_in": configuration == "ours",
    }
    return server, figures, described


# --- the whole run --------------------------------------------------------------------------


def run_bench(dbs: dict, moto, ca: Path, charts: dict, opts: Options, workdir: Path) -> dict:
    """Every engine in `dbs` (engine -> MariaDb/Postgres, running), with moto (running), the
    test CA's bundle and each engine's synthesized chart. Returns every figure."""
    started = time.monotonic()
    results: dict = {
        "machine": machine(),
        "versions": versions(),
        "parameters": {**vars(opts), "search_filter": SEARCH_FILTER},
        "engines": {},
    }
    clients = Clients(opts.clients, workdir / "clients")
    try:
        for engine, db in dbs.items():
            home = workdir / engine
            deployment = Deployment(engine, db, charts[engine], moto, ca, home, quick=opts.quick)
            results["engines"][engine] = bench_engine(deployment, clients, opts)
            results["engines"][engine]["pod"] = pod_resources(charts[engine])
    finally:
        clients.close()
        stop_everything()
    results["artifacts"] = artifact_figures(opts, workdir / "artifacts")
    results["ratios"] = ratios(results)
    results["sizing"] = sizing(results)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["wall_s"] = round(time.monotonic() - started, 1)
    return results


def pod_resources(chart) -> dict:
    """The server container's CPU request, memory limit, workers and sign-in cache, as
    synthesized."""
    _, (_, main) = pod(chart)
    resources = main.get("resources", {})
    env = container_env(chart, main)
    return {
        "cpu_request": resources.get("requests", {}).get("cpu"),
        "memory_limit": resources.get("limits", {}).get("memory"),
        "workers": int(env["MLFLOW_WORKERS"]),
        "sign_in_cache_seconds": int(env.get("MLFLOW_AUTH_CACHE_SECONDS", "0")),
    }


def machine() -> dict:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def versions() -> dict:
    def out(*command: str) -> str:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        return (result.stdout or result.stderr).strip()

    python = str(launcher.image_venv() / "bin" / "python")
    code = "import mlflow, platform; print(mlflow.__version__, platform.python_version())"
    mlflow_version, python_version = out(python, "-c", code).split()
    mariadb = re.search(r"Ver (\S+)", out("mariadbd", "--version"))
    postgres = re.search(r"\(PostgreSQL\) (\S+)", out(str(PG_BIN_DIR / "postgres"), "--version"))
    return {
        "mlflow": mlflow_version,
        "python_image": python_version,
        "python_driver": platform.python_version(),
        "mariadb": mariadb.group(1) if mariadb else "?",
        "postgresql": postgres.group(1) if postgres else "?",
    }


# --- derived figures ------------------------------------------------------------------------

RATIO_FIGURES = {
    "writes": ("runs_per_s", "p50_ms", "p99_ms", "server_cpu_s_per_run"),
    "search": ("searches_per_s", "p50_ms", "p99_ms", "server_cpu_s_per_search"),
}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _ratios_to(figures: dict, by_config: dict, keys: tuple[str, ...]) -> dict:
    """`figures` over the recipe's, the limit's and, where it ran, mysqlclient's recipe's."""
    bases = {"to_recipe": "recipe", "to_limit": "limit"}
    if "recipe-mysqlclient" in by_config:
        bases["to_recipe_mysqlclient"] = "recipe-mysqlclient"
    return {
        k: {name: _ratio(figures[k], by_config[base][k]) for name, base in bases.items()}
        for k in keys
    }


def ratios(results: dict) -> dict:
    """Each configuration's figures over the recipes' and over the limit's."""
    out: dict = {}
    for engine, r in results["engines"].items():
        e = out[engine] = {"writes": {}, "search": {}, "start": {}, "memory": {}}
        ran = [c for c in CONFIGURATIONS if c in r["writes"]]
        for c in ran:
            e["writes"][c] = _ratios_to(r["writes"][c], r["writes"], RATIO_FIGURES["writes"])
        for size, by_config in r["search"].items():
            e["search"][size] = {
                c: _ratios_to(by_config[c], by_config, RATIO_FIGURES["search"]) for c in ran
            }
        for c in (c for c in SERVERS if c in ran):
            e["start"][c] = _ratio(r["start"][c]["median_s"], r["start"]["recipe"]["median_s"])
            e["memory"][c] = _ratio(
                r["memory"][c]["load_peak"]["pss_total_mib"],
                r["memory"]["recipe"]["load_peak"]["pss_total_mib"],
            )
        sizes = sorted(r["search"], key=int)
        if len(sizes) > 1:
            small, large = r["search"][sizes[0]], r["search"][sizes[-1]]
            for figure, name in (
                ("server_cpu_s_per_search", "server"),
                ("db_cpu_s_per_search", "db"),
            ):
                e[f"search_growth_{name}"] = {
                    c: _ratio(large[c][figure], small[c][figure]) for c in ran
                }
    return out


def sizing(results: dict) -> dict:
    """Per vCPU: the server CPU seconds per operation turned into operations per vCPU-second;
    per pod: that times the pod's CPU request, and the measured rate on this machine (the
    server shared its cores with the clients and the database). Memory: PSS per worker."""
    out: dict = {}
    for engine, r in results["engines"].items():
        request = _cpu_cores(r["pod"]["cpu_request"])
        e = out[engine] = {}
        for c in (c for c in SERVERS if c in r["writes"]):
            per_run = r["writes"][c]["server_cpu_s_per_run"]
            row = {
                "runs_per_vcpu_s": round(1 / per_run, 1) if per_run else None,
                "runs_per_s_at_pod_request": round(request / per_run, 1) if per_run else None,
                "runs_per_s_measured": r["writes"][c]["runs_per_s"],
                "pss_per_worker_mib": r["memory"][c]["load_peak"]["pss_per_worker_mib"],
                "pss_rest_mib": r["memory"][c]["load_peak"]["pss_rest_mib"],
                "workers": r["memory"][c]["load_peak"]["workers"],
            }
            for size, by_config in r["search"].items():
                per = by_config[c]["server_cpu_s_per_search"]
                row[f"searches_per_vcpu_s_{size}"] = round(1 / per, 1) if per else None
                row[f"searches_per_s_measured_{size}"] = by_config[c]["searches_per_s"]
            e[c] = row
    return out


def _cpu_cores(quantity: str | None) -> float:
    if not quantity:
        return 1.0
    quantity = str(quantity)
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


# --- outputs --------------------------------------------------------------------------------


def write_outputs(results: dict, json_path: Path, markdown_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    write_page(markdown_path, json_path.parent, server=results)


def write_page(markdown_path: Path, results_dir: Path, **current: dict) -> None:
    """The whole page: the bench that just ran gives its results (`current`, by name: server,
    hostile, traces); the others' come from their files in `results_dir` (a missing one leaves
    its sections out)."""
    from server_report import markdown
    from targets_report import RESULTS

    found = {}
    for name in ("server", "hostile", "traces", *RESULTS):
        path = results_dir / f"{name}.json"
        found[name] = current.get(name) or (json.loads(path.read_text()) if path.exists() else None)
    targets = {name: found[name] for name in RESULTS}
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(markdown(found["server"], found["hostile"], found["traces"], targets))


# --- standalone: its own servers ------------------------------------------------------------


@contextmanager
def own_servers(engines: list[str], workdir: Path) -> Iterator[tuple[dict, object, Path]]:
    """The integration tests' servers, started here: test CA, MariaDB/PostgreSQL, moto."""
    conftest = _load("bench_itest_conftest", INTEGRATION / "conftest.py")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log

    ca = make_test_ca(workdir / "ca")
    moto_port = free_port()
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto_server.start()
    dbs: dict = {}
    try:
        for engine in engines:
            cls = MariaDb if engine == "mysql" else Postgres
            dbs[engine] = cls(workdir / f"db-{engine}", ca)
            dbs[engine].install()
            dbs[engine].start()
        yield dbs, conftest.Moto(f"http://127.0.0.1:{moto_port}"), ca.ca
    finally:
        for db in dbs.values():
            db.stop()
        moto_server.stop()


@contextmanager
def standalone(
    name: str, engines: list[str], *, keep: bool
) -> Iterator[tuple[dict, dict, object, Path, Path]]:
    """A bench run on its own: SIGTERM taken as Ctrl-C, a work directory, each engine's chart
    synthesized, the servers up. Yields (charts, dbs, moto, CA bundle, work directory); stops
    every process it started, and removes the directory unless `keep`."""

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    # Under /tmp directly: the postgres user must reach its data directory.
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir="/tmp"))
    workdir.chmod(0o755)
    try:
        progress("synth")
        charts = synthesize_charts(engines, workdir)
        progress("servers")
        with own_servers(engines, workdir) as (dbs, moto, ca):
            yield charts, dbs, moto, ca, workdir
    finally:
        stop_everything()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def synthesize_charts(engines: list[str], workdir: Path) -> dict:
    """Each engine's chart, synthesized as the tests' `synth` fixture does."""
    tests_conftest = _load("bench_tests_conftest", ROOT / "tests" / "conftest.py")
    from config import load_settings

    charts = {}
    for engine in engines:
        name = CONFIG_FOR_ENGINE[engine]
        settings = load_settings(tests_conftest.CONFIGS[name])
        charts[engine] = tests_conftest.synthesize(name, settings, workdir / f"cdk-{name}")
    return charts


def _load(name: str, path: Path):
    """A module by file (both conftest.py files share a name, so neither goes on sys.path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", choices=["mysql", "postgres"])
    parser.add_argument("--clients", type=int)
    parser.add_argument("--runs", type=int, help="tracking-write runs per configuration")
    parser.add_argument("--search-sizes", type=int, nargs="+")
    parser.add_argument("--searches", type=int, help="searches per size and configuration")
    parser.add_argument("--start-repeats", type=int)
    parser.add_argument("--artifacts-mib", type=int, help="bench/artifacts.py's size; 0: none")
    parser.add_argument("--artifacts-repeats", type=int)
    parser.add_argument("--quick", action="store_true", help="a tiny workload (smoke test)")
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "server.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--report-only", action="store_true", help="rewrite --markdown from --json")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    base = QUICK if args.quick else DEFAULTS
    chosen = {k: getattr(args, k, None) for k in base}
    chosen = {k: v for k, v in chosen.items() if v is not None}
    return Options(**{**base, **chosen})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report_only:  # the page again from a run's figures (e.g. after editing the report)
        results = json.loads(args.json.read_text())
        results["ratios"], results["sizing"] = ratios(results), sizing(results)
        write_outputs(results, args.json, args.markdown)
        return
    engines = args.engines or ["mysql", "postgres"]
    opts = options(args)
    with standalone("server", engines, keep=args.keep) as (charts, dbs, moto, ca, workdir):
        results = run_bench(dbs, moto, ca, charts, opts, workdir)
    write_outputs(results, args.json, args.markdown)
    print(json.dumps(results["ratios"], indent=1))
    print(f"wrote {args.json} and {args.markdown} in {results['wall_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
