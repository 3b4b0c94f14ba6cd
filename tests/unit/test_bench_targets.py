"""docs/benchmarks.md's targets table (bench/targets_report.py): each verdict follows from its
figure and the target's bound, on the right side of it, and a bench that did not run adds no
row rather than a made-up one."""

from __future__ import annotations

import importlib

import pytest

from tests.conftest import ROOT


@pytest.fixture
def bench_module(monkeypatch):
    """`bench_module("targets_report")`: that module of bench/, imported as its scripts do."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module


@pytest.fixture
def report(bench_module):
    return bench_module("targets_report")


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


def test_each_artifact_bench_gives_its_own_row_with_its_s3_scheme(report):
    """make bench's 1 GiB (server.py, whose stand-in was plain HTTP before it recorded a
    scheme) and artifacts.py's own 128 MiB file over HTTPS: two rows, neither taken for the
    other."""

    def figures(ratio: float, **extra) -> dict:
        return {"size_mib": 128, "repeats": 15, "modes": {"proxied": {"ratio_up": ratio}}} | extra

    measured = {"status": "measured", **figures(0.84), "size_mib": 1024, "repeats": 1}
    server = {"machine": {}, "engines": {}, "artifacts": measured}
    artifacts = {"machine": {"date": "d"}, **figures(0.91, s3_endpoint_scheme="https")}
    rows = _rows(report, {"server": server, "artifacts": artifacts})
    assert [(row[0], row[2], row[-1]) for row in rows] == [
        ("5", "1024 MiB, median of 1, S3 over HTTP (server.py)", "not met"),
        ("5", "128 MiB, median of 15, S3 over HTTPS (artifacts.py)", "**met**"),
    ]
    unmeasured = {"machine": {}, "engines": {}, "artifacts": {"status": "not measured"}}
    assert _rows(report, {"server": unmeasured, "artifacts": None}) == []


@pytest.mark.parametrize(
    ("ours", "noauth", "says"),
    [
        (0.030, 0.010, "Sign-in adds 20 ms of server CPU per run"),
        (0.010, 0.015, "Sign-in added no server CPU measurable here (-5 ms per run"),
    ],
)
def test_sign_in_cost_below_zero_is_called_noise(bench_module, ours, noauth, says) -> None:
    """Two configurations measured one after the other: a negative difference is not a saving."""
    server_report = bench_module("server_report")
    runs = {"ours": {"server_cpu_s_per_run": ours}, "ours-noauth": {"server_cpu_s_per_run": noauth}}
    sentence = server_report._sign_in_cost(runs, 30)
    assert sentence.startswith(says), sentence
    assert "adds -" not in sentence
