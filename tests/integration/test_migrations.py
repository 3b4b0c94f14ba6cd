"""Migrations are safe under replicas: concurrent `migrate` on an empty database all succeed,
exactly one does the work under the advisory lock, a lock held by a lost session ends `migrate`
with a clear error instead of a pod stuck in Init, and the server container never migrates.
A schema a newer MLflow migrated (what a rollback's old pods meet) is refused unchanged."""

import re
import secrets
import subprocess
import time
from datetime import datetime
from pathlib import Path

import itest_launcher as launcher
import itest_template as template
import pytest
from itest_auth import (
    DB_NAME_ENV,
    auth_history,
    auth_revision,
    create_auth_secrets,
    migrate_auth_to,
    new_login,
    tables,
)
from itest_chart import container_env, pod, rds_instance, substitute_endpoints, wait_container

pytestmark = pytest.mark.integration

REPLICAS = 4
LOCK_TIMEOUT = 4  # MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS for the held-lock test
MIGRATE_BOUND = 60  # seconds: start-up (mlflow import) + LOCK_TIMEOUT, with a wide margin

# A second session that takes the migration lock the way the launcher does (same secret, URL,
# TLS and lock) and keeps it, like a pod lost mid-migration, until its stdin is closed. It
# prints its session id: CONNECTION_ID() on MySQL, the backend pid on PostgreSQL.


def test_concurrent_migrate_on_empty_database(db_server, new_database, moto, test_ca, tmp_path):
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, "unused-bucket"), tmp_path / "home"
    )
    procs = [
        subprocess.Popen(
            [*launcher.entrypoint(), "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(REPLICAS)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0] * REPLICAS, "\n----\n".join(outputs)

    did_work = [o for o in outputs if "migrated schema from empty to head" in o]
    at_head = [o for o in outputs if "schema already at head" in o]
    assert len(did_work) == 1, "\n----\n".join(outputs)
    assert len(at_head) == REPLICAS - 1, "\n----\n".join(outputs)
    assert all("acquired the migration lock" in o for o in outputs)

    head = did_work[0].split("to head ")[1].split()[0]
    rows = target.server.query(target.name, "SELECT version_num FROM alembic_version")
    assert rows == [[head]]
    for output in outputs:
        launcher.assert_no_secret(output, target.password, "migrate output")


def _tables(target) -> list[list[str]]:
    schema = "DATABASE()" if target.server.engine == "mysql" else "current_schema()"
    sql = f"SELECT table_name FROM information_schema.tables WHERE table_schema = {schema}"  # noqa: S608
    return target.server.query(target.name, sql)


def _log_time(output: str, message: str) -> datetime:
    """When the launcher logged the line containing ``message`` (its asctime prefix)."""
    match = re.search(rf"^(\S+ \S+) mlflow-launcher .*{re.escape(message)}", output, re.MULTILINE)
    assert match, f"no log line with {message!r}:\n{output}"
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")


def _migrate_within(env: dict[str, str], log: Path, bound: float) -> tuple[int, str, float]:
    """Run `migrate`; exit code, output and duration. A run past ``bound`` is a test failure,
    not a hang: stopping sends SIGTERM to tini, which forwards it to the launcher (killing tini
    alone would orphan the launcher, which runs in a process group of its own)."""
    start = time.monotonic()
    migrate = launcher.Server(env, log, [*launcher.entrypoint(), "migrate"])
    try:
        code = migrate.proc.wait(bound)
    except subprocess.TimeoutExpired:
        code = None
    migrate.stop()  # ends it if still running; checks that nothing of its tree outlives it
    if code is None:
        pytest.fail(
            f"migrate still running after {bound} s while another session held the lock: "
            f"the lock wait is not bounded\n{migrate.logs()}",
            pytrace=False,
        )
    return code, migrate.logs(), time.monotonic() - start


def test_a_held_lock_ends_migrate_with_a_clear_error(
    db_server, new_database, moto, test_ca, tmp_path
):
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(
            moto,
            test_ca.ca,
            "unused-bucket",
            MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS=str(LOCK_TIMEOUT),
        ),
        tmp_path / "home",
    )
    with launcher.holding_migration_lock(env) as (session, holder):
        code, output, elapsed = _migrate_within(env, tmp_path / "held.log", MIGRATE_BOUND)
        assert code != 0, output
        assert elapsed < MIGRATE_BOUND
        assert output.count("waiting for the migration lock") == 1, output
        waited = (
            _log_time(output, "waited") - _log_time(output, "waiting for the migration lock")
        ).total_seconds()
        assert LOCK_TIMEOUT - 0.5 <= waited < LOCK_TIMEOUT + 3, output
        errors = [line for line in output.splitlines() if " ERROR " in line]
        assert len(errors) == 1, output
        error = errors[0]
        assert f"waited {LOCK_TIMEOUT} s for the migration lock" in error
        assert "MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS" in error
        if db_server.engine == "mysql":
            assert f"held by MySQL connection id {session}:" in error
            assert f"`KILL {session}`" in error
        else:
            assert f"held by PostgreSQL backend pid {session}:" in error
            assert f"`SELECT pg_terminate_backend({session})`" in error
        assert "acquired the migration lock" not in output
        launcher.assert_no_secret(output, target.password, "migrate output")
        assert _tables(target) == [], "migrate touched the schema without the lock"
        assert holder.poll() is None, "the holder's session ended early"

    code, output, _ = _migrate_within(env, tmp_path / "released.log", 300)
    assert code == 0, output
    assert "migrated schema from empty to head" in output
    assert "waiting for the migration lock" not in output


def test_serve_refuses_an_unmigrated_database(db_server, new_database, moto, test_ca, tmp_path):
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, "unused-bucket"), tmp_path / "home"
    )
    result = launcher.run(["serve"], env, timeout=120)
    assert result.returncode != 0
    assert "run `mlflow-launcher migrate` first" in result.stderr
    assert "the server container never migrates" in result.stderr
    assert _tables(target) == [], "serve created tables"


