"""Whether MLflow's job runner runs in this pod: the runner pod's liveness probe.

`mlflow server` with job execution on (MLFLOW_JOB_ROLE=run) starts the runner as a child and
never looks at it again: it waits on its uvicorn server only (MLflow 3.17.2,
mlflow/server/__init__.py `_run_server`, `_launch_job_execution_runner`'s process is not
kept). A runner that dies (killed by the kernel for memory, or its own fatal exit:
mlflow/server/jobs/_executor_runner.py `main`) leaves a pod whose /health answers while every
job waits PENDING. This check fails then, and the kubelet restarts the container; the new
runner sets the jobs it finds RUNNING back to PENDING and runs them.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from mlflow_launcher.errors import LauncherError

RUNNER_MODULE = "mlflow.server.jobs._executor_runner"
"""What MLflow runs as `python -m` for the executor engine (jobs/utils.py
`_launch_executor_runner`)."""


def runner_pids(proc: Path = Path("/proc")) -> list[int]:
    """The live (not zombie) processes in this PID namespace running the runner."""
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if state != "Z" and _runs_the_runner(argv):
            pids.append(int(entry.name))
    return sorted(pids)


def _runs_the_runner(argv: list[bytes]) -> bool:
    module = RUNNER_MODULE.encode()
    return any(arg == b"-m" and following == module for arg, following in pairwise(argv))


def check(proc: Path = Path("/proc")) -> None:
    if not runner_pids(proc):
        raise LauncherError(
            "MLflow's job runner is not running in this pod (MLFLOW_JOB_ROLE=run): jobs would "
            "wait PENDING; the container restarts to start it again"
        )
