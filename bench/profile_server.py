"""Where the pod's server CPU goes per tracking run and per search, and what a change saves.

    .venv/bin/python bench/profile_server.py profile [--runs 160] [--searches 96]
        [--search-size 1000] [--py-spy /tmp/pyspy-venv/bin/py-spy] [--out DIR]
    .venv/bin/python bench/profile_server.py compare [--base main] [--rounds 4] [--runs 96]
        [--searches 48] [--search-sizes 1000 10000] [--json bench/results/profile_compare.json]

On bench/server.py's TLS-only MariaDB, with its clients and workloads (create_run + log_batch of
100 metrics, 10 params, 5 tags + update_run; search_runs `metrics.m1 > 0.5`, max_results 100).

* profile: the pod (sign-in on, the chart's 2 workers) under each workload, its uvicorn workers
  sampled by py-spy (`pip install py-spy` into a scratch venv; it attaches by pid, as root) at
  200 Hz, only the thread holding the GIL (`--gil`: on-CPU Python, not threads waiting on the
  database), and the SQL statements each operation sends (MariaDB's performance_schema digests,
  per schema: the tracking and the auth database). Prints ms of CPU per operation by layer
  (LAYERS) and the statements per operation; writes the raw stacks and a JSON summary to --out.
* compare: the pod from this work tree against the pod whose launcher is `--base`'s (its
  image/launcher/src first on PYTHONPATH; the same image venv otherwise), beside the recipe
  and the store in-process, all up together; each round measures every configuration in turn,
  the order reversed every other round (bench/drivers.py's way); medians of per-round ratios.
  `--ours-env` adds "ours+env": ours with more variables in its environment (a setting to try).

Read by people; asserts nothing. bench/README.md records the figures.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import server as bench

LAYERS = (
    # A sample goes to the first layer with a frame in its stack: inner layers first.
    ("auth: its SQL (user record, permissions)", r"mlflow/server/auth/.*(sqlalchemy/|MySQLdb/)"),
    ("auth: Python (incl. its FastAPI route match)", r"mlflow/server/auth/"),
    ("store: SQL (SQLAlchemy + mysqlclient)", r"sqlalchemy/|MySQLdb/"),
    ("store: Python", r"mlflow/store/"),
    ("protobuf/JSON (request, response)", r"_get_request_message|message_to_json|protobuf|/json/"),
    ("MLflow handlers", r"mlflow/server/handlers|mlflow/entities|mlflow/utils/"),
    ("Flask/werkzeug", r"flask/|werkzeug/"),
    (
        "WSGI bridge (thread hop, anyio)",
        r"starlette/middleware/wsgi|fastapi_app\.py|anyio/|threading",
    ),
    ("MLflow's ASGI stack (FastAPI, middleware)", r"fastapi/|starlette/|mlflow/"),
    ("our guard", r"mlflow_launcher/"),
    ("uvicorn + h11 (HTTP)", r"h11/|uvicorn/"),
    ("asyncio loop", r"asyncio/|selectors"),
)
PROFILE_RATE = 200


# --- profile --------------------------------------------------------------------------------


def workers(root: int) -> list[int]:
    return [p["pid"] for p in bench.snapshot(root)["processes"] if p["role"] == "worker"]


def start_sampling(py_spy: Path, pids: list[int], out: Path) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            [
                *(str(py_spy), "record", "--pid", str(pid), "--rate", str(PROFILE_RATE), "--gil"),
                *(
                    "--nonblocking",
                    "--format",
                    "raw",
                    "-o",
                    str(out.with_name(f"{out.name}-{pid}")),
                ),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    time.sleep(1.5)  # attached before the clients go
    return procs


def stop_sampling(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for proc in procs:
        proc.wait(60)


def by_layer(paths: list[Path], ops: int) -> dict[str, float]:
    """ms of sampled CPU per operation, by layer."""
    counts: collections.Counter[str] = collections.Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if stack:
                name = next((n for n, rx in LAYERS if re.search(rx, stack)), "other")
                counts[name] += int(n)
    return {
        name: round(counts[name] / PROFILE_RATE * 1000 / ops, 2)
        for name in [n for n, _ in LAYERS] + ["other"]
    }


def statements(db, schemas: list[str]) -> list[tuple[str, int, str]]:
    """(schema, count, digest) since the last reset, most frequent first."""
    names = ",".join(f"'{s}'" for s in schemas)
    out = db.admin(
        "SELECT SCHEMA_NAME, COUNT_STAR, LEFT(DIGEST_TEXT, 100) "  # noqa: S608 - our names
        "FROM performance_schema.events_statements_summary_by_digest "
        f"WHERE SCHEMA_NAME IN ({names}) ORDER BY COUNT_STAR DESC;"
    )
    return [(s, int(n), text) for s, n, text in (line.split("\t") for line in out.splitlines())]


def profile(args: argparse.Namespace, d: bench.Deployment, clients: bench.Clients) -> dict:
    experiment_id = populate(d, clients, args.search_size)
    server = start_pod(d, "ours")
    target = reach(d, "ours", server)
    db_pid = bench.db_root_pid(d.db)
    bench.measure_writes(clients, target, bench.Meter(server.proc.pid, db_pid), 16, 2, "warm")
    bench.measure_searches(clients, target, bench.Meter(server.proc.pid, db_pid), experiment_id, 8)
    schemas = [d.login.name, f"{d.login.name}_auth"]
    out: dict = {}
    for kind, op, ops in (("writes", "run", args.runs), ("searches", "search", args.searches)):
        d.db.admin("TRUNCATE TABLE performance_schema.events_statements_summary_by_digest;")
        samplers = start_sampling(args.py_spy, workers(server.proc.pid), args.out / kind)
        meter = bench.Meter(server.proc.pid, db_pid)
        if kind == "writes":
            figures = bench.measure_writes(clients, target, meter, ops, 0, "profiled")
        else:
            figures = bench.measure_searches(clients, target, meter, experiment_id, ops)
        stop_sampling(samplers)
        sql = statements(d.db, schemas)
        out[kind] = {
            "server_cpu_ms_per_op": round(figures[f"server_cpu_s_per_{op}"] * 1000, 1),
            "sampled_ms_per_op_by_layer": by_layer(sorted(args.out.glob(f"{kind}-*")), ops),
            "statements_per_op": round(sum(n for _, n, _ in sql) / ops, 2),
            "auth_statements_per_op": round(
                sum(n for s, n, _ in sql if s != d.login.name) / ops, 2
            ),
            "statements": [(s, round(n / ops, 2), text) for s, n, text in sql],
        }
        bench.progress(
            f"{kind}: {json.dumps({k: v for k, v in out[kind].items() if k != 'statements'})}"
        )
    bench.stop_server(server)
    return out


# --- compare --------------------------------------------------------------------------------

COMPARED = ("base", "ours", "ours+env", "recipe", "limit")
FIGURES = ("runs_per_s", "server_cpu_s_per_run")


def base_launcher(ref: str, target: Path) -> Path:
    """`ref`'s image/launcher/src, from git into `target` (the work tree is not touched)."""
    archive = subprocess.run(
        ["git", "-C", str(bench.ROOT), "archive", ref, "image/launcher/src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "image" / "launcher" / "src"


def compare(args: argparse.Namespace, d: bench.Deployment, clients: bench.Clients) -> dict:
    experiments = {size: populate(d, clients, size) for size in args.search_sizes}
    opts = bench.options(bench.parse_args(["--start-repeats", "1"]))
    running = {
        "base": start_pod(d, "base", base_launcher(args.base, d.home / "base-launcher")),
        "ours": start_pod(d, "ours"),
        "recipe": bench._start(d, "recipe", opts)[0],
    }
    compared = COMPARED if args.ours_env else tuple(c for c in COMPARED if c != "ours+env")
    if args.ours_env:
        running["ours+env"] = start_pod(d, "ours+env", extra=json.loads(args.ours_env))
    targets = {c: reach(d, c, running.get(c)) for c in compared}
    db_pid = bench.db_root_pid(d.db)
    names = FIGURES + tuple(f"server_cpu_s_per_search_{size}" for size in args.search_sizes)
    rounds: dict = {c: {f: [] for f in names} for c in compared}
    for i in range(args.rounds):
        for c in compared if i % 2 == 0 else compared[::-1]:
            pid = running[c].proc.pid if c in running else None
            w = bench.measure_writes(
                clients, targets[c], bench.Meter(pid, db_pid), args.runs, 2 if i == 0 else 0, c
            )
            for f in FIGURES:
                rounds[c][f].append(w[f])
            for size, experiment_id in experiments.items():
                s = bench.measure_searches(
                    clients, targets[c], bench.Meter(pid, db_pid), experiment_id, args.searches
                )
                rounds[c][f"server_cpu_s_per_search_{size}"].append(s["server_cpu_s_per_search"])
        bench.progress(f"round {i + 1}/{args.rounds}")
        write(args.json, {"rounds": rounds, "summary": summary(rounds)})  # kept if a round fails
    for server in running.values():
        bench.stop_server(server)
    return {"rounds": rounds, "summary": summary(rounds)}


def summary(rounds: dict) -> dict:
    """Medians, and each figure's median per-round ratio to every other configuration."""
    out = {}
    for c, figures in rounds.items():
        out[c] = {f: round(statistics.median(v), 5) for f, v in figures.items()}
        for base, base_figures in rounds.items():
            if base != c:
                out[c][f"to_{base}"] = {
                    f: round(
                        statistics.median(a / b for a, b in zip(v, base_figures[f], strict=True)), 3
                    )
                    for f, v in figures.items()
                }
    return out


# --- shared ---------------------------------------------------------------------------------


def populate(d: bench.Deployment, clients: bench.Clients, size: int) -> str:
    spec = {"mode": "populate", "target": d.target("limit", None), "count": size}
    return clients.call({**spec, "experiment": f"search-{size}"})["experiment_id"]


def start_pod(
    d: bench.Deployment,
    name: str,
    launcher_src: Path | None = None,
    extra: dict[str, str] | None = None,
):
    """The pod, sign-in on; with `launcher_src` first on PYTHONPATH (serve and its workers
    import the launcher from there), `extra` added to its environment."""
    env = d.pod_env(d.main, name, auth=True) | (extra or {})
    if launcher_src is not None:
        env["PYTHONPATH"] = str(launcher_src)
    login = list(d.auth.admin_login())
    return bench.start_server(env, d.home / f"{name}.log", None, login)[0]


def reach(d: bench.Deployment, configuration: str, server) -> dict:
    if configuration == "limit":
        return d.target("limit", None)
    signed_in = configuration in ("base", "ours", "ours+env")
    login = list(d.auth.admin_login()) if signed_in else None
    return {"kind": "http", "uri": server.base_url, "login": login}


def write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": bench.machine(), **results}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    one = modes.add_parser("profile")
    one.add_argument("--runs", type=int, default=160)
    one.add_argument("--searches", type=int, default=96)
    one.add_argument("--search-size", type=int, default=1000)
    one.add_argument("--py-spy", type=Path, default=shutil.which("py-spy"))
    one.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench-profile")
    two = modes.add_parser("compare")
    two.add_argument("--base", default="main", help="git ref of the launcher to compare with")
    two.add_argument("--rounds", type=int, default=4)
    two.add_argument("--runs", type=int, default=96)
    two.add_argument("--searches", type=int, default=48)
    two.add_argument("--search-sizes", type=int, nargs="+", default=[1000, 10000])
    two.add_argument(
        "--ours-env", help='JSON: "ours+env", ours with these variables too (a setting to try)'
    )
    two.add_argument("--json", type=Path, default=bench.BENCH / "results" / "profile_compare.json")
    args = parser.parse_args(argv)
    if args.mode == "profile":
        if args.py_spy is None or not args.py_spy.exists():
            sys.exit("no py-spy: pip install py-spy into a scratch venv and name it (--py-spy)")
        args.out.mkdir(parents=True, exist_ok=True)
    with bench.standalone("profile", ["mysql"], keep=False) as (charts, dbs, moto, ca, workdir):
        d = bench.Deployment("mysql", dbs["mysql"], charts["mysql"], moto, ca, workdir / "mysql")
        clients = bench.Clients(8, workdir / "clients")
        try:
            d.prepare()
            clients.wait_started()
            results = (profile if args.mode == "profile" else compare)(args, d, clients)
        finally:
            clients.close()
            bench.stop_everything()
    path = args.out / "profile.json" if args.mode == "profile" else args.json
    write(path, results)
    json.dump(results.get("summary", results), sys.stdout, indent=1, default=str)
    print(f"\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
