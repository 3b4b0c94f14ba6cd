"""bench/hostile.py on a tiny workload against the session's real servers: every case has
every figure for both servers, the generated page has its section next to bench/server.py's,
and bench/server.py keeps that section when it rewrites the page. A smoke test of the harness,
so `make bench` does not break unseen: it asserts no speed or size, only that each figure was
measured."""

from __future__ import annotations

import json
import shutil
import socket
import time

import itest_bench
import itest_hostile
import pytest
from itest_chart import pod

pytestmark = pytest.mark.integration

TITLE = "## Hostile and careless traffic"


def _measured(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _requests(name: str, opts) -> int:
    """How many answers a case collects."""
    return opts.passwords if name in ("wrong_passwords", "one_source") else 1


def test_bench_hostile_measures_every_case(mariadb, moto, test_ca, synth, tmp_path):
    hostile = itest_bench.load("hostile")
    opts = hostile.options(hostile.parse_args(["--quick"]))
    chart = synth("default")
    results = hostile.run_bench(mariadb, moto, test_ca.ca, chart, opts, tmp_path / "work")
    server_json = tmp_path / "server.json"  # the committed figures, copied: the page needs them
    shutil.copy(itest_bench.BENCH / "results" / "server.json", server_json)
    json_path, page_path = tmp_path / "hostile.json", tmp_path / "benchmarks.md"
    hostile.write_outputs(results, json_path, server_json, page_path)

    found = json.loads(json_path.read_text())
    _, (_, main) = pod(chart)
    limit = hostile.memory_mib(main["resources"]["limits"]["memory"])
    assert found["pod"]["memory_limit_mib"] == limit
    for configuration in hostile.CONFIGURATIONS:
        described = found["configurations"][configuration]
        assert described["workers"] == found["pod"]["workers"], configuration
        assert _measured(described["at_rest"]["pss_total_mib"]), described
    assert list(found["cases"]) == list(hostile.CASES)
    for name, case in found["cases"].items():
        for configuration in hostile.CONFIGURATIONS:
            where, figures = f"{name} on {configuration}", case[configuration]
            memory = figures["pss_mib"]
            for phase in ("before", "peak", "after"):
                assert _measured(memory[phase]) and memory[phase] > 0, (where, memory)
            assert figures["margin_mib"] == pytest.approx(limit - memory["peak"], abs=0.11)
            health = figures["health"]
            assert health["polls"] >= 1, (where, health)
            for key in ("p50_ms", "p99_ms", "max_ms", "failed"):
                assert _measured(health[key]), (where, key, health)
            assert sum(health["statuses"].values()) == health["polls"], (where, health)
            assert sum(figures["statuses"].values()) == _requests(name, opts), (where, figures)
            assert isinstance(figures["served_after"], int), (where, figures)
        for key in ("peak", "health_max"):
            assert _measured(found["ratios"][name][key]), (name, found["ratios"][name])
    for configuration in hostile.CONFIGURATIONS:
        by_route = found["cases"]["wrong_passwords"][configuration]["by_route"]
        assert {route: sum(s.values()) for route, s in by_route.items()} == {
            "flask": opts.passwords // 2,
            "fastapi": opts.passwords // 2,
        }
        idle = found["cases"]["idle_connections"][configuration]
        assert idle["connections"] == opts.idle + 1
        assert idle["open_at_s"] and _measured(idle["open_at_end"])

    page = page_path.read_text()
    assert page.count(TITLE) == 1
    assert "## Tracking writes" in page, "bench/server.py's sections are kept"
    for case in found["cases"].values():
        assert f"| {case['what']} | ours |" in page
    assert page.count("|  | recipe |") == len(found["cases"])
    # bench/server.py rewrites the whole page: with these results beside its own, it keeps
    # this section.
    rewritten = tmp_path / "rewritten.md"
    hostile.bench.write_outputs(json.loads(server_json.read_text()), server_json, rewritten)
    assert rewritten.read_text() == page
    # Every process the harness started is gone.
    assert not hostile.bench._STARTED


def test_idle_connections_measures_once_when_the_sign_in_outlasts_the_dribble():
    """Under load the signed-in request made while the connections idle took longer than
    `--quick`'s 2 s dribble, and the case had no sample to report (IndexError in a CI-like
    run). It now takes one at least. A listener that never answers holds the connections."""
    hostile = itest_bench.load("hostile")
    opts = hostile.options(hostile.parse_args(["--quick", "--dribble-s", "0", "--idle", "3"]))

    class SlowSignIn:
        def __init__(self, port: int) -> None:
            self.port = port

        def signed_in(self) -> itest_hostile.Answer:
            time.sleep(0.3)
            return itest_hostile.Answer(status=200)

    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        found = hostile.idle_connections(SlowSignIn(listener.getsockname()[1]), opts)
    assert found["connections"] == opts.idle + 1
    assert found["open_at_end"] == opts.idle + 1, found  # the listener closed none
    assert len(found["open_at_s"]) == 1 and found["statuses"] == {"200": 1}, found
