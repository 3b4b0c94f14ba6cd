"""A bad ConfigMap is reported in one message that names every variable at fault."""

import pytest

from mlflow_launcher.errors import LauncherError
from mlflow_launcher.settings import load_db, load_db_and_server, load_local_server


@pytest.fixture
def env(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return {
        "MLFLOW_DB_ENGINE": "postgres",
        "MLFLOW_DB_HOST": "db.internal",
        "MLFLOW_DB_PORT": "5432",
        "MLFLOW_DB_NAME": "mlflow",
        "MLFLOW_DB_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        "MLFLOW_DB_CA_BUNDLE": str(ca),
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/artifacts",
        "MLFLOW_HOST": "0.0.0.0",
        "MLFLOW_PORT": "5000",
        "MLFLOW_WORKERS": "2",
        "MLFLOW_ALLOWED_HOSTS": "mlflow, mlflow.ns.svc ,*.elb.amazonaws.com",
        "AWS_REGION": "eu-west-1",
    }


def test_complete_environment_parses(env):
    db, server = load_db_and_server(env)
    assert (db.engine, db.host, db.port, db.name) == ("postgres", "db.internal", 5432, "mlflow")
    assert db.region == "eu-west-1"
    assert db.connect_attempts == 10 and db.backoff_max_seconds == 30.0  # defaults
    assert db.migration_lock_timeout_seconds == 600.0
    assert db.wait_seconds == 90.0
    assert (db.connect_timeout_seconds, db.network_timeout_seconds) == (5, 10)
    assert db.statement_timeout_seconds == 60
    assert server.allowed_hosts == ("mlflow", "mlflow.ns.svc", "*.elb.amazonaws.com")
    assert (server.port, server.workers) == (5000, 2)


LOCK = "MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS"


def test_migration_lock_timeout_is_read_for_migrate(env):
    env[LOCK] = " 4.5 "
    assert load_db(env).migration_lock_timeout_seconds == 4.5


def test_a_bad_lock_timeout_is_reported_with_the_other_problems(env):
    env[LOCK] = "0"
    del env["MLFLOW_DB_HOST"]
    with pytest.raises(LauncherError) as err:
        load_db(env)
    assert "MLFLOW_DB_HOST is not set" in str(err.value)
    assert f"{LOCK} must be a positive number of seconds, got '0'" in str(err.value)


REQUIRED = (
    "MLFLOW_DB_ENGINE",
    "MLFLOW_DB_HOST",
    "MLFLOW_DB_SECRET_ID",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "MLFLOW_ALLOWED_HOSTS",
)


def test_every_missing_variable_is_named_at_once(env):
    for key in REQUIRED:
        del env[key]
    with pytest.raises(LauncherError) as err:
        load_db_and_server(env)
    for key in REQUIRED:
        assert f"{key} is not set" in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "MLFLOW_DB_ENGINE",
            "oracle",
            "MLFLOW_DB_ENGINE must be one of mysql, postgres, got 'oracle'",
        ),
        ("MLFLOW_DB_PORT", "abc", "MLFLOW_DB_PORT must be a TCP port, got 'abc'"),
        ("MLFLOW_DB_PORT", "70000", "MLFLOW_DB_PORT must be a TCP port"),
        ("MLFLOW_WORKERS", "0", "MLFLOW_WORKERS must be a whole number from 1 to 16"),
        ("MLFLOW_DB_CONNECT_ATTEMPTS", "-1", "MLFLOW_DB_CONNECT_ATTEMPTS must be a positive"),
        ("MLFLOW_DB_CONNECT_BACKOFF_MAX_SECONDS", "x", "MLFLOW_DB_CONNECT_BACKOFF_MAX_SECONDS"),
        ("MLFLOW_DB_CA_BUNDLE", "/nonexistent/ca.pem", "MLFLOW_DB_CA_BUNDLE must be a readable"),
        ("MLFLOW_ALLOWED_HOSTS", " , ", "MLFLOW_ALLOWED_HOSTS must be a comma-separated"),
        ("MLFLOW_DB_WAIT_SECONDS", "inf", "MLFLOW_DB_WAIT_SECONDS must be a positive number"),
        ("MLFLOW_DB_WAIT_SECONDS", "0", "MLFLOW_DB_WAIT_SECONDS must be a positive number"),
    ]
    + [
        (var, bad, f"{var} must be a positive whole number of seconds, got {bad!r}")
        for var in (
            "MLFLOW_DB_CONNECT_TIMEOUT_SECONDS",
            "MLFLOW_DB_NETWORK_TIMEOUT_SECONDS",
            "MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS",
        )
        for bad in ("0", "2.5", "ten")
    ]
    + [
        (LOCK, bad, f"{LOCK} must be a positive number of seconds, got {bad!r}")
        for bad in ("0", "-5", "ten", "10s", "nan", "inf")
    ],
)
def test_invalid_values_are_named(env, key, value, expected):
    env[key] = value
    with pytest.raises(LauncherError, match="invalid environment") as err:
        load_db_and_server(env)
    assert expected in str(err.value)