def test_serve_refuses_trace_rollups_left_behind_with_rollups_off(
    db_server, new_database, moto, test_ca, tmp_path
):
    """`mlflow server`'s one check before it starts that the launcher makes itself (rollups.py,
    without importing MLflow): rows of SQL trace rollups left in a store whose server has them
    off would go stale. Refused with both ways out, the row kept."""
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, "unused-bucket"), tmp_path / "home"
    )
    template.migrate(db_server, ["migrate"], env)
    db_server.admin(
        "INSERT INTO sql_trace_metric_daily_rollups "
        "(experiment_id, rollup_day, metric_name, grouping_set, sample_count) "
        "VALUES (0, '2026-01-01', 'latency', 'all', 1);",
        database=target.name,
    )
    result = launcher.run(["serve"], env, timeout=120)
    log = result.stdout + result.stderr
    assert result.returncode == 2, log
    errors = [line.split(" ERROR ", 1)[1] for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert errors[0].startswith(
        "SQL trace rollups are off (MLFLOW_SQL_TRACE_ROLLUPS_ENABLED unset or false) but the "
        "database holds rollup rows (sql_trace_metric_daily_rollups)"
    ), log
    assert "mlflow db delete-trace-rollups" in errors[0]
    assert "Traceback" not in log
    assert db_server.query(target.name, "SELECT COUNT(*) FROM sql_trace_metric_daily_rollups") == [
        ["1"]
    ]


# The store as the previous MLflow release's `migrate` left it: the initial tables, then MLflow's
# migrations up to the revision before head, through the launcher's settings, login and TLS.
_MIGRATE_TO_PREVIOUS = """
import os
from alembic import command
from alembic.script import ScriptDirectory
from mlflow.store.db.utils import InitialBase, _get_alembic_config
from mlflow_launcher import dburl, secret, settings, wait
db = settings.load_db(os.environ)
# Older releases migrated as the master login (the migration Job's MLFLOW_DB_ADMIN_SECRET_ID).
secret_id = os.environ.get("MLFLOW_DB_ADMIN_SECRET_ID") or db.secret_id
login = secret.fetch_credentials(secret_id, region=db.region)
url = dburl.uri_for_mlflow(dburl.build_url(db, login))
config = _get_alembic_config(url)
previous = ScriptDirectory.from_config(config).get_revision("head").down_revision
engine = wait.make_engine(url)
InitialBase.metadata.create_all(engine)
with engine.begin() as connection:
    config.attributes["connection"] = connection
    command.upgrade(config, previous)
print(previous)
"""


def _manual_snapshots(moto, instance: str) -> list[str]:
    found = moto.client("rds").describe_db_snapshots(
        DBInstanceIdentifier=instance, SnapshotType="manual"
    )["DBSnapshots"]
    return [s["DBSnapshotIdentifier"] for s in found]


def test_an_upgrade_takes_a_snapshot_first_and_none_means_no_upgrade(
    mariadb, new_database, moto, synth, test_ca, tmp_path
):
    """The chart's `migrate` (default config) on a store one MLflow release behind: it takes a
    snapshot of the instance named in its ConfigMap before it upgrades; with no such instance
    (or no permission) it stops and the schema stays as it was."""
    chart = synth("default")
    _, (init, _main) = pod(chart)
    target = new_database(mariadb)
    instance = rds_instance(moto, f"itest-{target.name.replace('_', '-')}")

    def env(instance_id: str) -> dict[str, str]:
        local = substitute_endpoints(
            container_env(chart, init), target, moto, test_ca.ca, "unused", instance_id=instance_id
        )
        return launcher.container_env({**local, "MLFLOW_DB_NAME": target.name}, tmp_path / "home")

    previous = launcher.image_python(
        "-c", _MIGRATE_TO_PREVIOUS, env=env(instance), timeout=120
    ).stdout.split()[-1]
    revision = "SELECT version_num FROM alembic_version"

    refused = launcher.run(init["args"], env("itest-no-such-instance"))
    assert refused.returncode != 0
    assert "cannot make sure of a snapshot of database instance itest-no-such-instance" in (
        refused.stderr
    )
    assert "DBInstanceNotFound" in refused.stderr
    assert mariadb.query(target.name, revision) == [[previous]]

    upgraded = launcher.run(init["args"], env(instance))
    assert upgraded.returncode == 0, upgraded.stderr
    [taken] = _manual_snapshots(moto, instance)
    assert taken.startswith("mlflow-before-")
    log = upgraded.stderr
    assert log.index(f"taking snapshot {taken}") < log.index(f"snapshot {taken} available")
    assert log.index(f"snapshot {taken} available") < log.index("INFO upgrading the schema from")
    assert mariadb.query(target.name, revision) != [[previous]]

    # At head now: nothing to change, no new snapshot.
    again = launcher.run(init["args"], env(instance))
    assert again.returncode == 0 and "schema already at head" in again.stderr
    assert _manual_snapshots(moto, instance) == [taken]


def _snapshot_tags(moto, name: str) -> dict[str, str]:
    [found] = moto.client("rds").describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"]
    return {tag["Key"]: tag["Value"] for tag in found.get("TagList", [])}


# A table of each head migration's, made in the way: that migration then fails on its first
# statement, after the snapshot, the same way on every attempt, and changes nothing.
_IN_THE_WAY = {"tracking": "scheduler_leases", "auth": "scorer_permissions"}


def test_a_migration_failing_on_every_restart_takes_one_snapshot(
    mariadb, moto, synth, test_ca, tmp_path
):
    """The chart's `migrate` (default config, authentication on) on a store and an auth
    database a release behind, whose upgrades fail until the operator moves a table. Restarts
    hours apart (a maximum age of 6 ms stands in for the hours) reuse the snapshot taken before
    the same change, so the attempts take one snapshot in all, not one each; the tracking and
    auth changes of the upgrade share it, and it keeps the instance's own tags."""
    chart = synth("default")
    _, (init, _main) = pod(chart)
    login = new_login(mariadb, moto, f"db-{secrets.token_urlsafe(12)}")
    auth_db = f"{login.name}_auth"
    instance = rds_instance(moto, f"itest-{login.name.replace('_', '-')}", {"team": "mlflow"})
    local = substitute_endpoints(
        container_env(chart, init),
        login,
        moto,
        test_ca.ca,
        "unused",
        auth=create_auth_secrets(moto).arns,
        instance_id=instance,
    )
    env = launcher.container_env(
        {
            **local,
            "MLFLOW_DB_NAME": login.name,
            DB_NAME_ENV: auth_db,
            "MLFLOW_SNAPSHOT_MAX_AGE_MINUTES": "0.0001",
        },
        tmp_path / "home",
    )
    previous = launcher.image_python(
        "-c", _MIGRATE_TO_PREVIOUS, env=env, timeout=120
    ).stdout.split()[-1]
    history = auth_history()
    migrate_auth_to(env, history[0])
    mariadb.admin(f"CREATE TABLE {_IN_THE_WAY['tracking']} (x INT)", database=login.name)
    mariadb.admin(f"CREATE TABLE {_IN_THE_WAY['auth']} (x INT)", database=auth_db)
    tracking = f"upgrading the schema from {previous} to "
    auth_change = f"upgrading the auth schema from {history[0]} to {history[-1]}"

    def attempt(fails_on: str | None) -> str:
        result = launcher.run(init["args"], env)
        log = result.stdout + result.stderr
        launcher.assert_no_secret(log, login.password, "migrate output")
        if fails_on is None:
            assert result.returncode == 0, log
        else:
            assert result.returncode != 0 and _IN_THE_WAY[fails_on] in log, log
        return log

    # The tracking upgrade fails, three times.
    first = attempt("tracking")
    [taken] = _manual_snapshots(moto, instance)
    assert f"taking snapshot {taken} of {instance} before {tracking}" in first
    for _ in range(2):
        again = attempt("tracking")
        assert f"snapshot {taken} of {instance} was taken before this same change" in again
        assert "taking snapshot" not in again
    assert _manual_snapshots(moto, instance) == [taken]
    tags = _snapshot_tags(moto, taken)
    assert tags["team"] == "mlflow"  # the instance's, copied
    assert tags["mlflow-on-eks:tracking-from-revision"] == previous

    # Table moved: the tracking upgrade goes through on that snapshot; the auth one fails
    # after it, twice, on the same snapshot.
    mariadb.admin(f"DROP TABLE {_IN_THE_WAY['tracking']}", database=login.name)
    tracked = attempt("auth")
    assert f"migrated schema from {previous} to head" in tracked
    assert f"snapshot {taken} precedes {auth_change} too" in tracked
    auth_again = attempt("auth")
    assert "schema already at head" in auth_again
    assert f"snapshot {taken} of {instance} was taken before this same change ({auth_change})" in (
        auth_again
    )
    assert _snapshot_tags(moto, taken)["mlflow-on-eks:auth-from-revision"] == history[0]

    mariadb.admin(f"DROP TABLE {_IN_THE_WAY['auth']}", database=auth_db)
    done = attempt(None)
    assert f"migrated the auth schema from {history[0]} to head {history[-1]}" in done
    assert auth_revision(mariadb, auth_db) == history[-1]
    assert _manual_snapshots(moto, instance) == [taken]


# A revision no MLflow release has: a newer MLflow's, as far as this image can tell.
FUTURE_REVISION = "f00dfacecafe"
_VERSION_TABLE = {"tracking": "alembic_version", "auth": "alembic_version_auth"}


def _fingerprint(server, database: str) -> dict[str, int]:
    """Every table of the database with its row count: a change of schema or data shows."""
    # One query (one client process) for all of them, not one per table.
    counts = " UNION ALL ".join(
        f"SELECT '{table}', COUNT(*) FROM {table}"  # noqa: S608
        for table in tables(server, database)
    )
    return {table: int(count) for table, count in server.query(database, counts)}


@pytest.mark.parametrize("schema", ["tracking", "auth"])
def test_a_schema_a_newer_mlflow_migrated_is_refused_and_left_alone(
    db_server, moto, synth, test_ca, tmp_path, schema
):
    """What a rollback's old pods meet after the new release migrated: the chart's `migrate`,
    `wait-schema` and `serve` (the default config on MariaDB, the postgres example on
    PostgreSQL: both with authentication and snapshots), on a store or users' database stamped
    with a revision this MLflow does not have and holding a table a newer migration would
    add. Each stops with the
    one message saying what happened and the two ways out; neither changes schema or data, and
    no snapshot is taken for an upgrade that cannot happen."""
    chart = synth("default" if db_server.engine == "mysql" else "postgres")
    _, (init, main) = pod(chart)
    login = new_login(db_server, moto, f"db-{secrets.token_urlsafe(12)}")
    databases = {"tracking": login.name, "auth": f"{login.name}_auth"}
    instance = rds_instance(moto, f"itest-{login.name.replace('_', '-')}")
    secrets_arns = create_auth_secrets(moto).arns

    def env(container: dict) -> dict[str, str]:
        local = substitute_endpoints(
            container_env(chart, container),
            login,
            moto,
            test_ca.ca,
            "unused",
            auth=secrets_arns,
            instance_id=instance,
        )
        names = {"MLFLOW_DB_NAME": databases["tracking"], DB_NAME_ENV: databases["auth"]}
        return launcher.container_env({**local, **names}, tmp_path / "home")

    first = launcher.run(init["args"], env(init))
    assert first.returncode == 0, first.stderr
    database = databases[schema]
    version_table = _VERSION_TABLE[schema]
    [[head]] = db_server.query(database, f"SELECT version_num FROM {version_table}")  # noqa: S608
    db_server.admin(
        f"UPDATE {version_table} SET version_num = '{FUTURE_REVISION}';"  # noqa: S608
        "CREATE TABLE future_feature (id INTEGER PRIMARY KEY, note VARCHAR(40));"
        "INSERT INTO future_feature VALUES (1, 'written by a newer MLflow');",
        database=database,
    )
    before = {name: _fingerprint(db_server, name) for name in databases.values()}
    mlflow_version = launcher.image_python(
        "-c", "import importlib.metadata as m; print(m.version('mlflow'))"
    ).stdout.strip()
    what = (
        "the database schema" if schema == "tracking" else f"the auth schema in database {database}"
    )
    message = (
        f"{what} is at revision {FUTURE_REVISION}, which this image's MLflow ({mlflow_version}, "
        f"head {head}) does not know: a newer MLflow migrated it; deploy that version again, or "
        "restore the snapshot taken before the upgrade (docs/operations.md, Rolling back)"
    )

    # migrate (the Job), then wait-schema and serve, as the server's pod runs them
    for container in (init, wait_container(chart), main):
        result = launcher.run(container["args"], env(container), timeout=120)
        log = result.stdout + result.stderr
        assert result.returncode == 2, log
        errors = [line.split(" ERROR ", 1)[1] for line in log.splitlines() if " ERROR " in line]
        assert errors == [message], log
        assert "Traceback" not in log
        assert "snapshot" not in log.replace("restore the snapshot taken", "")
        launcher.assert_no_secret(log, login.password, f"{container['args']} output")
        assert {name: _fingerprint(db_server, name) for name in databases.values()} == before
        assert db_server.query(database, f"SELECT version_num FROM {version_table}") == [  # noqa: S608
            [FUTURE_REVISION]
        ]
    assert _manual_snapshots(moto, instance) == []
