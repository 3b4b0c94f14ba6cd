"""The migration lock's wait is bounded: a fake connection and a fake clock show when it gives
up, what the error says (holder, how to end its session, the variable to raise) and that a lock
released in time is still taken. The real servers are in tests/integration/test_migrations.py."""

import logging
import math
from types import SimpleNamespace

import pytest

from mlflow_launcher import cli, schema, wait
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.secret import Credentials

VARIABLE = "MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS"


class Clock:
    """Stands in for the time module: sleeping only moves the fake time on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeConn:
    """One database session; another session holds the lock until ``free_at`` (fake time)."""

    def __init__(self, dialect: str, clock: Clock, free_at: float, holder=None) -> None:
        self.dialect = SimpleNamespace(name=dialect)
        self.clock, self.free_at, self.holder = clock, free_at, holder
        self.statements: list[str] = []
        self.get_lock_waits: list[int] = []

    def execution_options(self, **_):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, statement, params=None):
        sql = str(statement)
        self.statements.append(sql)
        # A wait that never gives up must fail the test, not hang it.
        assert len(self.statements) < 10_000, "the lock wait is not bounded"
        if "GET_LOCK" in sql:  # the server waits up to the timeout for the holder to let go
            self.get_lock_waits.append(params["timeout"])
            end = self.clock.now + params["timeout"]
            self.clock.now = min(end, max(self.clock.now, self.free_at))
            value = int(self.clock.now >= self.free_at)
        elif "pg_try_advisory_lock" in sql:
            value = self.clock.now >= self.free_at
        elif "IS_USED_LOCK" in sql or "pg_locks" in sql:
            if isinstance(self.holder, Exception):
                raise self.holder
            value = self.holder
        else:  # the unlock
            value = 1
        return SimpleNamespace(scalar=lambda: value)


@pytest.fixture
def clock(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    fake = Clock()
    monkeypatch.setattr(schema, "time", fake)
    return fake


def _engine(conn):
    return SimpleNamespace(connect=lambda: conn)


def _hold(conn, timeout):
    with schema.migration_lock(_engine(conn), timeout):
        pass


def _waiting_logs(caplog):
    return [r for r in caplog.records if "waiting for the migration lock" in r.getMessage()]


def test_mysql_gives_up_after_the_timeout_and_names_the_holder(clock, caplog):
    conn = FakeConn("mysql", clock, free_at=math.inf, holder=42)
    with pytest.raises(LauncherError) as err:
        _hold(conn, 12)
    assert conn.get_lock_waits == [0, 5, 5, 2]  # one try at once, then slices up to the bound
    assert clock.now == 12
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("waited 12 s for the migration lock, held by MySQL connection id 42")
    assert "if no other pod is migrating, a lost session still holds it" in message
    assert "`KILL 42`" in message and "wait for that session to time out" in message
    assert f"raise {VARIABLE}" in message
    assert err.value.exit_code == 2
    assert not any("RELEASE_LOCK" in s for s in conn.statements)  # never held, never released
    assert len(_waiting_logs(caplog)) == 1
    assert "giving up after 12 s" in _waiting_logs(caplog)[0].getMessage()


def test_postgres_polls_every_second_and_names_the_backend_pid(clock, caplog):
    conn = FakeConn("postgresql", clock, free_at=math.inf, holder=4321)
    with pytest.raises(LauncherError) as err:
        _hold(conn, 2.5)
    assert clock.sleeps == [1, 1, 0.5]
    message = str(err.value)
    assert message.startswith("waited 2.5 s for the migration lock, held by PostgreSQL backend")
    assert "pid 4321" in message and "`SELECT pg_terminate_backend(4321)`" in message
    assert f"raise {VARIABLE}" in message
    # pg_locks splits the bigint key; the query joins the halves and compares with the key.
    lookup = next(s for s in conn.statements if "pg_locks" in s)
    assert "classid::bigint << 32 | objid::bigint" in lookup and "locktype = 'advisory'" in lookup
    assert len(_waiting_logs(caplog)) == 1


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_a_lock_released_before_the_timeout_is_taken(clock, caplog, dialect):
    conn = FakeConn(dialect, clock, free_at=7)
    _hold(conn, 600)
    assert 7 <= clock.now < 8
    assert len(_waiting_logs(caplog)) == 1
    assert any("acquired the migration lock" in r.getMessage() for r in caplog.records)
    assert any("RELEASE_LOCK" in s or "pg_advisory_unlock" in s for s in conn.statements)


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_a_free_lock_is_taken_without_waiting(clock, caplog, dialect):
    _hold(FakeConn(dialect, clock, free_at=0), 600)
    assert clock.now == 0
    assert _waiting_logs(caplog) == []


@pytest.mark.parametrize("holder", [None, RuntimeError("permission denied for pg_locks")])
@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_the_timeout_error_comes_even_when_the_holder_is_unknown(clock, dialect, holder):
    conn = FakeConn(dialect, clock, free_at=math.inf, holder=holder)
    with pytest.raises(LauncherError) as err:
        _hold(conn, 3)
    message = str(err.value)
    assert "held by an unknown session" in message
    assert "KILL <id>" in message and "pg_terminate_backend(<pid>)" in message
    assert VARIABLE in message


def test_cli_migrate_passes_the_variable_and_exits_2(clock, monkeypatch, tmp_path, caplog):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "MLFLOW_DB_ENGINE": "mysql",
        "MLFLOW_DB_HOST": "db.internal",
        "MLFLOW_DB_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        "MLFLOW_DB_CA_BUNDLE": str(ca),
        VARIABLE: "9",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    conn = FakeConn("mysql", clock, free_at=math.inf, holder=7)
    monkeypatch.setattr(cli, "_credentials", lambda db: Credentials("mlflow", "pw"))
    monkeypatch.setattr(cli, "_connect", lambda db, creds: SimpleNamespace(dispose=lambda: None))
    monkeypatch.setattr(wait, "make_engine", lambda url: _engine(conn))

    def migrate(engine, lock_timeout, then=None, before_change=None):  # the real lock
        assert then is None, "authentication is off here"  # (no mlflow in the dev venv)
        assert before_change is not None and before_change.settings is None  # no instance set
        with schema.migration_lock(engine, lock_timeout):
            raise AssertionError("the lock is held by another session")

    monkeypatch.setattr(schema, "migrate", migrate)
    monkeypatch.setattr(cli, "_setup_logging", lambda: None)  # keep pytest's log handlers
    assert cli.main(["migrate"]) == 2
    assert clock.now == 9
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("waited 9 s for the migration lock")
