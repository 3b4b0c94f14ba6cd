"""`wait-schema`: the server pod's init container waits for the migration Job.

The schemas are migrated by a Job of their own (it alone may read the database's master login
and take snapshots); the server pods connect with the server's login, which may change nothing
of the instance but MLflow's databases. Until the Job has brought both schemas to head the
pods wait here, bounded, and say what they wait for and where its log is; `serve` then checks
once more and refuses anything but head.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mlflow_launcher import contract, settings
from mlflow_launcher.errors import LauncherError

log = logging.getLogger(__name__)

WAIT_ENV = contract.SCHEMA_WAIT_SECONDS.name
"""After this wait the container fails and the kubelet starts it again, with its back-off."""
LOGS_ENV = contract.MIGRATION_LOGS_COMMAND.name
POLL_SECONDS = 5.0
REPORT_SECONDS = 60.0


@dataclass(frozen=True)
class ReadinessEnvironment:
    wait_seconds: float
    logs_command: str


def load(env: Mapping[str, str]) -> ReadinessEnvironment:
    values = settings.parse(env, contract.SCHEMA_WAIT_SECONDS, contract.MIGRATION_LOGS_COMMAND)
    return ReadinessEnvironment(values[WAIT_ENV], values[LOGS_ENV] or "")


def wait_for_head(
    behind: Callable[[], list[str]],
    settings: ReadinessEnvironment,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Until `behind()` (what is not at head yet, in words) is empty, or the wait runs out."""
    start = clock()
    reported = start - REPORT_SECONDS
    while pending := behind():
        now = clock()
        if now - start >= settings.wait_seconds:
            where = f"; its log: {settings.logs_command}" if settings.logs_command else ""
            raise LauncherError(
                f"{'; '.join(pending)} after {settings.wait_seconds:g} s: the migration Job has "
                f"not brought the schemas to head{where} ({WAIT_ENV} sets this wait)"
            )
        if now - reported >= REPORT_SECONDS:
            log.info("waiting for the migration Job: %s", "; ".join(pending))
            reported = now
        sleep(POLL_SECONDS)
    log.info("schemas at head: starting the server")
