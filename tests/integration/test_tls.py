"""TLS to the database: the test servers refuse plain TCP, the launcher's own sessions are
encrypted as the server sees them, a wrong CA or a certificate for another host name fails at
once with a clear message, and a MySQL server that offers no TLS is refused."""

import json
import os
import time

import itest_launcher as launcher
import pytest
from itest_servers import require_binary

pytestmark = pytest.mark.integration


def _env(target, moto, ca, tmp_path, **extra: str) -> dict[str, str]:
    """The launcher's environment for `target`, TLS verified against `ca`; no bucket is used."""
    return launcher.container_env(
        target.contract_env(moto, ca, "unused-bucket", **extra), tmp_path / "home"
    )


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
    env = _env(target, moto, test_ca.ca, tmp_path, MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS="60")
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
    query (libmariadb refuses itself under VERIFY_IDENTITY; the launcher's Ssl_cipher check
    stands behind it)."""
    target = new_database(plain_mariadb)
    plain = target.server.tcp_login(target.user, target.password, tls=False)
    assert plain.returncode == 0, f"the stand-in must accept plain text: {plain.stderr}"
    env = _env(target, moto, test_ca.ca, tmp_path, MLFLOW_DB_CONNECT_ATTEMPTS="3")
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
    env = _env(target, moto, test_ca.wrong_ca, tmp_path, MLFLOW_DB_CONNECT_ATTEMPTS="5")
    result = launcher.run(["migrate"], env, timeout=120)
    assert result.returncode != 0
    assert "TLS verification of the database server failed" in result.stderr
    assert f"MLFLOW_DB_CA_BUNDLE={test_ca.wrong_ca}" in result.stderr
    assert "retrying in" not in result.stderr
    launcher.assert_no_secret(result.stdout + result.stderr, target.password, "launcher output")


OTHER_HOST = "db.not-in-the-certificate.test"


def test_a_certificate_for_another_host_name_fails_clearly_without_retrying(
    db_server, new_database, moto, test_ca, tmp_path
):
    """The server's certificate is valid (the right CA) but names 127.0.0.1 and localhost, and
    the launcher is given another name for the same address: the host name check must refuse
    it, as it refuses an endpoint whose DNS was pointed elsewhere. The name resolves through an
    /etc/hosts bind-mounted in a mount namespace of the launcher's own (root, as in CI)."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 {OTHER_HOST}\n")
    target = new_database(db_server)
    env = _env(
        target,
        moto,
        test_ca.ca,
        tmp_path,
        MLFLOW_DB_HOST=OTHER_HOST,
        MLFLOW_DB_CONNECT_ATTEMPTS="5",
    )
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    namespaced = [require_binary("unshare"), "--mount", "sh", "-c", script, str(hosts)]
    result = launcher.run(["migrate"], env, timeout=120, wrapper=namespaced)
    assert result.returncode != 0
    assert "TLS verification of the database server failed" in result.stderr, result.stderr
    assert "retrying in" not in result.stderr
    launcher.assert_no_secret(result.stdout + result.stderr, target.password, "launcher output")


_LOAD_LOCAL = """
import json, os, sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from mlflow_launcher import dburl

port, user, name, ca, path = sys.argv[1:]


def load(extra):
    # The launcher's driver and TLS query, through the URI string MLflow parses back.
    url = URL.create(
        dburl.DRIVERS["mysql"], username=user, password=os.environ["DB_PASSWORD"],
        host="127.0.0.1", port=int(port), database=name,
        query=dburl.tls_query("mysql", ca) | extra,
    )
    engine = create_engine(make_url(dburl.uri_for_mlflow(url)))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS copied (line TEXT)"))
            conn.execute(text(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE copied"))
            return conn.execute(text("SELECT COUNT(*) FROM copied")).scalar()
    except Exception as exc:
        return str(getattr(exc, "orig", exc))
    finally:
        engine.dispose()


print(json.dumps({"launcher": load({}), "local_infile_on": load({"local_infile": "1"})}))
"""


def test_the_database_server_cannot_read_the_pods_files(mariadb, new_database, test_ca, tmp_path):
    """LOAD DATA LOCAL makes the client send the server a file of the server's choosing. The
    launcher's URL turns it off in the client: the same statement with it on copies the file,
    so the refusal is the client's, not the test server's."""
    target = new_database(mariadb)
    secret_file = tmp_path / "pod-file.txt"
    secret_file.write_text("a line the server must not get\n")
    args = [str(mariadb.port), target.user, target.name, str(test_ca.ca), str(secret_file)]
    env = {**os.environ, "DB_PASSWORD": target.password}
    result = launcher.image_python("-c", _LOAD_LOCAL, *args, env=env, timeout=120)
    report = json.loads(result.stdout)
    assert report["local_infile_on"] == 1, report
    assert report["launcher"] != 1 and "not allowed" in str(report["launcher"]).lower(), report
