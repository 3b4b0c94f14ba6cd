"""Before a schema change, a snapshot: one taken before the same change however old, else a
recent one, else a new one (at most MLFLOW_SNAPSHOT_MAX_COUNT of the launcher's own) waited for
until available; anything else stops the migration with the reason."""

import logging
import re
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from mlflow_launcher import snapshot
from mlflow_launcher.errors import LauncherError

REGION = "eu-west-1"
INSTANCE = "mlflow-data-database"
INSTANCE_TAGS = {"team": "mlflow", "cost-centre": "ml-42"}
CHANGE = snapshot.SchemaChange("tracking", "75868b020152", "dc11669786a5")
AUTH_CHANGE = snapshot.SchemaChange("auth", "e5f6a7b8c9d0", "f1a2b3c4d5e6")
# RDS DB snapshot identifiers (CreateDBSnapshot): 1-255 letters, digits or hyphens, a letter
# first, no two hyphens in a row, no hyphen last.
RDS_IDENTIFIER = re.compile(r"[A-Za-z](?!.*--)[A-Za-z0-9-]{0,254}(?<!-)")


def _settings(**changes) -> snapshot.SnapshotEnvironment:
    values = {
        "instance_id": INSTANCE,
        "max_age": timedelta(minutes=60),
        "timeout_seconds": 30.0,
        "region": REGION,
    }
    return snapshot.SnapshotEnvironment(**{**values, **changes})


