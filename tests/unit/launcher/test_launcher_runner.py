"""`runner-alive`, the job runner pod's liveness: MLflow's `mlflow server` never watches the
runner it starts, so a dead one leaves a healthy-looking pod whose jobs wait PENDING. That the
matcher finds MLflow's real runner: tests/integration/test_jobs.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_launcher import cli, runner
from mlflow_launcher.errors import LauncherError

RUNNER = [b"/opt/venv/bin/python", b"-m", b"mlflow.server.jobs._executor_runner"]


def _proc(tmp_path: Path, processes: dict[int, tuple[list[bytes], str]]) -> Path:
    for pid, (argv, state) in processes.items():
        entry = tmp_path / str(pid)
        entry.mkdir()
        (entry / "cmdline").write_bytes(b"\0".join(argv) + b"\0")
        (entry / "stat").write_text(f"{pid} (python) {state} 1 1 1")
    (tmp_path / "self").mkdir()
    return tmp_path


def test_the_runner_is_found_by_its_module(tmp_path):
    proc = _proc(
        tmp_path,
        {
            1: ([b"tini", b"--", b"mlflow-launcher", b"serve"], "S"),
            7: ([b"python", b"-m", b"mlflow", b"server"], "S"),
            9: (RUNNER, "S"),
            # Mentioned, not run: a shell or a grep naming it is no runner.
            11: ([b"grep", b"mlflow.server.jobs._executor_runner"], "S"),
        },
    )
    assert runner.runner_pids(proc) == [9]
    runner.check(proc)


@pytest.mark.parametrize("state", ["Z", None])
def test_a_dead_runner_fails_the_probe_saying_why(tmp_path, state, monkeypatch):
    processes = {1: ([b"tini"], "S"), 7: ([b"python", b"-m", b"mlflow", b"server"], "S")}
    if state:
        processes[9] = (RUNNER, state)  # exited, not yet reaped
    proc = _proc(tmp_path, processes)
    with pytest.raises(LauncherError, match="job runner is not running in this pod"):
        runner.check(proc)
    # The probe's command: non-zero, the reason in its log.
    found = runner.runner_pids
    monkeypatch.setattr(runner, "runner_pids", lambda _proc=None: found(proc))
    assert cli.main(["runner-alive"]) != 0
    monkeypatch.setattr(runner, "runner_pids", lambda _proc=None: [9])
    assert cli.main(["runner-alive"]) == 0
