"""Before a schema change, a fresh snapshot: an existing one if recent enough, else a new one
waited for until available; anything else stops the migration with the reason."""

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from mlflow_launcher import snapshot
from mlflow_launcher.errors import LauncherError
from moto import mock_aws

REGION = "eu-west-1"
INSTANCE = "mlflow-data-database"
CHANGE = "upgrading the schema from a to b"


def _settings(**changes) -> snapshot.SnapshotSettings:
    values = {
        "instance_id": INSTANCE,
        "max_age": timedelta(minutes=60),
        "timeout_seconds": 30.0,
        "region": REGION,
    }
    return snapshot.SnapshotSettings(**{**values, **changes})


@pytest.fixture
def rds(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("rds", region_name=REGION)
        client.create_db_instance(
            DBInstanceIdentifier=INSTANCE,
            DBInstanceClass="db.t4g.medium",
            Engine="mysql",
            AllocatedStorage=20,
            MasterUsername="mlflow",
            MasterUserPassword="not-a-real-password",
        )
        yield client


def _snapshots(client) -> list[str]:
    """The instance's manual snapshots (RDS, and moto, also take an automated one)."""
    found = client.describe_db_snapshots(DBInstanceIdentifier=INSTANCE, SnapshotType="manual")
    return sorted(s["DBSnapshotIdentifier"] for s in found["DBSnapshots"])


def test_off_without_an_instance_id():
    assert snapshot.load({"AWS_REGION": REGION}) is None


def test_settings_from_the_environment_and_their_problems():
    loaded = snapshot.load({snapshot.INSTANCE_ENV: INSTANCE, "AWS_REGION": REGION})
    assert loaded == _settings(timeout_seconds=snapshot.DEFAULT_TIMEOUT_SECONDS)
    with pytest.raises(LauncherError) as err:
        snapshot.load(
            {snapshot.INSTANCE_ENV: INSTANCE, snapshot.MAX_AGE_ENV: "0", snapshot.TIMEOUT_ENV: "x"}
        )
    assert f"{snapshot.MAX_AGE_ENV} must be a positive number, got '0'" in str(err.value)
    assert f"{snapshot.TIMEOUT_ENV} must be a positive number, got 'x'" in str(err.value)


def test_without_a_recent_snapshot_one_is_taken_once(rds):
    guard = snapshot.Guard(_settings(), client=rds)
    guard(CHANGE)
    guard("upgrading the auth schema from c to d")  # the same process: the same snapshot
    [taken] = _snapshots(rds)
    assert taken.startswith(snapshot.PREFIX) and guard.snapshot == taken


def test_a_recent_snapshot_of_the_operators_is_used(rds):
    rds.create_db_snapshot(DBSnapshotIdentifier="mlflow-at-abc123", DBInstanceIdentifier=INSTANCE)
    guard = snapshot.Guard(_settings(), client=rds)
    guard(CHANGE)
    assert guard.snapshot == "mlflow-at-abc123"
    assert _snapshots(rds) == ["mlflow-at-abc123"]


def test_an_old_snapshot_is_not_enough(rds):
    rds.create_db_snapshot(DBSnapshotIdentifier="mlflow-at-abc123", DBInstanceIdentifier=INSTANCE)
    later = datetime.now(UTC) + timedelta(hours=2)
    guard = snapshot.Guard(_settings(), client=rds, clock=lambda: later)
    guard(CHANGE)
    assert guard.snapshot == f"{snapshot.PREFIX}{later:%Y%m%d-%H%M%S}"
    assert len(_snapshots(rds)) == 2


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

    def describe_db_snapshots(self, DBSnapshotIdentifier):  # boto3's parameter name
        self.polls -= 1
        status = "creating" if self.polls >= 0 else "available"
        snap = {"DBSnapshotIdentifier": DBSnapshotIdentifier, "Status": status}
        return {"DBSnapshots": [{**snap, "PercentProgress": 40}]}


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
    assert f"without a snapshot first ({snapshot.INSTANCE_ENV} is not set)" in caplog.text


def test_the_server_role_may_create_exactly_the_launchers_snapshots():
    from mlflow_on_eks.constructs_lib.tracking_server import SNAPSHOT_PREFIX

    assert snapshot.PREFIX == SNAPSHOT_PREFIX
