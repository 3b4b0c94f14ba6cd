"""Retry policy with a fake connect: bounded, exponential backoff, no retry on auth/TLS failure."""

import pytest
from sqlalchemy.exc import OperationalError

from mlflow_launcher.errors import LauncherError
from mlflow_launcher.wait import (
    AuthenticationFailed,
    RetryPolicy,
    TlsVerificationFailed,
    probe,
    wait_for,
)

CA = "/etc/ssl/certs/test-ca.pem"


def _wrapped(orig):
    """What SQLAlchemy raises around a driver error."""
    return OperationalError("SELECT 1", {}, orig)


class MySqlError(Exception):
    """Stands in for MySQLdb.OperationalError: args are (error code, message)."""


class PgError(Exception):
    """Stands in for psycopg2.OperationalError (pgcode is None on connect-time errors)."""

    pgcode = None


class FakeConnect:
    def __init__(self, failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def _run(connect, attempts=5, max_delay=4.0):
    sleeps = []
    wait_for(
        connect,
        RetryPolicy(attempts, max_delay),
        ca_bundle=CA,
        what="database x",
        sleep=sleeps.append,
    )
    return sleeps


REFUSED = _wrapped(MySqlError(2003, "Can't connect to MySQL server (111)"))


def test_backoff_doubles_up_to_the_cap():
    assert RetryPolicy(6, 5.0).delays() == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert RetryPolicy(1, 5.0).delays() == []
    assert RetryPolicy(4, 0.2).delays() == [0.2, 0.2, 0.2]


def test_transient_failures_are_retried_until_success():
    connect = FakeConnect([REFUSED, REFUSED, REFUSED])
    assert _run(connect) == [1.0, 2.0, 4.0]
    assert connect.calls == 4


class Clock:
    """Fake time: sleeping moves it on, and so does each connect (as a timeout would)."""

    def __init__(self, connect_seconds: float = 0.0) -> None:
        self.now, self.connect_seconds, self.sleeps = 0.0, connect_seconds, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_wait_ends_at_its_deadline_with_one_last_try():
    clock = Clock(connect_seconds=2.0)
    calls = []

    def connect():
        calls.append(clock.now)
        clock.now += clock.connect_seconds  # every try runs into its connect timeout
        raise REFUSED

    with pytest.raises(LauncherError) as err:
        wait_for(
            connect,
            RetryPolicy(100, 30.0, deadline=20.0),
            ca_bundle=CA,
            what="database x",
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    # Tries at 0, 3, 7, 13 (2 s each, then 1, 2, 4 s of backoff); the next wait (8 s) is cut
    # to the 5 s left, the last try starts at the deadline, and no other comes.
    assert calls == [0.0, 3.0, 7.0, 13.0, 20.0]
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0]
    assert "not reachable after 5 attempts" in str(err.value)
    assert "MLFLOW_DB_WAIT_SECONDS" in str(err.value)


def test_a_deadline_already_past_still_gets_one_try():
    """Slow secret reads took the whole wait: the database is still tried once, and a database
    that answers is used."""
    connect = FakeConnect([])
    wait_for(
        connect,
        RetryPolicy(10, 1.0, deadline=-5.0),
        ca_bundle=CA,
        what="database x",
        sleep=lambda _s: pytest.fail("no wait after the deadline"),
        clock=lambda: 0.0,
    )
    assert connect.calls == 1


def test_attempts_are_bounded_then_a_clear_error(caplog):
    connect = FakeConnect([REFUSED] * 10)
    sleeps = []
    with pytest.raises(LauncherError) as err:
        wait_for(connect, RetryPolicy(4, 3.0), ca_bundle=CA, what="database x", sleep=sleeps.append)
    assert connect.calls == 4
    assert sleeps == [1.0, 2.0, 3.0]
    assert "not reachable after 4 attempts" in str(err.value)
    assert "MLFLOW_DB_CONNECT_ATTEMPTS" in str(err.value)
    assert "Can't connect to MySQL server" in str(err.value)
    assert len([r for r in caplog.records if "retrying in" in r.getMessage()]) == 3


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(MySqlError(1045, "Access denied for user 'u'@'10.0.0.1'")),
        _wrapped(PgError('FATAL:  password authentication failed for user "u"')),
    ],
)
def test_authentication_failure_is_not_retried(error):
    connect = FakeConnect([error, None])
    sleeps = []
    with pytest.raises(AuthenticationFailed, match="rejected the credentials") as err:
        wait_for(connect, RetryPolicy(10, 1.0), ca_bundle=CA, what="db", sleep=sleeps.append)
    assert connect.calls == 1
    assert sleeps == []
    assert "not retrying" in str(err.value)


