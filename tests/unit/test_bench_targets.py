"""docs/benchmarks.md's targets table (bench/targets_report.py): each verdict follows from its
figure and the target's bound, on the right side of it, and a bench that did not run adds no
row rather than a made-up one."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT


@pytest.fixture
def report(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import targets_report

    return targets_report


def _starts(ratio: float) -> dict:
    return {"machine": {"date": "d"}, "engines": {"mysql": {"ours_to_recipe": {"s": ratio}}}}


def _drivers(ratio: float) -> dict:
    return {"machine": {}, "summary": {"ours": {"to_recipe-mysqlclient": {"runs_per_s": ratio}}}}


def _rows(report, found: dict) -> list[list[str]]:
    lines = report.section(found)
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in lines
        if line.startswith("| ") and not line.startswith("| item")
    ]


@pytest.mark.parametrize(
    ("ratio", "verdict"), [(0.45, "**met**"), (0.5, "**met**"), (0.51, "not met")]
)
def test_an_at_most_target_is_met_at_or_under_its_bound(report, ratio, verdict):
    (row,) = _rows(report, {"starts": _starts(ratio)})
    assert row[0] == "4" and row[-1] == verdict


@pytest.mark.parametrize(
    ("ratio", "verdict"), [(1.2, "**met**"), (1.0, "**met**"), (0.82, "not met")]
)
def test_an_at_least_target_is_met_at_or_over_its_bound(report, ratio, verdict):
    (row,) = _rows(report, {"drivers": _drivers(ratio)})
    assert row[0] == "0" and row[-1] == verdict


def test_a_strict_bound_is_not_met_at_the_bound(report):
    """An idle pod of exactly 400 MiB is not under 400 MiB."""
    server = {"engines": {"mysql": {"writes": {}, "search": {}, "memory": {}}}}
    memory = server["engines"]["mysql"]["memory"]
    verdicts = []
    for mib in (399.9, 400.0):
        memory["ours"] = {"idle": {"pss_total_mib": mib}}
        verdicts.append(report._memory(server)[0][-1])
    assert verdicts == ["**met**", "not met"]


def test_a_bench_that_did_not_run_adds_no_row(report):
    assert _rows(report, {"server": None, "starts": None, "drivers": None}) == []
    rows = _rows(report, {"starts": _starts(0.4), "drivers": None})
    assert [row[0] for row in rows] == ["4"]
