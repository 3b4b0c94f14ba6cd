"""The image's MySQL driver, chosen by measurement: mysqlclient against PyMySQL, side by side.

    .venv/bin/python bench/drivers.py [--rounds 4] [--clients 8] [--runs 64] [--searches 32]
        [--search-size 1000] [--variant NAME:VAR=VALUE,...] [--json bench/results/drivers.json]

On bench/server.py's TLS-only MariaDB, with its clients, every server up together; each round
measures every configuration in turn, the order reversed every other round, so the drift of
this shared machine falls on all alike. Ratios are taken per round, then their median.

* ours: the pod as bench/server.py runs it (mysqlclient, the image's driver; sign-in on).
* ours-pymysql: the same pod, the launcher's URL made for PyMySQL (the image's driver before)
  with the certificate and host name still verified (bench/pymysql_launcher), PyMySQL on its
  PYTHONPATH.
* recipe-mysqlclient: the recipe as the seed writes it on MySQL (`mysql://`, mysqlclient).
* recipe: the same recipe on PyMySQL.
* limit, limit-pymysql: MLflow's SqlAlchemyStore in the client processes on each driver,
  certificate and host name verified: the driver's own share, without HTTP or a server.
* each `--variant NAME:VAR=VALUE,...`: `ours` with those variables added to its pod's
  environment (a setting tried against the pod as it ships, in the same rounds).

Per configuration and round: runs/s and server CPU per run (create_run + log_batch of 100
metrics, 10 params, 5 tags + update_run), searches/s and server CPU per search (a metric
filter over `--search-size` runs). Writes bench/results/drivers.json; read by people, asserts
nothing. bench/README.md records the figures and the decision.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import server as bench

SHIM = bench.BENCH / "pymysql_launcher"
CONFIGURATIONS = ("ours", "ours-pymysql", "recipe-mysqlclient", "recipe", "limit")
CONFIGURATIONS += ("limit-pymysql",)
FIGURES = ("runs_per_s", "server_cpu_s_per_run", "searches_per_s", "server_cpu_s_per_search")


def start_pod_with(d: bench.Deployment, name: str, env: dict[str, str]) -> bench.launcher.Server:
    """`ours` with `env` added to the pod's environment."""
    login = list(d.auth.admin_login())
    pod = d.pod_env(d.main, name, auth=True) | env
    return bench.start_server(pod, d.home / f"{name}.log", None, login)[0]


def check_driver(server: bench.launcher.Server, name: str, scheme: str) -> None:
    """Every process of the pod that has a store URI names `scheme`."""
    schemes = set(_uri_of_workers(server.proc.pid).split())
    if schemes != {scheme}:
        raise RuntimeError(f"{name} runs on {schemes or 'no store'}, not {scheme}")


def start_pod_on_pymysql(d: bench.Deployment) -> bench.launcher.Server:
    """`ours` with the shim and PyMySQL on PYTHONPATH; checked to run on PyMySQL."""
    pythonpath = {"PYTHONPATH": f"{bench.pymysql_path()}:{SHIM}"}
    server = start_pod_with(d, "ours-pymysql", pythonpath)
    check_driver(server, "ours-pymysql", "mysql+pymysql://")
    return server


def _uri_of_workers(root: int) -> str:
    """MLFLOW_BACKEND_STORE_URI as the server's processes see it (the launcher hands it over
    in the environment)."""
    found = []
    for proc in bench.snapshot(root)["processes"]:
        environ = Path(f"/proc/{proc['pid']}/environ")
        if environ.exists():
            for item in environ.read_bytes().split(b"\0"):
                if item.startswith(b"MLFLOW_BACKEND_STORE_URI="):
                    value = item.split(b"=", 1)[1]
                    found.append(value.split(b"://", 1)[0].decode())
    return " ".join(f"{scheme}://" for scheme in found)


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, settings = text.partition(":")
    env = dict(item.split("=", 1) for item in settings.split(",") if "=" in item)
    if not name or name in CONFIGURATIONS or not env:
        raise argparse.ArgumentTypeError(f"a variant needs a new name and VAR=VALUE: {text}")
    return name, env


