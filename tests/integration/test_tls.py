"""TLS to the database: the test servers refuse plain TCP, the launcher's own sessions are
encrypted as the server sees them, a wrong CA fails at once with a clear message, and a MySQL
server that offers no TLS (PyMySQL would fall back to plain text) is refused."""

import time

import itest_launcher as launcher
import pytest

pytestmark = pytest.mark.integration


def test_servers_refuse_connections_without_tls(db_server, new_database):
    target = new_database(db_server)
    # The same login succeeds over verified TLS and is refused without TLS. (MariaDB reports
    # the refusal as "Access denied"; PostgreSQL's pg_hba says "no encryption".)
    with_tls = target.server.tcp_login(target.user, target.password, tls=True)
    assert with_tls.returncode == 0, with_tls.stderr
    without_tls = target.server.tcp_login(target.user, target.password, tls=False)
    assert without_tls.returncode != 0
    refusal = without_tls.stderr.lower()
    assert "access denied" in refusal or "no encryption" in refusal, without_tls.stderr


def test_the_launchers_session_is_encrypted_as_the_server_sees_it(
    db_server, new_database, moto, test_ca, tmp_path
):
    """While `migrate` waits for the lock another session holds, the server reports the cipher
    of the launcher's session (MariaDB Ssl_cipher, PostgreSQL pg_stat_ssl)."""
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(
            moto, test_ca.ca, "unused-bucket", MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS="60"
        ),
        tmp_path / "home",
    )
    with launcher.holding_migration_lock(env) as (holder_session, _):
        migrate = launcher.Server(
            env, tmp_path / "migrate.log", [*launcher.entrypoint(), "migrate"]
        )
        try:
            deadline = time.monotonic() + 90
            while "waiting for the migration lock" not in migrate.logs():
                assert migrate.proc.poll() is None, migrate.logs()
                assert time.monotonic() < deadline, migrate.logs()
                time.sleep(0.2)
            sessions = target.server.session_ciphers(target.user)
        except BaseException:
            migrate.stop()
            raise
    launcher_sessions = {k: v for k, v in sessions.items() if k != holder_session}
    assert launcher_sessions, f"the server shows no session of the launcher: {sessions}"
    assert all(launcher_sessions.values()), f"a launcher session is not encrypted: {sessions}"
    assert migrate.proc.wait(120) == 0, migrate.logs()
    migrate.stop()


def test_a_mysql_server_without_tls_is_refused(
    plain_mariadb, new_database, moto, test_ca, tmp_path
):
    """A server that offers no TLS: the launcher refuses at once, without retrying, and sends no
    query (PyMySQL 1.2 refuses itself; the launcher's Ssl_cipher check stands behind it)."""
    target = new_database(plain_mariadb)
    plain = target.server.tcp_login(target.user, target.password, tls=False)
    assert plain.returncode == 0, f"the stand-in must accept plain text: {plain.stderr}"
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, "unused-bucket", MLFLOW_DB_CONNECT_ATTEMPTS="3"),
        tmp_path / "home",
    )
    result = launcher.run(["migrate"], env, timeout=120)
    assert result.returncode != 0
    assert "the database server offers no TLS; refusing to connect in plain text" in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert "retrying in" not in result.stderr
    schema = "DATABASE()"
    sql = f"SELECT table_name FROM information_schema.tables WHERE table_schema = {schema}"  # noqa: S608
    assert target.server.query(target.name, sql) == [], "migrate sent queries in plain text"
    launcher.assert_no_secret(result.stdout + result.stderr, target.password, "launcher output")


def test_wrong_ca_fails_clearly_without_retrying(db_server, new_database, moto, test_ca, tmp_path):
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(
            moto, test_ca.wrong_ca, "unused-bucket", MLFLOW_DB_CONNECT_ATTEMPTS="5"
        ),
        tmp_path / "home",
    )
    result = launcher.run(["migrate"], env, timeout=120)
    assert result.returncode != 0
    assert "TLS verification of the database server failed" in result.stderr
    assert f"MLFLOW_DB_CA_BUNDLE={test_ca.wrong_ca}" in result.stderr
    assert "retrying in" not in result.stderr
    launcher.assert_no_secret(result.stdout + result.stderr, target.password, "launcher output")
