"""The server pod under hostile and careless traffic, against the recipe it replaces.

    .venv/bin/python bench/hostile.py [--body-mib 256] [--passwords 64] [--idle 200]
        [--dribble-s 30] [--careless-mib 15] [--settle-s 30] [--settle-every-s 1] [--quick]
        [--report-only]
        [--json bench/results/hostile.json] [--server-json bench/results/server.json]
        [--markdown docs/benchmarks.md]

Two servers side by side in one run, on one MariaDB (the integration tests' TLS-only server,
started here on loopback, with moto's server for S3 and Secrets Manager):

* ours: the server as deployed, as tests/integration/test_guard.py starts it: the synthesized
  default chart's ConfigMap (AWS endpoints made local), the initContainer's `migrate`, then
  `serve` through the image's ENTRYPOINT with the pod's worker count, sign-in on;
* recipe: what a user of the manual recipe runs, plain `mlflow server --app-name basic-auth`
  with MLflow's defaults (its auth database: SQLite in the working directory, as its
  basic_auth.ini says) and the same workers and tracking store (bench/server.py's starter).

Cases, each run on ours and then on the recipe, every server settling in between (its memory
still for a while): (1) a chunked POST of `--body-mib` to log-batch without a login;
(2) `--passwords` concurrent requests with wrong passwords for the admin, each from its own
loopback address, half to a Flask route and half to a native FastAPI one (an artifact GET);
(3) the same from one address; (4) `--idle` connections that send nothing plus one that
dribbles a request line, held `--dribble-s` seconds; (5) a signed-in `--careless-mib` JSON
array sent to log-batch (a careless client). Per case and server: PSS of the process tree at
rest before, at its peak during, at rest after (tests/integration/itest_hostile.py samples it
and polls /health as the probes do, every 200 ms with their 5 s timeout); the container's
memory limit from the chart; the answers' statuses; /health latency and the polls a probe
would have failed; whether a signed-in request is served afterwards.

127.0.0.0/8 is all local on Linux, so each source address stands for another host. These are
measurements on loopback on a shared machine, not on EKS: nothing here asserts a figure.
Every process it starts is in a process group of its own and stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
INTEGRATION = ROOT / "tests" / "integration"
# The integration tests' helpers and bench/server.py's starters, used as they are.
for _path in (INTEGRATION, BENCH, ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import itest_hostile as hostile  # noqa: E402
import itest_launcher as launcher  # noqa: E402
import server as bench  # noqa: E402 - bench/server.py
from server_memory import snapshot  # noqa: E402

ENGINE = "mysql"
CONFIGURATIONS = ("ours", "recipe")
RECIPE_HOW = "mlflow server --app-name basic-auth --workers N (MLflow's defaults otherwise)"
DEFAULTS = {"body_mib": 256, "passwords": 64, "idle": 200, "dribble_s": 30, "careless_mib": 15}
DEFAULTS |= {"settle_s": 30.0, "settle_every_s": 1.0, "quick": False}
QUICK = {"body_mib": 16, "passwords": 8, "idle": 10, "dribble_s": 2, "careless_mib": 4}
QUICK |= {"settle_s": 2.0, "settle_every_s": 0.25, "quick": True}
"""--quick: a smoke test's workload (every figure measured, none meaningful). Settling waits
at most 2 s, sampling every 0.25 s: the run has 22 settles, which at a sample a second took
at least 22 s of the smoke test's 50, and at rest is a figure here, not a finding."""
SETTLED_MIB = 2.0
"""At rest: two PSS samples `settle_every_s` apart differ by less than this."""
# Source addresses per case (a throttle counts per address: no case inherits another's).
SOURCES = {"large_body": "127.0.1.1", "one_source": "127.0.3.1", "careless": "127.0.5.1"}
SERVED_SOURCE = "127.0.9.1"
IDLE_SOURCES = [f"127.0.4.{i}" for i in range(1, 21)]


def many_sources(count: int) -> list[str]:
    """`count` distinct loopback addresses, 127.0.10.1 onwards."""
    return [f"127.0.{10 + i // 250}.{1 + i % 250}" for i in range(count)]


# --- the two servers ------------------------------------------------------------------------


@dataclass
class Target:
    """A running server and what the cases need of it."""

    configuration: str
    server: launcher.Server
    admin: tuple[str, str]
    experiment_id: str = ""

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def signed_in(self, source: str = SERVED_SOURCE) -> hostile.Answer:
        return hostile.request(self.port, "GET", hostile.SEARCH, login=self.admin, source=source)


