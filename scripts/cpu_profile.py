"""CPU seconds per test, for docs/testing.md's "How long the suite takes".

The suite is CPU-bound, and on a shared machine wall time mostly measures the neighbours;
CPU time barely moves with them. As a pytest plugin (opt in: `-p scripts.cpu_profile`, with
CPU_PROFILE naming an output prefix), each process that runs tests (each pytest-xdist worker,
or the lone process) moves itself and the processes it already started (the jsii runtime) into
a cgroup v1 `cpuacct` group of its own, so that every process it starts after is counted too:
launchers, MLflow servers, clients, the CDK CLI, database servers, Chromium. Per test it writes
one JSON line (setup, call and teardown: `cpu` and `wall` seconds) to `$CPU_PROFILE.<worker>`,
and the worker's total at the end. Without a writable cgroup (not root, cgroup v2 only) it
counts the process's own CPU and its reaped children's (getrusage), which misses daemons
(PostgreSQL) and children still running.

    CPU_PROFILE=/tmp/prof/run .venv/bin/python -m pytest -p scripts.cpu_profile -n 2 \
        --dist loadgroup
    .venv/bin/python scripts/cpu_profile.py /tmp/prof/before /tmp/prof/after   # compare
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup/cpuacct")
_state: dict[str, Any] = {}


def _children(pid: int) -> set[int]:
    """`pid` and every process descending from it."""
    found, changed = {pid}, True
    while changed:
        changed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in found:
                found.add(int(entry.name))
                changed = True
    return found


def _own_cgroup() -> Path:
    """The cpuacct group this process is in now."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return CGROUP_ROOT / path.lstrip("/")
    return CGROUP_ROOT


def _join_cgroup(name: str) -> Path | None:
    group = _own_cgroup() / f"cpu-profile-{os.getpid()}-{name}"
    try:
        _state["home"] = group.parent
        group.mkdir()
        for pid in sorted(_children(os.getpid())):
            (group / "cgroup.procs").write_text(str(pid))
    except OSError:
        return None
    return group


def _cpu() -> float:
    group = _state.get("cgroup")
    if group is not None:
        return int((group / "cpuacct.usage").read_text()) / 1e9
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def pytest_configure(config: Any) -> None:
    prefix = os.environ.get("CPU_PROFILE")
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    if not prefix or (worker == "main" and config.getoption("numprocesses", None)):
        return  # off, or the xdist controller (it runs no tests)
    _state["cgroup"] = _join_cgroup(worker)
    _state["out"] = Path(f"{prefix}.{worker}").open("a")  # noqa: SIM115 - open for the session


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    if "out" not in _state:
        yield
        return
    cpu, wall = _cpu(), time.monotonic()
    yield
    record = {
        "id": item.nodeid,
        "cpu": round(_cpu() - cpu, 3),
        "wall": round(time.monotonic() - wall, 3),
    }
    _state["out"].write(json.dumps(record) + "\n")
    _state["out"].flush()


def pytest_sessionfinish(session: Any) -> None:
    if "out" in _state:
        _state["out"].write(json.dumps({"id": "__worker_total__", "cpu": _cpu()}) + "\n")
        _state["out"].close()
    if _state.get("cgroup") is not None:
        try:  # back home; a group its children still hold stays: rmdir it after
            (_state["home"] / "cgroup.procs").write_text(str(os.getpid()))
            _state["cgroup"].rmdir()
        except OSError:
            pass


def load(prefix: str) -> dict[str, dict[str, float]]:
    """The records of every worker of one run, by test id."""
    found: dict[str, dict[str, float]] = {}
    for path in sorted(Path(prefix).parent.glob(Path(prefix).name + ".*")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            found[record["id"] + (path.suffix if record["id"].startswith("__") else "")] = record
    return found


def compare(before: str, after: str, top: int = 20) -> None:
    runs = [load(before), load(after)]
    tests = [{k: v for k, v in run.items() if not k.startswith("__")} for run in runs]
    for name, run, only in zip((before, after), runs, tests, strict=True):
        workers = sum(v["cpu"] for k, v in run.items() if k.startswith("__"))
        in_tests = sum(v["cpu"] for v in only.values())
        print(f"{name}: {len(only)} tests, CPU {in_tests:.0f} s in tests, {workers:.0f} s in all")
    common = set(tests[0]) & set(tests[1])
    modules: list[collections.Counter[str]] = [collections.Counter(), collections.Counter()]
    for key in common:
        for counter, run in zip(modules, tests, strict=True):
            counter[key.split("::")[0]] += run[key]["cpu"]
    print(f"\nCPU s per module, the {len(common)} tests in both (before, after):")
    for module, cpu in modules[0].most_common(top):
        print(f"{cpu:8.1f} {modules[1][module]:8.1f}  {module}")
    for label, run, other in (("before", *tests), ("after", *reversed(tests))):
        print(f"\nthe {top} dearest tests {label} (CPU s, the other run's in brackets):")
        for key in sorted(run, key=lambda k: -run[k]["cpu"])[:top]:
            theirs = f"{other[key]['cpu']:.1f}" if key in other else "-"
            print(f"{run[key]['cpu']:7.1f} ({theirs:>6}) {run[key]['wall']:6.0f} s  {key}")


if __name__ == "__main__":
    compare(*sys.argv[1:3])