def test_the_bounds_are_read_and_shared_with_the_read_replica(env):
    env |= {
        "MLFLOW_DB_WAIT_SECONDS": "45.5",
        "MLFLOW_DB_CONNECT_TIMEOUT_SECONDS": "3",
        "MLFLOW_DB_NETWORK_TIMEOUT_SECONDS": "7",
        "MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS": "300",
        "MLFLOW_DB_READ_HOST": "replica.internal",
    }
    db = load_db(env)
    for settings in (db, db.replica()):
        assert settings.wait_seconds == 45.5
        assert (settings.connect_timeout_seconds, settings.network_timeout_seconds) == (3, 7)
        assert settings.statement_timeout_seconds == 300


def test_no_read_replica_unless_its_host_is_set(env):
    db = load_db(env)
    assert db.read_host is None and db.replica() is None


def test_a_read_replica_shares_everything_but_host_and_port(env):
    env["MLFLOW_DB_READ_HOST"] = " replica.internal "
    replica = load_db(env).replica()
    assert replica is not None
    assert (replica.host, replica.port) == ("replica.internal", 5432)  # the primary's port
    assert (replica.name, replica.secret_id, replica.ca_bundle) == (
        "mlflow",
        env["MLFLOW_DB_SECRET_ID"],
        env["MLFLOW_DB_CA_BUNDLE"],
    )
    assert replica.replica() is None  # a replica has no replica of its own
    env["MLFLOW_DB_READ_PORT"] = "6432"
    assert load_db(env).replica().port == 6432


def test_a_bad_read_replica_port_is_named_with_the_other_problems(env):
    env["MLFLOW_DB_READ_HOST"] = "replica.internal"
    env["MLFLOW_DB_READ_PORT"] = "0"
    del env["MLFLOW_DB_HOST"]
    with pytest.raises(LauncherError) as err:
        load_db(env)
    assert "MLFLOW_DB_READ_PORT must be a TCP port, got '0'" in str(err.value)
    assert "MLFLOW_DB_HOST is not set" in str(err.value)


def test_port_defaults_by_engine(env):
    del env["MLFLOW_DB_PORT"]
    assert load_db(env).port == 5432
    env["MLFLOW_DB_ENGINE"] = "mysql"
    assert load_db(env).port == 3306


def test_local_defaults_apply_only_where_env_is_silent():
    defaults = {
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": "5000",
        "MLFLOW_WORKERS": "1",
        "MLFLOW_ALLOWED_HOSTS": "localhost",
        "MLFLOW_ARTIFACTS_DESTINATION": "/x",
    }
    server = load_local_server({"MLFLOW_PORT": "5077"}, defaults)
    assert (server.host, server.port, server.workers) == ("127.0.0.1", 5077, 1)
    assert server.artifacts_destination == "/x"
