"""Trace ingest over OTLP: spans per second and server CPU per span, ours against the recipe.

    .venv/bin/python bench/traces.py [--engines mysql postgres] [--clients 4] [--exports 30]
        [--quick] [--json bench/results/traces.json] [--markdown docs/benchmarks.md]

Per engine, two servers side by side on one database server (bench/server.py's starters, as
they are): ours as deployed (the synthesized pod, `serve` through the launcher, the chart's
workers, sign-in on) and the recipe (plain `mlflow server`, MLflow's defaults, no sign-in).
`--clients` processes (bench/server_client.py's `traces` mode, the image's Python) each POST
`--exports` OTLP/HTTP protobuf bodies to /v1/traces, each carrying 5 traces of 10 spans with a
kilobyte of inputs and outputs per span, after 2 untimed ones; ours signed in. Figures: spans
per second, server and database CPU per span (so spans per vCPU-second), export latency p50 and
p99, the server's peak PSS during ingest. Writes bench/results/traces.json and its section of
docs/benchmarks.md.

Measurements on loopback on a shared machine, not on EKS; nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import server as bench  # noqa: E402 - bench/server.py (it puts the test helpers on sys.path)

CONFIGURATIONS = ("recipe", "ours")
SPANS_PER_EXPORT = 50
"""server_client.py: TRACES_PER_EXPORT x SPANS_PER_TRACE."""
WARMUP_EXPORTS = 2
DEFAULTS = {"clients": 4, "exports": 30, "quick": False}
QUICK = {"clients": 2, "exports": 2, "quick": True}


@dataclass
class Options:
    clients: int
    exports: int
    quick: bool


def ingest(d: bench.Deployment, clients: bench.Clients, configuration: str, opts: Options) -> dict:
    """Start `configuration`, let the clients export, stop it; its figures."""
    login = list(d.auth.admin_login()) if configuration == "ours" else None
    if configuration == "recipe":
        env, command = d.recipe("traces-recipe")
    else:
        env, command = d.pod_env(d.main, "traces-ours", auth=True), None
    server, _ = bench.start_server(env, d.home / f"traces-{configuration}.log", command, login)
    try:
        target = d.target(configuration, server)
        experiment = clients.call(
            {"mode": "experiment", "target": target, "experiment": f"traces-{configuration}"}
        )["experiment_id"]
        meter = bench.Meter(server.proc.pid, bench.db_root_pid(d.db))
        spec = {"mode": "traces", "target": target, "experiment_id": experiment}
        spec |= {"count": opts.exports, "warmup": WARMUP_EXPORTS}
        specs = [{**spec, "seed": i} for i in range(opts.clients)]
        answers, wall = clients.timed(specs, meter)
    finally:
        bench.stop_server(server)
    spans = opts.clients * opts.exports * SPANS_PER_EXPORT
    latencies = [x for a in answers for x in a["latencies"]]
    return {
        "spans": spans,
        "exports": opts.clients * opts.exports,
        "wall_s": round(wall, 3),
        "spans_per_s": round(spans / wall, 1),
        "server_cpu_ms_per_span": round(meter.cpu["server"] / spans * 1000, 3),
        # The uvicorn workers alone: the recipe's tree also holds MLflow's job runner and its
        # huey consumers, which poll whether or not anything is ingested.
        "worker_cpu_ms_per_span": round(meter.cpu["workers"] / spans * 1000, 3),
        "db_cpu_ms_per_span": round(meter.cpu["db"] / spans * 1000, 3),
        "spans_per_server_cpu_s": round(spans / meter.cpu["server"], 1),
        "p50_ms": round(bench.percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(bench.percentile(latencies, 0.99) * 1000, 1),
        # Exports answered 429/502/503/504 first, and sent again as the SDK's exporter does.
        "retries": sum(a["retries"] for a in answers),
        "memory_peak": bench.memory_figures(meter.peak) if meter.peak else None,
    }


def run_bench(dbs: dict, moto, ca: Path, charts: dict, opts: Options, workdir: Path) -> dict:
    started = time.monotonic()
    results: dict = {
        "machine": bench.machine(),
        "versions": bench.versions(),
        "parameters": asdict(opts),
        "engines": {},
    }
    clients = bench.Clients(opts.clients, workdir / "clients")
    try:
        for engine, db in dbs.items():
            home = workdir / engine
            d = bench.Deployment(engine, db, charts[engine], moto, ca, home, quick=opts.quick)
            bench.progress(f"{engine}: migrate")
            d.prepare()
            clients.wait_started()
            out = results["engines"][engine] = {"pod": bench.pod_resources(charts[engine])}
            for configuration in CONFIGURATIONS:
                bench.progress(f"{engine}: {configuration}")
                out[configuration] = ingest(d, clients, configuration, opts)
            out["ratios"] = {
                key: bench._ratio(out["ours"][key], out["recipe"][key])
                for key in (
                    "spans_per_s",
                    "server_cpu_ms_per_span",
                    "worker_cpu_ms_per_span",
                    "db_cpu_ms_per_span",
                )
            }
    finally:
        clients.close()
        bench.stop_everything()
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["wall_s"] = round(time.monotonic() - started, 1)
    return results


def write_outputs(results: dict, json_path: Path, markdown_path: Path) -> None:
    """The figures, then the whole page with this section (bench/server_report.py)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    bench.write_page(markdown_path, BENCH / "results", traces=results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", choices=["mysql", "postgres"])
    parser.add_argument("--clients", type=int)
    parser.add_argument("--exports", type=int, help="timed exports per client and server")
    parser.add_argument("--quick", action="store_true", help="a tiny workload (smoke test)")
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "traces.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    chosen = {k: getattr(args, k, None) for k in base}
    opts = Options(**{**base, **{k: v for k, v in chosen.items() if v is not None}})
    engines = args.engines or ["mysql", "postgres"]
    with bench.standalone("traces", engines, keep=args.keep) as (charts, dbs, moto, ca, work):
        results = run_bench(dbs, moto, ca, charts, opts, work)
    write_outputs(results, args.json, args.markdown)
    print(json.dumps({e: r["ratios"] for e, r in results["engines"].items()}, indent=1))
    print(f"wrote {args.json} and {args.markdown} in {results['wall_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
