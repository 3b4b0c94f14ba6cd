"""Start to an answering API, ours against the recipe, in alternating rounds.

    .venv/bin/python bench/starts.py [--engines mysql postgres] [--rounds 5]
        [--json bench/results/starts.json]

bench/server.py times each configuration's starts one after the other, so on this shared
machine a change of load between them falls on one side only. Here each round starts the
recipe and ours (with sign-in) once each, the order reversed every other round, on an already
migrated database, as bench/server.py does; each start is timed from process start to /health
200 and a (signed-in) experiments search 200. Per start also the CPU seconds the server's
process tree had spent by then (utime + stime of its live processes: the recipe's MLflow CLI,
uvicorn and its job runner; ours' launcher, which becomes uvicorn's supervisor by exec, and its
workers), which moves far less with the neighbours than wall time does. Ratios are taken per
round, then their median. Ours' phases come from the launcher's log. Writes
bench/results/starts.json; read by people, asserts nothing.
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

CONFIGURATIONS = ("recipe", "ours")


def one_start(d: bench.Deployment, configuration: str, tag: str) -> dict:
    """Start, time it, take the tree's CPU at the answer, stop."""
    log = d.home / f"{tag}.log"
    if configuration == "ours":
        env, command = d.pod_env(d.main, tag, auth=True), None
        login = list(d.auth.admin_login())
    else:
        (env, command), login = d.recipe(tag, bench.RECIPES[configuration]), None
    started = time.time()
    server, took = bench.start_server(env, log, command, login)
    cpu = bench.tree_cpu(server.proc.pid)["all"]
    phases = bench.start_phases(server.logs(), started, started + took) if command is None else {}
    bench.stop_server(server)
    return {"s": round(took, 3), "cpu_s": round(cpu, 3), "phases": phases}


def measure(engine: str, db, chart, moto, ca, workdir: Path, rounds: int) -> dict:
    d = bench.Deployment(engine, db, chart, moto, ca, workdir / engine)
    d.prepare()
    starts: dict[str, list[dict]] = {c: [] for c in CONFIGURATIONS}
    for i in range(rounds):
        order = CONFIGURATIONS if i % 2 == 0 else CONFIGURATIONS[::-1]
        for c in order:
            starts[c].append(one_start(d, c, f"{c}-{i}"))
        bench.progress(
            f"{engine} round {i + 1}/{rounds}: "
            + ", ".join(f"{c} {starts[c][-1]['s']} s" for c in CONFIGURATIONS)
        )
    return summary(starts)


def summary(starts: dict[str, list[dict]]) -> dict:
    out: dict = {"starts": starts}
    for c, each in starts.items():
        out[c] = {key: round(statistics.median(s[key] for s in each), 3) for key in ("s", "cpu_s")}
    ours, recipe = starts["ours"], starts["recipe"]
    out["ours_to_recipe"] = {
        key: round(statistics.median(o[key] / r[key] for o, r in zip(ours, recipe, strict=True)), 3)
        for key in ("s", "cpu_s")
    }
    phases = [s["phases"] for s in ours if s["phases"]]
    if phases:
        out["ours"]["phases_median_s"] = {
            key: round(statistics.median(p[key] for p in phases), 3) for key in phases[0]
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", choices=["mysql", "postgres"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=bench.BENCH / "results" / "starts.json")
    args = parser.parse_args(argv)
    engines = args.engines or ["mysql", "postgres"]
    results: dict = {"machine": bench.machine(), "rounds": args.rounds, "engines": {}}
    with bench.standalone("starts", engines, keep=False) as (charts, dbs, moto, ca, workdir):
        for engine in engines:
            results["engines"][engine] = measure(
                engine, dbs[engine], charts[engine], moto, ca, workdir, args.rounds
            )
    results["machine"]["loadavg_end"] = os.getloadavg()
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    for engine, figures in results["engines"].items():
        print(engine, json.dumps({k: v for k, v in figures.items() if k != "starts"}))
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