@pytest.fixture
def rds(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("rds", region_name=REGION)
        # As the data stack makes it: tagged (the stack's tags), tags copied to snapshots.
        client.create_db_instance(
            DBInstanceIdentifier=INSTANCE,
            DBInstanceClass="db.t4g.medium",
            Engine="mysql",
            AllocatedStorage=20,
            MasterUsername="mlflow",
            MasterUserPassword="not-a-real-password",
            CopyTagsToSnapshot=True,
            Tags=[{"Key": key, "Value": value} for key, value in INSTANCE_TAGS.items()],
        )
        yield client


def _snapshots(client) -> list[str]:
    """The instance's manual snapshots (RDS, and moto, also take an automated one)."""
    found = client.describe_db_snapshots(DBInstanceIdentifier=INSTANCE, SnapshotType="manual")
    return sorted(s["DBSnapshotIdentifier"] for s in found["DBSnapshots"])


def _tags(client, name: str) -> dict[str, str]:
    [found] = client.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"]
    return {tag["Key"]: tag["Value"] for tag in found.get("TagList", [])}


def _later(**delta) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


def test_off_without_an_instance_id():
    assert snapshot.load({"AWS_REGION": REGION}) is None


def test_settings_from_the_environment_and_their_problems():
    loaded = snapshot.load({snapshot.INSTANCE_ENV: INSTANCE, "AWS_REGION": REGION})
    assert loaded == _settings(timeout_seconds=snapshot.DEFAULT_TIMEOUT_SECONDS)
    assert loaded.max_count == snapshot.DEFAULT_MAX_COUNT == 5
    raised = snapshot.load({snapshot.INSTANCE_ENV: INSTANCE, snapshot.MAX_COUNT_ENV: "12"})
    assert raised.max_count == 12
    with pytest.raises(LauncherError) as err:
        snapshot.load(
            {
                snapshot.INSTANCE_ENV: INSTANCE,
                snapshot.MAX_AGE_ENV: "0",
                snapshot.TIMEOUT_ENV: "x",
                snapshot.MAX_COUNT_ENV: "0",
            }
        )
    assert f"{snapshot.MAX_AGE_ENV} must be a positive number of minutes, got '0'" in str(err.value)
    assert f"{snapshot.TIMEOUT_ENV} must be a positive number of seconds, got 'x'" in str(err.value)
    assert f"{snapshot.MAX_COUNT_ENV} must be a positive whole number, got '0'" in str(err.value)
    for bad in ("2.5", "-1", "five"):
        with pytest.raises(LauncherError, match=snapshot.MAX_COUNT_ENV):
            snapshot.load({snapshot.INSTANCE_ENV: INSTANCE, snapshot.MAX_COUNT_ENV: bad})


def test_a_change_reads_as_the_log_always_said():
    assert str(CHANGE) == "upgrading the schema from 75868b020152 to dc11669786a5"
    assert str(AUTH_CHANGE) == "upgrading the auth schema from e5f6a7b8c9d0 to f1a2b3c4d5e6"


def test_the_name_says_which_change_and_is_an_rds_identifier():
    at = datetime(2026, 5, 20, 14, 19, 33, tzinfo=UTC)
    name = f"{CHANGE.stem()}{at:%Y%m%d-%H%M%S}"
    assert name == "mlflow-before-tracking-75868b020152-dc11669786a5-20260520-141933"
    odd = snapshot.SchemaChange("tracking", "Odd_Rev--1-", "x" * 300)
    for change in (CHANGE, AUTH_CHANGE, odd, snapshot.SchemaChange("tracking", None, "-")):
        assert RDS_IDENTIFIER.fullmatch(f"{change.stem()}{at:%Y%m%d-%H%M%S}"), change


def test_without_a_recent_snapshot_one_is_taken_once_for_both_schemas(rds):
    guard = snapshot.Guard(_settings(), client=rds)
    guard(CHANGE)
    guard(AUTH_CHANGE)  # the same process: the same snapshot
    [taken] = _snapshots(rds)
    assert taken.startswith(CHANGE.stem()) and guard.snapshot == taken
    # It says which changes it precedes, and keeps the instance's own tags (RDS copies none
    # when CreateDBSnapshot is given tags, so the launcher tags it afterwards).
    assert _tags(rds, taken) == INSTANCE_TAGS | CHANGE.tags() | AUTH_CHANGE.tags()
    assert CHANGE.tags() == {
        "mlflow-on-eks:tracking-from-revision": "75868b020152",
        "mlflow-on-eks:tracking-to-revision": "dc11669786a5",
    }


def test_the_snapshot_of_the_same_change_is_used_however_old(rds):
    snapshot.Guard(_settings(), client=rds)(CHANGE)
    [taken] = _snapshots(rds)

    # The migration failed; the pod restarts a month later, and again: the same snapshot.
    for days in (30, 31):
        again = snapshot.Guard(_settings(), client=rds, clock=lambda d=days: _later(days=d))
        again(CHANGE)
        assert again.snapshot == taken
    assert _snapshots(rds) == [taken]

    # Another upgrade (another pair) is not covered by it.
    other = snapshot.SchemaChange("tracking", "dc11669786a5", "0123456789ab")
    later = snapshot.Guard(_settings(), client=rds, clock=lambda: _later(days=32))
    later(other)
    assert later.snapshot.startswith(other.stem())
    assert len(_snapshots(rds)) == 2


def test_the_auth_change_of_an_upgrade_finds_the_shared_snapshot_later(rds):
    first = snapshot.Guard(_settings(), client=rds)
    first(CHANGE)
    first(AUTH_CHANGE)  # the auth migration then fails on every restart
    restart = snapshot.Guard(_settings(), client=rds, clock=lambda: _later(days=2))
    restart(AUTH_CHANGE)  # the tracking schema is at head now
    assert restart.snapshot == first.snapshot
    assert _snapshots(rds) == [first.snapshot]


def test_a_snapshot_named_for_the_change_counts_without_its_tags(rds):
    name = f"{CHANGE.stem()}20250101-000000"
    rds.create_db_snapshot(DBSnapshotIdentifier=name, DBInstanceIdentifier=INSTANCE)
    guard = snapshot.Guard(_settings(), client=rds, clock=lambda: _later(days=3))
    guard(CHANGE)
    assert guard.snapshot == name and _snapshots(rds) == [name]
    assert CHANGE.tags().items() <= _tags(rds, name).items()  # marked now


def test_a_recent_snapshot_of_the_operators_is_used_and_left_untagged(rds):
    rds.create_db_snapshot(DBSnapshotIdentifier="mlflow-at-abc123", DBInstanceIdentifier=INSTANCE)
    guard = snapshot.Guard(_settings(), client=rds)
    guard(CHANGE)
    guard(AUTH_CHANGE)
    assert guard.snapshot == "mlflow-at-abc123"
    assert _snapshots(rds) == ["mlflow-at-abc123"]
    assert _tags(rds, "mlflow-at-abc123") == INSTANCE_TAGS  # the role may tag only its own


def test_an_old_snapshot_is_not_enough(rds):
    rds.create_db_snapshot(DBSnapshotIdentifier="mlflow-at-abc123", DBInstanceIdentifier=INSTANCE)
    later = _later(hours=2)
    guard = snapshot.Guard(_settings(), client=rds, clock=lambda: later)
    guard(CHANGE)
    assert guard.snapshot == f"{CHANGE.stem()}{later:%Y%m%d-%H%M%S}"
    assert len(_snapshots(rds)) == 2


def _fill_to_the_cap(rds, cap: int) -> list[str]:
    """`cap` of the launcher's snapshots, for earlier upgrades, and one of the operator's."""
    names = [f"{snapshot.PREFIX}tracking-{i:012x}-{i + 1:012x}-20250101-000000" for i in range(cap)]
    for name in [*names, "nightly-by-hand"]:
        rds.create_db_snapshot(DBSnapshotIdentifier=name, DBInstanceIdentifier=INSTANCE)
    return names


def test_at_the_cap_no_snapshot_is_taken_and_nothing_migrates(rds):
    names = _fill_to_the_cap(rds, 3)
    before = _snapshots(rds)
    guard = snapshot.Guard(_settings(max_count=3), client=rds, clock=lambda: _later(hours=2))
    with pytest.raises(LauncherError) as err:
        guard(CHANGE)
    assert _snapshots(rds) == before
    message = str(err.value)
    assert message.startswith(
        f"3 snapshots named mlflow-before-* of database instance {INSTANCE} exist ("
        + ", ".join(names)
        + ") and MLFLOW_SNAPSHOT_MAX_COUNT allows 3: not taking another before upgrading the "
        "schema from 75868b020152 to dc11669786a5, so not migrating."
    )
    assert "nightly-by-hand" not in message  # an operator's own do not count
    assert "manual-snapshot quota (100 manual DB instance snapshots per Region" in message
    assert "Delete the ones you no longer need" in message
    assert "take a snapshot yourself (the SnapshotCommand output)" in message
    assert message.endswith("or raise MLFLOW_SNAPSHOT_MAX_COUNT")


def test_at_the_cap_a_snapshot_that_covers_the_change_still_serves(rds):
    _fill_to_the_cap(rds, 3)
    first = snapshot.Guard(_settings(max_count=4), client=rds, clock=lambda: _later(hours=2))
    first(CHANGE)  # the fourth
    assert first.snapshot.startswith(CHANGE.stem())
    restart = snapshot.Guard(_settings(max_count=4), client=rds, clock=lambda: _later(days=1))
    restart(CHANGE)
    assert restart.snapshot == first.snapshot
    rds.create_db_snapshot(DBSnapshotIdentifier="mlflow-at-def456", DBInstanceIdentifier=INSTANCE)
    other = snapshot.SchemaChange("tracking", "dc11669786a5", "0123456789ab")
    yours = snapshot.Guard(_settings(max_count=4), client=rds)
    yours(other)  # at the cap, but the operator took one: no new one needed
    assert yours.snapshot == "mlflow-at-def456"


class NoTagging:
    """moto's RDS, but AddTagsToResource denied (a role from before this grant)."""

    def __init__(self, client) -> None:
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def add_tags_to_resource(self, **_kwargs):
        error = {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}
        raise ClientError(error, "AddTagsToResource")


def test_a_snapshot_that_cannot_be_tagged_still_serves(rds, caplog):
    caplog.set_level(logging.INFO, logger=snapshot.__name__)
    guard = snapshot.Guard(_settings(), client=NoTagging(rds))
    guard(CHANGE)
    [taken] = _snapshots(rds)
    assert f"could not tag snapshot {taken}" in caplog.text and "AccessDenied" in caplog.text
    assert f"snapshot {taken} available: migrating" in caplog.text
    # Its name still says which change it precedes.
    restart = snapshot.Guard(_settings(), client=NoTagging(rds), clock=lambda: _later(days=1))
    restart(CHANGE)
    assert restart.snapshot == taken and _snapshots(rds) == [taken]


def test_no_such_instance_stops_the_migration_with_the_reason(rds):
    guard = snapshot.Guard(_settings(instance_id="not-this-one"), client=rds)
    with pytest.raises(LauncherError) as err:
        guard(CHANGE)
    message = str(err.value)
    assert "not-this-one" in message and "not migrating" in message
    assert "DBInstanceNotFound" in message and "rds:CreateDBSnapshot" in message


class SlowRds:
    """A snapshot that RDS reports as creating `polls` times before it is available."""

    def __init__(self, polls: int) -> None:
        self.polls, self.created = polls, []

    def get_paginator(self, _name):
        return self

    def paginate(self, **_kwargs):
        return [{"DBSnapshots": []}]

    def create_db_snapshot(self, **kwargs):
        self.created.append(kwargs["DBSnapshotIdentifier"])
        return {"DBSnapshot": self._describe(kwargs["DBSnapshotIdentifier"], "creating")}

    def add_tags_to_resource(self, **_kwargs):
        pass

    def describe_db_snapshots(self, DBSnapshotIdentifier):  # boto3's parameter name
        self.polls -= 1
        status = "creating" if self.polls >= 0 else "available"
        return {"DBSnapshots": [self._describe(DBSnapshotIdentifier, status)]}

    @staticmethod
    def _describe(name: str, status: str) -> dict:
        arn = f"arn:aws:rds:{REGION}:123456789012:snapshot:{name}"
        return {"DBSnapshotIdentifier": name, "DBSnapshotArn": arn, "Status": status} | {
            "PercentProgress": 40
        }


def test_a_new_snapshot_is_waited_for():
    client, sleeps = SlowRds(polls=3), []
    guard = snapshot.Guard(_settings(), client=client, sleep=sleeps.append)
    guard(CHANGE)
    assert len(client.created) == 1 and len(sleeps) == 3


def test_a_snapshot_slower_than_the_bound_stops_the_migration(monkeypatch):
    guard = snapshot.Guard(_settings(timeout_seconds=1), client=SlowRds(polls=10**6))
    clock = iter(range(0, 10**6, 10))
    monkeypatch.setattr(snapshot.time, "monotonic", lambda: next(clock))
    with pytest.raises(LauncherError, match=r"still creating \(40%\) after 1 s, so not migrating"):
        guard(CHANGE)


def test_off_warns_and_lets_the_migration_go(caplog):
    snapshot.Guard(None)(CHANGE)
    assert f"{CHANGE} without a snapshot first ({snapshot.INSTANCE_ENV} is not set)" in (
        caplog.text
    )


def test_the_server_role_may_create_exactly_the_launchers_snapshots():
    from mlflow_on_eks.constructs_lib.workload_roles import SNAPSHOT_PREFIX

    assert snapshot.PREFIX == SNAPSHOT_PREFIX
