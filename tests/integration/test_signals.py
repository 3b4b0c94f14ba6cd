"""SIGTERM: the container's PID 1 (tini, from the Dockerfile's ENTRYPOINT) turns Kubernetes'
SIGTERM into a graceful MLflow shutdown well within the default 30 s grace period.

The server runs as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`, as root),
which is what a container runtime gives the ENTRYPOINT."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import itest_launcher as launcher
import pytest

pytestmark = pytest.mark.integration

GRACE_PERIOD_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds


def test_sigterm_to_pid_1_shuts_down_gracefully(postgres, new_database, moto, test_ca, tmp_path):
    target = new_database(postgres)
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, moto.create_bucket()), tmp_path / "home"
    )
    server, init = launcher.serve_as_pid_1(postgres, env, tmp_path / "server.log")
    status, _ = server.get("/api/2.0/mlflow/experiments/search?max_results=1", "localhost")
    assert status == 200

    nspid = next(
        line.split()[1:]
        for line in Path(f"/proc/{init}/status").read_text().splitlines()
        if line.startswith("NSpid:")
    )
    assert nspid[-1] == "1", "the entrypoint is not PID 1 of its namespace"
    assert Path(f"/proc/{init}/cmdline").read_bytes().split(b"\0")[0] == b"tini"

    signalled = time.monotonic()
    os.kill(init, signal.SIGTERM)
    try:
        server.proc.wait(GRACE_PERIOD_SECONDS)
    except subprocess.TimeoutExpired:
        server.stop(signal.SIGKILL)
        raise AssertionError(f"no exit within {GRACE_PERIOD_SECONDS} s:\n{server.logs()}") from None
    took = time.monotonic() - signalled
    logs = server.logs()
    assert took < GRACE_PERIOD_SECONDS
    assert server.proc.returncode == 0, logs
    assert "Shutting down" in logs and "Finished server process" in logs, logs
