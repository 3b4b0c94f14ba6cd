"""TLS to the database: the test servers refuse plain TCP, the launcher verifies the test CA
(certificate and host name), and a wrong CA fails at once with a clear message."""

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


def test_launcher_connects_verifying_the_test_ca(db_server, new_database, moto, test_ca, tmp_path):
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, "unused-bucket"), tmp_path / "home"
    )
    result = launcher.run(["migrate"], env)
    assert result.returncode == 0, result.stderr
    assert f"TLS verified against {test_ca.ca}" in result.stderr


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
