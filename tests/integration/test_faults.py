"""Faults: database down (bounded retries, backoff, clear error), database coming up during the
retries, wrong password (one error, no retry storm, no password in the logs), secret missing or
malformed, and passwords full of URL/SQL metacharacters and non-ASCII against the real servers."""

from __future__ import annotations

import json
import re
import time

import itest_launcher as launcher
import pytest
from itest_servers import LateEndpoint, free_port

pytestmark = pytest.mark.integration

PASSWORDS = [
    "@:/?#[]%&+=' \"\\ all-together",
    "ünïcødé-пароль-密码-🔑",
    " leading and trailing space %41%40 ",
]


def _env(target, moto, test_ca, tmp_path, **extra):
    return launcher.container_env(
        target.contract_env(moto, test_ca.ca, "unused-bucket", **extra), tmp_path / "home"
    )


def test_database_down_bounded_retries_then_clear_error(
    db_server, new_database, moto, test_ca, tmp_path
):
    target = new_database(db_server)
    env = _env(
        target,
        moto,
        test_ca,
        tmp_path,
        MLFLOW_DB_PORT=str(free_port()),  # nothing listens there
        MLFLOW_DB_CONNECT_ATTEMPTS="4",
        MLFLOW_DB_CONNECT_BACKOFF_MAX_SECONDS="2",
    )
    started = time.monotonic()
    result = launcher.run(["migrate"], env, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    waits = [float(s) for s in re.findall(r"retrying in ([\d.]+) s", result.stderr)]
    assert waits == [1.0, 2.0, 2.0], result.stderr  # doubling, capped by the setting
    assert re.findall(r"attempt (\d)/4", result.stderr) == ["1", "2", "3"]
    assert "not reachable after 4 attempts" in result.stderr
    assert elapsed < 60
    launcher.assert_no_secret(result.stderr, target.password, "launcher output")


def test_database_coming_up_during_retries(db_server, new_database, moto, test_ca, tmp_path):
    target = new_database(db_server)
    with LateEndpoint(db_server.port, delay=2.5) as late:
        env = _env(
            target,
            moto,
            test_ca,
            tmp_path,
            MLFLOW_DB_PORT=str(late.port),
            MLFLOW_DB_CONNECT_ATTEMPTS="8",
            MLFLOW_DB_CONNECT_BACKOFF_MAX_SECONDS="2",
        )
        result = launcher.run(["migrate"], env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "retrying in" in result.stderr
    assert re.search(r"reachable after \d attempts", result.stderr)
    assert "migrated schema from empty to head" in result.stderr


def test_wrong_password_one_clear_error_no_retry_storm(
    db_server, new_database, moto, test_ca, tmp_path
):
    target = new_database(db_server)
    wrong = "Wrong-Passw0rd-that-must-not-leak"
    bad_secret = moto.create_secret(json.dumps({"username": target.user, "password": wrong}))
    before = _failed_logins(db_server, target.user)
    env = _env(target, moto, test_ca, tmp_path, MLFLOW_DB_SECRET_ID=bad_secret)
    result = launcher.run(["migrate"], env, timeout=120)
    assert result.returncode != 0
    assert "database rejected the credentials from the secret (not retrying)" in result.stderr
    assert "retrying in" not in result.stderr
    assert result.stderr.count(" ERROR ") == 1
    assert _failed_logins(db_server, target.user) - before == 1  # the server saw one attempt
    launcher.assert_no_secret(result.stdout + result.stderr, wrong, "launcher output")


def _failed_logins(server, user: str) -> int:
    if server.engine == "mysql":
        rows = server.query("mysql", "SHOW GLOBAL STATUS LIKE 'Access_denied_errors'")
        return int(rows[0][1])
    log = (server.base / "postgres.log").read_text(errors="replace")
    return log.count(f'password authentication failed for user "{user}"')


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (None, "does not exist (check MLFLOW_DB_SECRET_ID and the region)"),
        ("this is { not json", "is not valid JSON"),
        (json.dumps({"username": "someone"}), "lacks non-empty string key(s): password"),
    ],
    ids=["missing", "not-json", "no-password"],
)
def test_secret_missing_or_malformed(
    mariadb, new_database, moto, test_ca, tmp_path, secret, expected
):
    target = new_database(mariadb)
    secret_id = (
        moto.create_secret(secret)
        if secret is not None
        else target.secret_arn.rsplit(":", 1)[0] + ":does-not-exist-AbCdEf"
    )
    env = _env(target, moto, test_ca, tmp_path, MLFLOW_DB_SECRET_ID=secret_id)
    result = launcher.run(["migrate"], env, timeout=120)
    assert result.returncode != 0
    assert expected in result.stderr
    assert secret_id in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("password", PASSWORDS, ids=["metacharacters", "non-ascii", "spaces"])
def test_nasty_passwords_work(db_server, new_database, moto, test_ca, tmp_path, password):
    target = new_database(db_server, password=password)
    result = launcher.run(["migrate"], _env(target, moto, test_ca, tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "migrated schema from empty to head" in result.stderr
    launcher.assert_no_secret(result.stdout + result.stderr, password, "launcher output")