def test_pgcode_28p01_is_an_authentication_failure():
    error = PgError("server said no")
    error.pgcode = "28P01"
    with pytest.raises(AuthenticationFailed):
        _run(FakeConnect([_wrapped(error)]))


@pytest.mark.parametrize(
    "message",
    [
        'connection to server at "127.0.0.1", port 5432 failed: SSL error: certificate verify '
        "failed",
        'server certificate for "db.other" does not match host name "db.internal"',
    ],
)
def test_tls_verification_failure_is_not_retried_and_names_the_bundle(message):
    connect = FakeConnect([_wrapped(PgError(message))])
    with pytest.raises(TlsVerificationFailed) as err:
        _run(connect)
    assert connect.calls == 1
    assert f"MLFLOW_DB_CA_BUNDLE={CA}" in str(err.value)


@pytest.mark.parametrize(
    "message",
    [
        # libmariadb's messages as tests/integration/test_tls.py meets them: a wrong CA, and a
        # certificate for another host name.
        "TLS/SSL error: self-signed certificate in certificate chain",
        "TLS/SSL error: Validation of SSL server certificate failed",
        "TLS/SSL error: certificate has expired",
    ],
)
def test_mysql_tls_verification_failure_is_not_retried(message):
    connect = FakeConnect([_wrapped(MySqlError(2026, message))])
    with pytest.raises(TlsVerificationFailed, match="MLFLOW_DB_CA_BUNDLE"):
        _run(connect)
    assert connect.calls == 1


def test_a_mysql_handshake_cut_by_the_network_is_retried():
    """The same error code without a certificate reason: a failover may cut a handshake."""
    connect = FakeConnect([_wrapped(MySqlError(2026, "TLS/SSL error: unexpected eof"))])
    _run(connect)
    assert connect.calls == 2


def test_launcher_errors_from_the_probe_pass_through_unretried():
    connect = FakeConnect([TlsVerificationFailed("the MySQL session is not encrypted")])
    with pytest.raises(TlsVerificationFailed, match="not encrypted"):
        _run(connect)
    assert connect.calls == 1


def test_a_server_without_tls_is_refused_at_once():
    """libmariadb's own refusal (CR_SSL_CONNECTION_ERROR) is final, not "not reachable"."""
    error = MySqlError(2026, "TLS/SSL error: SSL is required, but the server does not support it")
    connect = FakeConnect([_wrapped(error)])
    with pytest.raises(TlsVerificationFailed, match="offers no TLS; refusing to connect"):
        _run(connect)
    assert connect.calls == 1


class _Conn:
    """A MySQL session as a falling-back driver would leave it: no cipher."""

    def __init__(self, cipher: str) -> None:
        self.cipher = cipher

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, statement):
        text = str(statement)
        row = ("Ssl_cipher", self.cipher) if "Ssl_cipher" in text else (1,)
        return type("Result", (), {"first": lambda _self: row})()


class _Engine:
    def __init__(self, cipher: str) -> None:
        self.dialect = type("Dialect", (), {"name": "mysql"})()
        self.cipher = cipher

    def connect(self):
        return _Conn(self.cipher)


def test_a_plain_text_mysql_session_is_refused():
    """Defence in depth behind the driver: a session without a cipher never runs a query."""
    with pytest.raises(TlsVerificationFailed, match="not encrypted"):
        probe(_Engine(cipher=""))
    probe(_Engine(cipher="TLS_AES_256_GCM_SHA384"))