def targets(d: bench.Deployment, running: dict) -> dict[str, dict]:
    """How the clients reach each configuration."""
    out = {
        c: d.target("recipe" if c.startswith("recipe") else "ours", s) for c, s in running.items()
    }
    out["limit"] = d.target("limit", None)
    verified = "&ssl_check_hostname=true"
    out["limit-pymysql"] = out["limit"] | {"uri": d.store_uri("pymysql") + verified}
    return out


def measure(args: argparse.Namespace, charts, dbs, moto, ca, workdir: Path) -> dict:
    d = bench.Deployment("mysql", dbs["mysql"], charts["mysql"], moto, ca, workdir / "mysql")
    clients = bench.Clients(args.clients, workdir / "clients", pythonpath=str(bench.pymysql_path()))
    opts = bench.options(bench.parse_args(["--start-repeats", "1"]))
    variants = dict(args.variant)
    configurations = (*CONFIGURATIONS, *variants)
    rounds: dict = {c: {f: [] for f in FIGURES} for c in configurations}
    try:
        d.prepare()
        clients.wait_started()
        populate = {"mode": "populate", "target": d.target("limit", None)}
        populate |= {"count": args.search_size, "experiment": "search"}
        experiment_id = clients.call(populate)["experiment_id"]
        bench.progress("servers")
        running = {c: bench._start(d, c, opts)[0] for c in ("ours", "recipe-mysqlclient", "recipe")}
        check_driver(running["ours"], "ours", "mysql+mysqldb://")
        running["ours-pymysql"] = start_pod_on_pymysql(d)
        running |= {name: start_pod_with(d, name, env) for name, env in variants.items()}
        reach, db_pid = targets(d, running), bench.db_root_pid(d.db)
        for i in range(args.rounds):
            order = configurations if i % 2 == 0 else configurations[::-1]
            for c in order:
                pid = running[c].proc.pid if c in running else None
                warmup = 2 if i == 0 else 0
                tag = f"{c}-{i}"
                w = bench.measure_writes(
                    clients, reach[c], bench.Meter(pid, db_pid), args.runs, warmup, tag
                )
                s = bench.measure_searches(
                    clients, reach[c], bench.Meter(pid, db_pid), experiment_id, args.searches
                )
                for figure in FIGURES:
                    rounds[c][figure].append((w | s)[figure])
            bench.progress(f"round {i + 1}/{args.rounds}")
        for server in running.values():
            bench.stop_server(server)
    finally:
        clients.close()
        bench.stop_everything()
    return rounds


def summary(rounds: dict) -> dict:
    """Medians, and each figure's per-round ratio to ours and to mysqlclient's recipe."""
    out = {}
    for c, figures in rounds.items():
        out[c] = {f: round(statistics.median(v), 5) for f, v in figures.items()}
        for base in ("ours", "recipe-mysqlclient"):
            out[c][f"to_{base}"] = {
                f: round(
                    statistics.median(a / b for a, b in zip(v, rounds[base][f], strict=True)), 3
                )
                for f, v in figures.items()
            }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--runs", type=int, default=64, help="runs per configuration and round")
    parser.add_argument("--searches", type=int, default=32)
    parser.add_argument("--search-size", type=int, default=1000)
    parser.add_argument(
        "--variant", type=_variant, action="append", default=[],
        help="ours with extra pod variables, e.g. pool5:MLFLOW_SQLALCHEMYSTORE_POOL_SIZE=5",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=bench.BENCH / "results" / "drivers.json")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with bench.standalone("drivers", ["mysql"], keep=False) as (charts, dbs, moto, ca, workdir):
        machine, versions = bench.machine(), bench.versions()
        rounds = measure(args, charts, dbs, moto, ca, workdir)
    machine["loadavg_end"] = os.getloadavg()
    results = {
        "machine": machine,
        "versions": versions,
        "parameters": {k: v for k, v in vars(args).items() if k not in ("json", "variant")},
        "variants": dict(args.variant),
        "rounds": rounds,
        "summary": summary(rounds),
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    json.dump(results["summary"], sys.stdout, indent=1)
    print(f"\nwrote {args.json} in {results['wall_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