def recipe_with_sign_in(d: bench.Deployment, workers: int) -> tuple[dict, list[str], tuple]:
    """bench/server.py's recipe with `--app-name basic-auth` and the pod's worker count. MLflow
    needs an admin password and a Flask key for it (no defaults); its auth database is
    basic_auth.ini's `sqlite:///basic_auth.db`, in the working directory: the recipe's home."""
    env, command = d.recipe("recipe", workers=workers)
    admin = ("admin", f"recipe-{secrets.token_urlsafe(18)}")  # basic_auth.ini's admin_username
    env |= {"MLFLOW_AUTH_ADMIN_PASSWORD": admin[1]}
    env |= {"MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32)}
    chdir = [shutil.which("env") or "/usr/bin/env", f"--chdir={env['HOME']}"]
    command = [*chdir, *command, "--app-name", "basic-auth"]
    return env, command, admin


def start_targets(d: bench.Deployment, workers: int) -> dict[str, Target]:
    """Both servers, started at once; each answers a signed-in search when this returns."""
    recipe_env, recipe_command, recipe_admin = recipe_with_sign_in(d, workers)
    ours_env = d.pod_env(d.main, "ours", auth=True)
    how = {
        "ours": (ours_env, None, d.auth.admin_login()),
        "recipe": (recipe_env, recipe_command, recipe_admin),
    }

    def start(configuration: str) -> Target:
        env, command, admin = how[configuration]
        log = d.home / f"{configuration}.log"
        server, took = bench.start_server(env, log, command, list(admin))
        bench.progress(f"{configuration}: up in {took:.1f} s")
        return Target(configuration, server, admin)

    with ThreadPoolExecutor(len(how)) as pool:
        return dict(zip(how, pool.map(start, how), strict=True))


def create_experiment(target: Target) -> str:
    """An experiment to name in the artifact paths (signed in, as a user would make it)."""
    answer = hostile.request(
        target.port,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        login=target.admin,
        body=json.dumps({"name": f"hostile-{secrets.token_hex(4)}"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    if answer.status != 200:
        raise RuntimeError(f"{target.configuration}: could not create an experiment: {answer}")
    return json.loads(answer.body)["experiment_id"]


# --- measuring ------------------------------------------------------------------------------


def settle(pid: int, timeout: float, every: float) -> dict:
    """The tree's PSS once two samples `every` seconds apart differ by less than SETTLED_MIB
    (at rest), or the last sample after `timeout` seconds."""
    started = time.monotonic()
    previous = hostile.tree_pss_mib(pid)
    while True:
        time.sleep(every)
        current = hostile.tree_pss_mib(pid)
        waited = time.monotonic() - started
        if abs(current - previous) < SETTLED_MIB or waited >= timeout:
            settled = abs(current - previous) < SETTLED_MIB
            return {"pss_mib": round(current, 1), "waited_s": round(waited, 1), "settled": settled}
        previous = current


def rest_figures(pid: int, timeout: float, every: float) -> dict:
    """Once settled, the tree's PSS: in all, per worker, and in the rest (the CLI, uvicorn's
    supervisor; in the recipe also MLflow's job runner and its consumers)."""
    settle(pid, timeout, every)
    return bench.memory_figures(snapshot(pid))


def workers_up(pid: int, workers: int, timeout: float) -> int:
    """Until the tree has `workers` uvicorn workers (/health answers once one has started)."""
    deadline = time.monotonic() + timeout
    while (found := bench.memory_figures(snapshot(pid))["workers"]) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{found} of {workers} workers after {timeout:.0f} s")
        time.sleep(1.0)
    return found


def statuses(answers: list[hostile.Answer]) -> dict[str, int]:
    """How many answers had each status; `no answer (Error)` when the connection ended first."""
    names = [
        str(a.status) if a.status is not None else f"no answer ({(a.error or '?').split('(')[0]})"
        for a in answers
    ]
    return dict(sorted(Counter(names).items()))


def health_figures(watch: hostile.Watch) -> dict:
    """/health as the probes saw it while the case ran: latency, and polls a probe fails."""
    latencies = [seconds for _, seconds in watch.health]
    if not latencies:
        return {"polls": 0}
    return {
        "polls": len(latencies),
        "p50_ms": round(bench.percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(bench.percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "failed": len(watch.failed_probes()),
        "statuses": statuses([hostile.Answer(status) for status, _ in watch.health]),
    }


# --- the cases: each returns its answers' figures -------------------------------------------


@dataclass
class Options:
    body_mib: int
    passwords: int
    idle: int
    dribble_s: int
    careless_mib: int
    settle_s: float
    settle_every_s: float
    quick: bool


def large_body(t: Target, opts: Options) -> dict:
    answer = hostile.request(
        t.port, "POST", hostile.LOG_BATCH, chunked_mib=opts.body_mib, source=SOURCES["large_body"]
    )
    return {"statuses": statuses([answer])}


def _wrong_passwords(t: Target, opts: Options, sources: list[str]) -> dict:
    """opts.passwords requests at once, the even ones to a Flask route (experiments search),
    the odd ones to a native FastAPI route (an artifact GET), `sources` in turn."""
    routes = {
        "flask": hostile.SEARCH,
        "fastapi": f"{hostile.ARTIFACTS}/{t.experiment_id}/hostile/x.txt",
    }
    names = list(routes)

    def one(i: int) -> tuple[str, hostile.Answer]:
        route = names[i % 2]
        login = (t.admin[0], f"wrong-{secrets.token_hex(6)}")
        source = sources[i % len(sources)]
        return route, hostile.request(t.port, "GET", routes[route], login=login, source=source)

    with ThreadPoolExecutor(opts.passwords) as pool:
        answers = list(pool.map(one, range(opts.passwords)))
    return {
        "statuses": statuses([a for _, a in answers]),
        "by_route": {r: statuses([a for name, a in answers if name == r]) for r in names},
    }


def wrong_passwords(t: Target, opts: Options) -> dict:
    return _wrong_passwords(t, opts, many_sources(opts.passwords))


def one_source(t: Target, opts: Options) -> dict:
    return _wrong_passwords(t, opts, [SOURCES["one_source"]])


def idle_connections(t: Target, opts: Options) -> dict:
    """How many connections the server still holds, about every second for `dribble_s`
    seconds from their opening (it closes those that do not finish their headers in time, or
    it does not), and whether a signed-in request is served meanwhile."""
    with hostile.idle_connections(t.port, opts.idle, IDLE_SOURCES) as held:
        opened = time.monotonic()
        during = t.signed_in()
        open_at: list[tuple[float, int]] = []
        while True:  # one sample at least: the signed-in request can outlast dribble_s
            elapsed = time.monotonic() - opened
            left = hostile.still_open(held, min(1.0, max(opts.dribble_s - elapsed, 0.1)))
            sampled = time.monotonic() - opened  # the sample's time decides the loop's end too
            open_at.append((round(sampled, 1), left))
            if sampled >= opts.dribble_s:
                break
            time.sleep(max(0.0, opened + len(open_at) - time.monotonic()))
    return {
        "statuses": statuses([during]),
        "connections": len(held),
        "open_at_end": open_at[-1][1],
        "all_closed_after_s": next((s for s, left in open_at if left == 0), None),
        "open_at_s": open_at,
    }


def careless(t: Target, opts: Options) -> dict:
    """A signed-in JSON array of integers, `careless_mib` long, with its Content-Length."""
    count = opts.careless_mib * hostile.MIB // 2
    body = b"[" + b"0," * (count - 1) + b"0]"
    answer = hostile.request(
        t.port,
        "POST",
        hostile.LOG_BATCH,
        login=t.admin,
        body=body,
        headers={"Content-Type": "application/json"},
        source=SOURCES["careless"],
    )
    return {"statuses": statuses([answer])}


CASES: dict[str, tuple[Callable[[Target, Options], dict], str]] = {
    "large_body": (large_body, "{body_mib} MiB chunked POST to log-batch, no login"),
    "wrong_passwords": (
        wrong_passwords,
        "{passwords} wrong admin passwords at once, each from its own address",
    ),
    "one_source": (one_source, "{passwords} wrong admin passwords at once from one address"),
    "idle_connections": (
        idle_connections,
        "{idle} idle connections and one dribbling a request line, {dribble_s} s",
    ),
    "careless": (careless, "a signed-in {careless_mib} MiB JSON array to log-batch"),
}


def run_case(name: str, t: Target, opts: Options, limit_mib: int) -> dict:
    """One case on one server: at rest before, watched during, at rest after."""
    case, _ = CASES[name]
    before = settle(t.pid, opts.settle_s, opts.settle_every_s)
    started = time.monotonic()
    with hostile.Watch(t.pid, t.port) as watch:
        figures = case(t, opts)
    seconds = time.monotonic() - started
    after = settle(t.pid, opts.settle_s, opts.settle_every_s)
    served = t.signed_in()
    peak = round(watch.peak, 1)
    bench.progress(
        f"{name} on {t.configuration}: {figures['statuses']}, peak {peak:.0f} MiB, "
        f"/health worst {watch.slowest_health * 1000:.0f} ms"
    )
    return {
        "pss_mib": {
            "before": before["pss_mib"],
            "peak": peak,
            "after": after["pss_mib"],
            "growth": round(peak - before["pss_mib"], 1),
        },
        "settled": {"before": before, "after": after},
        "margin_mib": round(limit_mib - peak, 1),
        "peak_of_limit": round(peak / limit_mib, 3),
        "health": health_figures(watch),
        "seconds": round(seconds, 1),
        "served_after": served.status,
        **figures,
    }


# --- the whole run --------------------------------------------------------------------------


def run_bench(db, moto, ca: Path, chart, opts: Options, workdir: Path) -> dict:
    """Both servers on `db` (a running MariaDb), with moto (running), the test CA's bundle and
    the default deployment's synthesized chart. Returns every figure."""
    started = time.monotonic()
    pod = bench.pod_resources(chart)
    limit_mib = memory_mib(pod["memory_limit"])
    results: dict = {
        "machine": bench.machine(),
        "versions": bench.versions(),
        "parameters": asdict(opts),
        "pod": {**pod, "memory_limit_mib": limit_mib},
        "configurations": {},
        "cases": {},
    }
    d = bench.Deployment(ENGINE, db, chart, moto, ca, workdir / ENGINE, quick=opts.quick)
    try:
        bench.progress("migrate")
        d.prepare()
        targets = start_targets(d, pod["workers"])
        for t in targets.values():
            t.experiment_id = create_experiment(t)
            workers = workers_up(t.pid, pod["workers"], timeout=120)
            results["configurations"][t.configuration] = {
                "how": bench.POD_HOW if t.configuration == "ours" else RECIPE_HOW,
                "workers": workers,
                "sign_in": True,
                "at_rest": rest_figures(t.pid, opts.settle_s * 2, opts.settle_every_s),
            }
        for name, (_, what) in CASES.items():
            case = results["cases"][name] = {"what": what.format(**asdict(opts))}
            for configuration in CONFIGURATIONS:
                case[configuration] = run_case(name, targets[configuration], opts, limit_mib)
        for t in targets.values():
            bench.stop_server(t.server)
    finally:
        bench.stop_everything()
    results["ratios"] = ratios(results)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["wall_s"] = round(time.monotonic() - started, 1)
    return results


def memory_mib(quantity: str) -> int:
    """A Kubernetes memory quantity in Mi or Gi (the chart writes Mi) as MiB."""
    units = {"Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * factor
    raise ValueError(f"memory limit {quantity!r}: expected Mi or Gi")


def ratios(results: dict) -> dict:
    """Per case, ours over the recipe: peak PSS, growth, /health p99 and worst."""
    out = {}
    for name, case in results["cases"].items():
        ours, recipe = case["ours"], case["recipe"]
        growth = [max(c["pss_mib"]["growth"], 0.0) for c in (ours, recipe)]
        out[name] = {
            "peak": bench._ratio(ours["pss_mib"]["peak"], recipe["pss_mib"]["peak"]),
            "growth": bench._ratio(*growth),
            **{
                f"health_{key}": bench._ratio(
                    ours["health"].get(f"{key}_ms"), recipe["health"].get(f"{key}_ms")
                )
                for key in ("p99", "max")
            },
        }
    return out


# --- outputs --------------------------------------------------------------------------------


def write_outputs(results: dict, json_path: Path, server_json: Path, markdown_path: Path) -> None:
    """The figures, then the whole page: bench/server.py's sections (from `server_json`, when
    there) followed by this bench's."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    bench.write_page(markdown_path, server_json.parent, hostile=results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-mib", type=int, help="case 1's body")
    parser.add_argument("--passwords", type=int, help="cases 2 and 3's concurrent requests")
    parser.add_argument("--idle", type=int, help="case 4's idle connections")
    parser.add_argument("--dribble-s", type=int, help="case 4's duration")
    parser.add_argument("--careless-mib", type=int, help="case 5's signed-in body")
    parser.add_argument("--settle-s", type=float, help="longest wait for the memory to settle")
    parser.add_argument("--settle-every-s", type=float, help="the settling samples' interval")
    parser.add_argument("--quick", action="store_true", help="a tiny workload (smoke test)")
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "hostile.json")
    parser.add_argument("--server-json", type=Path, default=BENCH / "results" / "server.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--report-only", action="store_true", help="rewrite --markdown from --json")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    base = QUICK if args.quick else DEFAULTS
    chosen = {k: getattr(args, k, None) for k in base}
    return Options(**{**base, **{k: v for k, v in chosen.items() if v is not None}})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report_only:
        results = json.loads(args.json.read_text())
        results["ratios"] = ratios(results)
        write_outputs(results, args.json, args.server_json, args.markdown)
        return
    opts = options(args)
    with bench.standalone("hostile", [ENGINE], keep=args.keep) as (charts, dbs, moto, ca, work):
        results = run_bench(dbs[ENGINE], moto, ca, charts[ENGINE], opts, work)
    write_outputs(results, args.json, args.server_json, args.markdown)
    print(json.dumps(results["ratios"], indent=1))
    print(f"wrote {args.json} and {args.markdown} in {results['wall_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
