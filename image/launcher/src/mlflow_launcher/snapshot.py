"""A way back before a schema change: an RDS snapshot of the instance, taken before `migrate`
changes a schema that already holds data.

MLflow's migrations are not transactional on MySQL: one that stops half-way leaves a schema
that neither the old nor the new version runs, and only a restore brings the data back. So when
a migration is pending, `migrate` first looks for a manual snapshot of the instance:

1. one taken before this same change (the schema and its revision pair, in the snapshot's name
   or tags), however old: a migration that fails the same way on every restart then has one
   snapshot, not one per restart;
2. else any taken within the last MLFLOW_SNAPSHOT_MAX_AGE_MINUTES (an operator's, e.g. from
   the stack's SnapshotCommand output);
3. else it creates `mlflow-before-<schema>-<from>-<to>-<time>`, unless MLFLOW_SNAPSHOT_MAX_COUNT
   of those exist already: the server role cannot delete snapshots, and a manual-snapshot quota
   used up also stops the operator's own.

It waits until RDS reports the snapshot available. If it cannot, it does not migrate.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from mlflow_launcher import contract, settings
from mlflow_launcher.errors import LauncherError

log = logging.getLogger(__name__)

INSTANCE_ENV = contract.DB_INSTANCE_ID.name
MAX_AGE_ENV = contract.SNAPSHOT_MAX_AGE_MINUTES.name
TIMEOUT_ENV = contract.SNAPSHOT_TIMEOUT_SECONDS.name
MAX_COUNT_ENV = contract.SNAPSHOT_MAX_COUNT.name
PREFIX = "mlflow-before-"
"""Snapshots the launcher creates; the server role may create and tag only these."""
TAG_PREFIX = "mlflow-on-eks:"
# A slow snapshot fails this container with its own message; RDS keeps creating it and the next
# attempt waits for that one. The Deployment's progress deadline counts this wait (the chart
# reads the same declaration). The count: far below the 100 manual snapshots a Region allows an
# account by default (shared by every instance in it; "Manual DB instance snapshots",
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Limits.html).
DEFAULT_TIMEOUT_SECONDS: float = contract.SNAPSHOT_TIMEOUT_SECONDS.default
DEFAULT_MAX_COUNT: int = contract.SNAPSHOT_MAX_COUNT.default
QUOTA_NOTE = "100 manual DB instance snapshots per Region by default"
POLL_SECONDS = 15.0
_USABLE = ("available", "creating")
_TIME_FORMAT, _TIME_PATTERN = "%Y%m%d-%H%M%S", r"\d{8}-\d{6}"


@dataclass(frozen=True)
class SchemaChange:
    """A migration about to run: the schema (MLflow's tracking store, or basic-auth's users)
    and its Alembic revisions before and after."""

    schema: Literal["tracking", "auth"]
    from_revision: str | None
    to_revision: str

    def __str__(self) -> str:
        schema = "the schema" if self.schema == "tracking" else f"the {self.schema} schema"
        return f"upgrading {schema} from {self.from_revision} to {self.to_revision}"

    def tags(self) -> dict[str, str]:
        """What a snapshot taken before this change carries (one pair per schema, so one
        snapshot can precede both schemas' changes of an upgrade)."""
        return {
            f"{TAG_PREFIX}{self.schema}-from-revision": self.from_revision or "none",
            f"{TAG_PREFIX}{self.schema}-to-revision": self.to_revision,
        }

    def stem(self) -> str:
        """The start of the name of a snapshot the launcher takes before this change: it
        names the change even where tags are not at hand. RDS identifiers: letters, digits
        and single hyphens, starting with a letter, up to 255 characters."""
        revisions = (_name_part(self.from_revision or "none"), _name_part(self.to_revision))
        return f"{PREFIX}{self.schema}-{revisions[0]}-{revisions[1]}-"


@dataclass(frozen=True)
class SnapshotEnvironment:
    instance_id: str
    max_age: timedelta
    timeout_seconds: float
    region: str | None
    max_count: int = DEFAULT_MAX_COUNT


def load(env: Mapping[str, str]) -> SnapshotEnvironment | None:
    """None when the ConfigMap names no instance (the guard is off)."""
    instance_id = env.get(INSTANCE_ENV, "").strip()
    if not instance_id:
        return None
    values = settings.parse(
        env,
        contract.SNAPSHOT_MAX_AGE_MINUTES,
        contract.SNAPSHOT_TIMEOUT_SECONDS,
        contract.SNAPSHOT_MAX_COUNT,
    )
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    return SnapshotEnvironment(
        instance_id,
        timedelta(minutes=values[MAX_AGE_ENV]),
        values[TIMEOUT_ENV],
        region,
        values[MAX_COUNT_ENV],
    )


class Guard:
    """Called before each schema change; makes sure of a snapshot once per process, and marks
    it as preceding each change it is relied on for."""

    def __init__(
        self,
        settings: SnapshotEnvironment | None,
        *,
        client: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings, self._client = settings, client
        self._clock, self._sleep = clock, sleep
        self._found: Mapping[str, Any] | None = None

    @property
    def snapshot(self) -> str | None:
        """The snapshot this process relies on, once there is one."""
        return None if self._found is None else self._found["DBSnapshotIdentifier"]

    def __call__(self, change: SchemaChange) -> None:
        if self.settings is None:
            log.warning("%s without a snapshot first (%s is not set)", change, INSTANCE_ENV)
            return
        if self._found is None:
            self._found = self._ensure(self.settings, change)
        else:
            # The same process, the same lock: nothing changed this schema since the snapshot.
            log.info("snapshot %s precedes %s too", self.snapshot, change)
            self._mark(self._found, change)

    def _rds(self) -> Any:
        if self._client is None:
            assert self.settings is not None
            self._client = _rds_client(self.settings.region)
        return self._client

    def _ensure(self, settings: SnapshotEnvironment, change: SchemaChange) -> Mapping[str, Any]:
        instance = settings.instance_id
        try:
            client = self._rds()
            snapshots = list(_manual_snapshots(client, instance))
            found = self._choose(settings, snapshots, change)
            if found is None:
                found = self._take(settings, client, snapshots, change)
            self._mark(found, change)
            self._wait_available(settings, client, found["DBSnapshotIdentifier"])
        except LauncherError:
            raise
        except Exception as exc:  # botocore's errors: denied, unreachable, no such instance
            raise LauncherError(
                f"cannot make sure of a snapshot of database instance {instance} before the "
                f"schema change, so not migrating: {_reason(exc)}. The server role needs "
                "rds:DescribeDBSnapshots, and rds:CreateDBSnapshot and rds:AddTagsToResource "
                f"on snapshots named {PREFIX}*, and the pod a route to the RDS API; or take a "
                "snapshot yourself (the SnapshotCommand output) and restart the pod"
            ) from None
        log.info("snapshot %s available: migrating", found["DBSnapshotIdentifier"])
        return found

    def _choose(
        self,
        settings: SnapshotEnvironment,
        snapshots: list[Mapping[str, Any]],
        change: SchemaChange,
    ) -> Mapping[str, Any] | None:
        """The newest usable snapshot taken before this same change, whatever its age; else
        the newest taken within the maximum age."""
        usable = [s for s in snapshots if s.get("Status") in _USABLE]
        same = [s for s in usable if _precedes(s, change)]
        if same:
            found = max(same, key=_created)
            log.info(
                "snapshot %s of %s was taken before this same change (%s), on %s: using it",
                found["DBSnapshotIdentifier"],
                settings.instance_id,
                change,
                _when(found),
            )
            return found
        since = self._clock() - settings.max_age
        recent = [s for s in usable if _created(s) >= since]
        if not recent:
            return None
        found = max(recent, key=_created)
        log.info(
            "snapshot %s of %s is recent enough for %s",
            found["DBSnapshotIdentifier"],
            settings.instance_id,
            change,
        )
        return found

    def _take(
        self,
        settings: SnapshotEnvironment,
        client: Any,
        snapshots: list[Mapping[str, Any]],
        change: SchemaChange,
    ) -> Mapping[str, Any]:
        instance = settings.instance_id
        ours = sorted(s["DBSnapshotIdentifier"] for s in snapshots if _ours(s))
        if len(ours) >= settings.max_count:
            raise LauncherError(
                f"{len(ours)} snapshots named {PREFIX}* of database instance {instance} exist "
                f"({', '.join(ours)}) and {MAX_COUNT_ENV} allows {settings.max_count}: not "
                f"taking another before {change}, so not migrating. The cap keeps a migration "
                "that fails on every restart from using up the account's manual-snapshot "
                f"quota ({QUOTA_NOTE}), which your own snapshots need too. Delete the ones "
                "you no longer need (docs/operations.md, Rolling back, lists them), or take a "
                "snapshot yourself (the SnapshotCommand output) and restart the pod, or raise "
                f"{MAX_COUNT_ENV}"
            )
        name = f"{change.stem()}{self._clock():{_TIME_FORMAT}}"
        log.info("taking snapshot %s of %s before %s", name, instance, change)
        # No Tags here: given any, RDS would not copy the instance's own tags
        # (copy_tags_to_snapshot); _mark adds the change's afterwards.
        # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Tagging.html
        return client.create_db_snapshot(DBSnapshotIdentifier=name, DBInstanceIdentifier=instance)[
            "DBSnapshot"
        ]

    def _mark(self, found: Mapping[str, Any], change: SchemaChange) -> None:
        """Tag our snapshot with the change it precedes, so the next attempt finds it however
        old. Not an operator's (the role may tag only its own), nor one already marked for
        another change of this schema. A failure costs at most one more snapshot later, so it
        is a warning."""
        wanted, tags = change.tags(), _tags(found)
        if not _ours(found) or any(key in tags for key in wanted):
            return
        try:
            self._rds().add_tags_to_resource(
                ResourceName=found["DBSnapshotArn"],
                Tags=[{"Key": key, "Value": value} for key, value in wanted.items()],
            )
        except Exception as exc:  # botocore's errors; the snapshot itself is fine
            log.warning(
                "could not tag snapshot %s with the change it precedes (%s): %s",
                found["DBSnapshotIdentifier"],
                change,
                _reason(exc),
            )

    def _wait_available(self, settings: SnapshotEnvironment, client: Any, snapshot: str) -> None:
        deadline = time.monotonic() + settings.timeout_seconds
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
                    f"after {settings.timeout_seconds:g} s, so not migrating yet; RDS keeps "
                    "creating it and the next attempt of this container waits for it "
                    f"({TIMEOUT_ENV} sets the wait)"
                )
            log.info("snapshot %s %s (%s%%)", snapshot, status, found.get("PercentProgress", 0))
            self._sleep(POLL_SECONDS)


def _manual_snapshots(client: Any, instance: str) -> Any:
    """Manual only: an automated one expires with the backup retention, and point-in-time
    restore already covers what it holds."""
    for page in client.get_paginator("describe_db_snapshots").paginate(
        DBInstanceIdentifier=instance, SnapshotType="manual"
    ):
        yield from page["DBSnapshots"]


def _ours(snapshot: Mapping[str, Any]) -> bool:
    return str(snapshot["DBSnapshotIdentifier"]).lower().startswith(PREFIX)


def _tags(snapshot: Mapping[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in snapshot.get("TagList") or ()}


def _precedes(snapshot: Mapping[str, Any], change: SchemaChange) -> bool:
    """Taken before this change: its tags say so, or its name (RDS keeps names lower-case)."""
    tags = _tags(snapshot)
    if all(tags.get(key) == value for key, value in change.tags().items()):
        return True
    name = str(snapshot["DBSnapshotIdentifier"]).lower()
    return re.fullmatch(re.escape(change.stem()) + _TIME_PATTERN, name) is not None


def _name_part(revision: str) -> str:
    """A revision as a part of an RDS identifier (MLflow's are 12 hex digits already)."""
    part = re.sub(r"[^a-z0-9]+", "-", revision.lower())[:64].strip("-")
    return part or "none"


def _created(snapshot: Mapping[str, Any]) -> datetime:
    # A snapshot being created may not report its time yet: it is as new as can be.
    created = snapshot.get("SnapshotCreateTime")
    return created if isinstance(created, datetime) else datetime.max.replace(tzinfo=UTC)


def _when(snapshot: Mapping[str, Any]) -> str:
    created = snapshot.get("SnapshotCreateTime")
    if not isinstance(created, datetime):
        return "a time RDS does not report yet"
    return f"{created.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _rds_client(region: str | None) -> Any:
    import boto3

    return boto3.client("rds", region_name=region)


def _reason(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    if error:
        return f"{error.get('Code')}: {error.get('Message')}"
    return " ".join(str(exc).split()) or type(exc).__name__
