"""Warm `cdk synth` of the default deployment against a one-bucket baseline app, side by side.

    .venv/bin/python bench/synth.py [--rounds N]

Both run through the pinned CLI with the same Python and flags, alternating, so machine noise
hits both alike. Prints per-round seconds and peak RSS of each, and the median ratios
(ours / baseline). Nothing here asserts a time: it is a measurement, read by people.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
elapsed = time.perf_counter() - start
rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{code} {elapsed} {rss_kib}")
"""


def run(app: str, outdir: str) -> tuple[float, int]:
    """Seconds and peak RSS (KiB, largest single process) of one synth."""
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--app", app, "-o", outdir]
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
    )
    code, seconds, rss = result.stdout.split()
    if code != "0":
        raise SystemExit(f"synth of {app!r} failed")
    return float(seconds), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    apps = {"ours": f"{PYTHON} app.py", "baseline": f"{PYTHON} bench/baseline_app.py"}
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in apps}
    with tempfile.TemporaryDirectory() as tmp:
        for name, app in apps.items():  # warm-up: caches, .pyc, jsii bundles
            run(app, f"{tmp}/{name}")
        for round_ in range(args.rounds):
            for name, app in apps.items():
                samples[name].append(run(app, f"{tmp}/{name}"))
            print(
                f"round {round_ + 1}: "
                + ", ".join(
                    f"{n} {s[-1][0]:.2f}s {s[-1][1] / 1024:.0f}MiB" for n, s in samples.items()
                )
            )
    median = {
        n: (statistics.median(t for t, _ in s), statistics.median(m for _, m in s))
        for n, s in samples.items()
    }
    report = {
        "rounds": args.rounds,
        "ours_seconds": round(median["ours"][0], 2),
        "baseline_seconds": round(median["baseline"][0], 2),
        "time_ratio": round(median["ours"][0] / median["baseline"][0], 2),
        "ours_peak_rss_mib": round(median["ours"][1] / 1024),
        "baseline_peak_rss_mib": round(median["baseline"][1] / 1024),
        "rss_ratio": round(median["ours"][1] / median["baseline"][1], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"bench took {time.perf_counter() - started:.0f}s", file=sys.stderr)
