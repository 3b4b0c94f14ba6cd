"""`mlflow-launcher gc`: permanently remove what users deleted, with MLflow's own `mlflow gc`.

Deleting a run or an experiment in MLflow only marks it; its rows and artifacts stay until
`mlflow gc` removes them. The CronJob runs this. MLflow's command is called in this process,
not as a child: its options include the store URI with the password, which must not appear in
any process's argv. Artifacts go through the tracking server (proxied artifacts resolve only
there), signed in as the admin when authentication is on.

A run has a time limit (MLFLOW_GC_TIMEOUT_SECONDS, from the launcher's start): at it the launcher
says so and exits, however the run is stuck (a database or tracking server that stopped
answering), so the CronJob's Job ends with this message rather than the Job deadline's kill, and
the next night's run is not skipped behind a hung one. What was removed stays removed (each run is
deleted in its own transaction); the next run goes on from there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from mlflow_launcher import contract, settings
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.secret import Credentials

log = logging.getLogger(__name__)

OLDER_THAN_ENV = contract.GC_OLDER_THAN.name
TRACKING_URI_ENV = contract.GC_TRACKING_URI.name
TIMEOUT_ENV = contract.GC_TIMEOUT_SECONDS.name
DEFAULT_TIMEOUT_SECONDS: int = contract.GC_TIMEOUT_SECONDS.default
"""The chart's value too (k8s_charts/gc_job.py, which sets the Job's deadline above it)."""


@dataclass(frozen=True)
class GcEnvironment:
    older_than: str
    tracking_uri: str
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    workspaces: bool = False
    """Every workspace's deletions (without `--all-workspaces` MLflow's gc cleans `default`)."""


def load(env: Mapping[str, str]) -> GcEnvironment:
    """Both variables, checked as `mlflow gc` would, before anything connects."""
    values = settings.parse(
        env,
        contract.GC_OLDER_THAN,
        contract.GC_TRACKING_URI,
        contract.GC_TIMEOUT_SECONDS,
        contract.ENABLE_WORKSPACES,
    )
    return GcEnvironment(
        older_than=values[OLDER_THAN_ENV],
        tracking_uri=values[TRACKING_URI_ENV],
        timeout_seconds=values[TIMEOUT_ENV],
        workspaces=values[contract.ENABLE_WORKSPACES.name],
    )


def _exit(code: int) -> None:
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def time_limit(
    seconds: float, *, started: float, stop: Callable[[int], None] = _exit
) -> Iterator[None]:
    """Log why and `stop` the process once `seconds` have passed since `started` (a
    ``time.monotonic()`` value), whatever the block is waiting on.

    The SIGALRM handler runs as soon as the interrupted call gives control back to Python: at
    once for Python's own sockets (MLflow's HTTP client), when libmariadb's or libpq's call
    returns for the database (bounded by the URL's network and statement timeouts). It exits
    rather than raising: unwinding would roll back over a connection that may be the one that
    stopped answering (the database rolls back a transaction whose connection is gone)."""

    def expired(_signum: int, _frame: object) -> None:
        log.error(
            "gc stopped at its time limit, %s=%g s from the launcher's start: what it removed "
            "stays removed, the next run goes on from there (a database or tracking server that "
            "stopped answering, or a backlog larger than one run: raise the limit)",
            TIMEOUT_ENV,
            seconds,
        )
        stop(LauncherError.exit_code)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, max(started + seconds - time.monotonic(), 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(store_uri: str, settings: GcEnvironment, login: Credentials | None) -> None:
    """Run `mlflow gc --older-than ...` against the store, artifacts through the server."""
    os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    if login is not None:
        # The MLflow client's basic-auth variables, for the artifact deletions.
        os.environ["MLFLOW_TRACKING_USERNAME"] = login.username
        os.environ["MLFLOW_TRACKING_PASSWORD"] = login.password
    import click
    from mlflow.cli import gc as mlflow_gc
    from mlflow.exceptions import MlflowException

    args = ["--older-than", settings.older_than, "--backend-store-uri", store_uri]
    args += ["--tracking-uri", settings.tracking_uri]
    if settings.workspaces:
        args.append("--all-workspaces")
    log.info(
        "removing runs and experiments deleted more than %s ago, with their artifacts (via %s)",
        settings.older_than,
        settings.tracking_uri,
    )
    try:
        mlflow_gc.main(args=args, prog_name="mlflow gc", standalone_mode=False)
    except (click.ClickException, MlflowException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else exc.message
        raise LauncherError(f"mlflow gc failed: {' '.join(str(message).split())}") from None
    log.info("gc done")
