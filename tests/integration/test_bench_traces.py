"""bench/traces.py on a tiny workload against the session's real servers: both servers have
every figure and the generated page has the section. A smoke test of the harness, so
`make bench` does not break unseen: it asserts no speed, only that each figure was measured
and that every export was stored (a refused one fails the client)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench"
ENGINE = "mysql"  # `make bench` runs both


def _bench():
    if "bench_traces" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_traces", BENCH / "traces.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["bench_traces"] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules["bench_traces"]


def test_bench_traces_measures_both_servers(mariadb, moto, test_ca, synth, tmp_path):
    bench = _bench()
    opts = bench.Options(**bench.QUICK)
    chart = synth(bench.bench.CONFIG_FOR_ENGINE[ENGINE])
    results = bench.run_bench({ENGINE: mariadb}, moto, test_ca.ca, {ENGINE: chart}, opts, tmp_path)
    json_path, markdown_path = tmp_path / "traces.json", tmp_path / "benchmarks.md"
    bench.write_outputs(results, json_path, markdown_path)

    found = json.loads(json_path.read_text())["engines"][ENGINE]
    for configuration in bench.CONFIGURATIONS:
        figures = found[configuration]
        assert figures["spans"] == opts.clients * opts.exports * bench.SPANS_PER_EXPORT
        for key in ("spans_per_s", "server_cpu_ms_per_span", "p50_ms", "p99_ms"):
            assert figures[key] > 0, (configuration, key, figures[key])
        assert figures["memory_peak"]["pss_total_mib"] > 0
    assert set(found["ratios"]) == {
        "spans_per_s",
        "server_cpu_ms_per_span",
        "worker_cpu_ms_per_span",
        "db_cpu_ms_per_span",
    }
    page = markdown_path.read_text()
    assert "## Trace ingest over OTLP" in page and "| MariaDB | ours |" in page
