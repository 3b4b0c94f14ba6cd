"""bench/server.py on a tiny workload against the session's real servers: every configuration
has every workload's figures, and the generated page has its tables. A smoke test of the
harness, so `make bench` does not break unseen: it asserts no speed, only that each figure
was measured."""

from __future__ import annotations

import json

import itest_bench
import pytest

pytestmark = pytest.mark.integration

ENGINE = "mysql"  # one engine keeps this under a minute; `make bench` runs both


def _positive(figures: dict, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        value = figures.get(key)
        assert isinstance(value, int | float) and value > 0, f"{where}: {key} = {value!r}"


def test_bench_server_measures_every_configuration(mariadb, moto, test_ca, synth, tmp_path):
    bench = itest_bench.load("server")
    opts = bench.options(bench.parse_args(["--quick"]))
    results = bench.run_bench(
        {ENGINE: mariadb},
        moto,
        test_ca.ca,
        {ENGINE: synth(bench.CONFIG_FOR_ENGINE[ENGINE])},
        opts,
        tmp_path,
    )
    json_path, markdown_path = tmp_path / "server.json", tmp_path / "benchmarks.md"
    bench.write_outputs(results, json_path, markdown_path)

    found = json.loads(json_path.read_text())["engines"][ENGINE]
    for configuration in bench.CONFIGURATIONS:
        writes = found["writes"][configuration]
        _positive(writes, ("runs_per_s", "p50_ms", "p99_ms", "server_cpu_s_per_run"), configuration)
        for size in opts.search_sizes:
            searches = found["search"][str(size)][configuration]
            _positive(searches, ("searches_per_s", "p50_ms", "server_cpu_s_per_search"), str(size))
    for configuration in bench.SERVERS:
        _positive(found["start"][configuration], ("median_s",), f"start {configuration}")
        peak = found["memory"][configuration]["load_peak"]
        _positive(peak, ("pss_total_mib", "pss_per_worker_mib", "workers"), configuration)
    assert set(found["start"]["ours"]["phases_median_s"]) >= {"db_wait_and_schema_s"}
    assert found["configurations"]["ours"]["sign_in"] is True
    assert found["configurations"]["ours-noauth"]["sign_in"] is False

    page = markdown_path.read_text()
    for heading in ("## Tracking writes", "## Search", "## Start", "## Memory", "## Sizing"):
        assert heading in page
    assert page.count("| recipe |") >= 5, "a recipe row in every table"
    # The targets this run decides, each with a verdict from its figure (the other benches'
    # results are not in tmp_path: their rows are left out, not invented).
    targets = page.split("## Targets (issue 23)", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in row.strip("|").split("|")] for row in targets.splitlines()]
    decided = [row[0] for row in rows if row[-1] in ("**met**", "not met")]
    assert sorted(set(decided)) == ["0", "1", "2", "3", "4"], targets
    assert "drivers.py" not in targets and "starts.py" not in targets
    # Every process the harness started is gone.
    assert not bench._STARTED
