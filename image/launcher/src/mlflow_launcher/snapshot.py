"""A way back before a schema change: an RDS snapshot of the instance, fresh, before `migrate`
changes a schema that already holds data.

MLflow's migrations are not transactional on MySQL: one that stops half-way leaves a schema
that neither the old nor the new version runs, and only a restore brings the data back. So when
a migration is pending, `migrate` first looks for a snapshot of the instance taken within the
last MLFLOW_SNAPSHOT_MAX_AGE_MINUTES (an operator's, e.g. from the stack's SnapshotCommand
output, or one an earlier attempt started); without one it creates `mlflow-before-...` and
waits until RDS reports it available. If it cannot, it does not migrate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlflow_launcher.errors import LauncherError

log = logging.getLogger(__name__)

INSTANCE_ENV = "MLFLOW_DB_INSTANCE_ID"
MAX_AGE_ENV = "MLFLOW_SNAPSHOT_MAX_AGE_MINUTES"
TIMEOUT_ENV = "MLFLOW_SNAPSHOT_TIMEOUT_SECONDS"
PREFIX = "mlflow-before-"
"""Snapshots the launcher creates; the server role may create only these."""
DEFAULT_MAX_AGE_MINUTES = 60.0
# Under the deploy's 13-minute wait for the rollout, so a slow snapshot fails this container
# with its own message first. RDS keeps creating it; the next attempt waits for that one.
DEFAULT_TIMEOUT_SECONDS = 660.0
POLL_SECONDS = 15.0
_USABLE = ("available", "creating")


@dataclass(frozen=True)
class SnapshotSettings:
    instance_id: str
    max_age: timedelta
    timeout_seconds: float
    region: str | None


def load(env: Mapping[str, str]) -> SnapshotSettings | None:
    """None when the ConfigMap names no instance (the guard is off)."""
    instance_id = env.get(INSTANCE_ENV, "").strip()
    if not instance_id:
        return None
    problems, numbers = [], {}
    defaults = {MAX_AGE_ENV: DEFAULT_MAX_AGE_MINUTES, TIMEOUT_ENV: DEFAULT_TIMEOUT_SECONDS}
    for name, default in defaults.items():
        raw = env.get(name, "").strip() or str(default)
        try:
            numbers[name] = float(raw)
        except ValueError:
            numbers[name] = -1.0
        if not 0 < numbers[name] < float("inf"):
            problems.append(f"{name} must be a positive number, got {raw!r}")
    if problems:
        raise LauncherError("invalid environment: " + "; ".join(problems))
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    return SnapshotSettings(
        instance_id,
        timedelta(minutes=numbers[MAX_AGE_ENV]),
        numbers[TIMEOUT_ENV],
        region,
    )


class Guard:
    """Called before each schema change; makes sure of a fresh snapshot once per process."""

    def __init__(
        self,
        settings: SnapshotSettings | None,
        *,
        client: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings, self._client = settings, client
        self._clock, self._sleep = clock, sleep
        self.snapshot: str | None = None

    def __call__(self, change: str) -> None:
        if self.settings is None:
            log.warning("%s without a snapshot first (%s is not set)", change, INSTANCE_ENV)
            return
        if self.snapshot is None:
            self.snapshot = self._ensure(change)

    def _ensure(self, change: str) -> str:
        settings = self.settings
        assert settings is not None
        instance = settings.instance_id
        try:
            client = self._client or _rds_client(settings.region)
            snapshot = self._recent(client, instance)
            if snapshot is None:
                snapshot = f"{PREFIX}{self._clock():%Y%m%d-%H%M%S}"
                log.info("taking snapshot %s of %s before %s", snapshot, instance, change)
                client.create_db_snapshot(
                    DBSnapshotIdentifier=snapshot, DBInstanceIdentifier=instance
                )
            else:
                log.info("snapshot %s of %s is recent enough for %s", snapshot, instance, change)
            self._wait_available(client, snapshot)
        except LauncherError:
            raise
        except Exception as exc:  # botocore's errors: denied, unreachable, no such instance
            raise LauncherError(
                f"cannot make sure of a snapshot of database instance {instance} before the "
                f"schema change, so not migrating: {_reason(exc)}. The server role needs "
                "rds:DescribeDBSnapshots and rds:CreateDBSnapshot, and the pod a route to the "
                "RDS API; or take a snapshot yourself (the SnapshotCommand output) and restart "
                "the pod"
            ) from None
        log.info("snapshot %s available: migrating", snapshot)
        return snapshot

    def _recent(self, client: Any, instance: str) -> str | None:
        """The newest manual snapshot of the instance, available or being created, taken
        within the maximum age. Manual only: an automated one expires with the backup
        retention, and point-in-time restore already covers what it holds."""
        assert self.settings is not None
        since = self._clock() - self.settings.max_age
        recent = [
            s
            for page in client.get_paginator("describe_db_snapshots").paginate(
                DBInstanceIdentifier=instance, SnapshotType="manual"
            )
            for s in page["DBSnapshots"]
            if s.get("Status") in _USABLE and _created(s) >= since
        ]
        if not recent:
            return None
        return max(recent, key=_created)["DBSnapshotIdentifier"]

    def _wait_available(self, client: Any, snapshot: str) -> None:
        assert self.settings is not None
        deadline = time.monotonic() + self.settings.timeout_seconds
        while True:
            [found] = client.describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"]
            status = found.get("Status")
            if status == "available":
                return
            if status not in _USABLE:
                raise LauncherError(f"snapshot {snapshot} is {status}: not migrating")
            if time.monotonic() >= deadline:
                raise LauncherError(
                    f"snapshot {snapshot} is still {status} ({found.get('PercentProgress', 0)}%) "
                    f"after {self.settings.timeout_seconds:g} s, so not migrating yet; RDS keeps "
                    "creating it and the next attempt of this container waits for it "
                    f"({TIMEOUT_ENV} sets the wait)"
                )
            log.info("snapshot %s %s (%s%%)", snapshot, status, found.get("PercentProgress", 0))
            self._sleep(POLL_SECONDS)


def _created(snapshot: Mapping[str, Any]) -> datetime:
    # A snapshot being created may not report its time yet: it is as new as can be.
    created = snapshot.get("SnapshotCreateTime")
    return created if isinstance(created, datetime) else datetime.max.replace(tzinfo=UTC)


def _rds_client(region: str | None) -> Any:
    import boto3

    return boto3.client("rds", region_name=region)


def _reason(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    if error:
        return f"{error.get('Code')}: {error.get('Message')}"
    return " ".join(str(exc).split()) or type(exc).__name__
