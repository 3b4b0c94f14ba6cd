"""The server's own database login, as a deploy makes it: the synthesized migration Job
(`migrate` with the master login's secret beside the server's) against MariaDB and PostgreSQL,
the target's login standing in for RDS's master user (its privileges), sign-in on so the auth
database is made too; the server pod's init container (`wait-schema`) waiting for it.

The server's login may then use MLflow's two databases and nothing else of the instance; a
deployment an earlier release migrated as master is handed over; a password changed in the
secret is set by the next migration.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import itest_launcher as launcher
import pytest
from itest_auth import create_auth_secrets
from itest_chart import (
    ServerLogin,
    container_env,
    migration_container,
    pod,
    server_login,
    substitute_endpoints,
    wait_container,
)

pytestmark = pytest.mark.integration

CONFIG_FOR_ENGINE = {"mysql": "default", "postgres": "postgres"}


@dataclass
class Deploy:
    chart: object
    target: object
    login: ServerLogin
    auth_db: str
    moto: object
    bucket: str
    ca: Path
    home: Path
    auth_arns: dict[str, str]

    def env(self, container: dict, name: str, **changes: str) -> dict[str, str]:
        env = substitute_endpoints(
            container_env(self.chart, container),
            self.target,
            self.moto,
            self.ca,
            self.bucket,
            self.auth_arns,
        )
        env |= {"MLFLOW_DB_NAME": self.target.name, "MLFLOW_AUTH_DB_NAME": self.auth_db}
        return launcher.container_env({**env, **changes}, self.home / name)

    def migrate(self, name: str, **changes: str) -> subprocess.CompletedProcess:
        return launcher.run(["migrate"], self.env(migration_container(self.chart), name, **changes))

    def as_server(self, sql: str, database: str | None = None) -> subprocess.CompletedProcess:
        return self.target.server.tcp_login(
            self.login.username,
            self.login.password,
            tls=True,
            sql=sql,
            database=database or self.target.name,
        )


def _deploy(target, chart, moto, test_ca, tmp_path) -> Deploy:
    auth = create_auth_secrets(moto)
    return Deploy(
        chart=chart,
        target=target,
        login=server_login(moto, target),
        auth_db=f"{target.name}_auth",
        moto=moto,
        bucket=moto.create_bucket(),
        ca=test_ca.ca,
        home=tmp_path,
        auth_arns=auth.arns,
    )


@pytest.fixture
def deploy(db_server, synth, new_database, moto, test_ca, tmp_path) -> Deploy:
    chart = synth(CONFIG_FOR_ENGINE[db_server.engine])
    return _deploy(new_database(db_server), chart, moto, test_ca, tmp_path)


# The existing-data example names an existing PostgreSQL instance. No example names an existing
# MySQL one; its migration Job differs from the default's only in the values substituted here.
CONFIG_FOR_EXISTING = {"mysql": "default", "postgres": "existing-data"}


@pytest.fixture
def existing_instance(db_server, synth, new_database, moto, test_ca, tmp_path) -> Deploy:
    """An instance MLflow has not used: the master login (RDS's master user's privileges)
    and none of MLflow's databases."""
    chart = synth(CONFIG_FOR_EXISTING[db_server.engine])
    target = new_database(db_server, create=False)
    return _deploy(target, chart, moto, test_ca, tmp_path)


def _databases(server) -> set[str]:
    if server.engine == "mysql":
        return {row[0] for row in server.query("mysql", "SHOW DATABASES")}
    return {row[0] for row in server.query("postgres", "SELECT datname FROM pg_database")}


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_migration_job_makes_the_servers_login_with_only_mlflows_databases(deploy):
    d, engine = deploy, deploy.target.server.engine
    job = migration_container(d.chart)
    assert set(container_env(d.chart, job)) >= {"MLFLOW_DB_ADMIN_SECRET_ID", "MLFLOW_DB_SECRET_ID"}
    assert wait_container(d.chart)["args"] == ["wait-schema"]
    # The server pod starts with the Job (one apply): its init container waits for the login
    # and the schemas instead of failing.
    waiting = launcher.Server(
        d.env(wait_container(d.chart), "pod", MLFLOW_SCHEMA_WAIT_SECONDS="300"),
        d.home / "wait.log",
        command=[*launcher.entrypoint(), "wait-schema"],
    )
    try:
        deadline = time.monotonic() + 60
        while "not made yet" not in waiting.logs() and time.monotonic() < deadline:
            assert waiting.proc.poll() is None, waiting.logs()
            time.sleep(0.5)
        assert "waiting for the migration Job" in waiting.logs(), waiting.logs()
        output = _ok(d.migrate("job"))
        assert waiting.proc.wait(60) == 0, waiting.logs()
    finally:
        if waiting.proc.poll() is None:
            waiting.stop()
    assert f"database login {d.login.username} has {d.target.name} and {d.auth_db}" in output
    assert f"as {d.target.user} " in output  # the master login makes it ...
    assert f"as {d.login.username} " in output  # ... and the migrations run as the server's
    assert "schemas at head" in waiting.logs()
    for where in (output, waiting.logs()):
        launcher.assert_no_secret(where, d.login.password, "the launcher's log")
        launcher.assert_no_secret(where, d.target.password, "the launcher's log")

    # The login uses MLflow's two databases ...
    _ok(d.as_server("SELECT COUNT(*) FROM experiments"))
    _ok(d.as_server("SELECT COUNT(*) FROM users", database=d.auth_db))
    # ... and nothing else of the instance.
    other = f"other_{secrets.token_hex(4)}"
    d.target.server.create_database(other, f"owner_{secrets.token_hex(4)}", "pw-" + other)
    if engine == "mysql":
        refused = [
            d.as_server("SELECT 1", database=other),
            d.as_server("CREATE DATABASE refused_db"),
            d.as_server("CREATE USER 'refused'@'%' IDENTIFIED BY 'x'"),
            d.as_server("SELECT user FROM mysql.user"),
        ]
        grants = _ok(d.as_server("SHOW GRANTS FOR CURRENT_USER"))
        assert "*.*" not in grants.replace("USAGE ON *.*", ""), grants
        assert "REQUIRE SSL" in grants or "REQUIRE SSL" in _ok(
            d.target.server.tcp_login(
                d.target.user,
                d.target.password,
                tls=True,
                sql=f"SHOW CREATE USER '{d.login.username}'@'%'",
            )
        )
    else:
        # PostgreSQL lets every login connect to a database (CONNECT to PUBLIC); what is in
        # it stays its owner's.
        d.target.server.admin("CREATE TABLE private (v int)", other)
        refused = [
            d.as_server("SELECT * FROM private", database=other),
            d.as_server("CREATE DATABASE refused_db"),
            d.as_server("CREATE ROLE refused"),
        ]
        for database in (d.target.name, d.auth_db):
            owners = _ok(
                d.as_server(
                    "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
                    database=database,
                )
            )
            assert owners.split() == [d.login.username], (database, owners)
    for result in refused:
        assert result.returncode != 0, result.stdout


def test_a_deployment_migrated_as_master_is_handed_over(deploy, tmp_path):
    """Earlier releases migrated as the master login (its tables are the master's); the first
    migration Job hands them to the server's login, and the server then writes them."""
    d = deploy
    earlier = {"MLFLOW_DB_SECRET_ID": d.target.secret_arn, "MLFLOW_DB_ADMIN_SECRET_ID": ""}
    _ok(d.migrate("earlier-release", **earlier))
    if d.target.server.engine == "postgres":
        owners = d.target.server.query(
            d.target.name, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
        assert owners == [[d.target.user]]
    _ok(d.migrate("this-release"))
    _, (_, main) = pod(d.chart)
    server = launcher.Server(d.env(main, "server"), d.home / "server.log")
    try:
        server.wait_healthy(timeout=180)
        admin = json.loads(
            d.moto.client("secretsmanager").get_secret_value(
                SecretId=d.auth_arns["MLFLOW_AUTH_ADMIN_SECRET_ID"]
            )["SecretString"]
        )
        code = (
            "import json, sys\n"
            "from mlflow import MlflowClient\n"
            "c = MlflowClient(sys.argv[1])\n"
            "e = c.create_experiment('handed-over')\n"
            "r = c.create_run(e)\n"
            "c.log_metric(r.info.run_id, 'm', 1.0)\n"
            "print(json.dumps(c.get_run(r.info.run_id).data.metrics))\n"
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "MLFLOW_TRACKING_USERNAME": admin["username"],
            "MLFLOW_TRACKING_PASSWORD": admin["password"],
        }
        assert launcher.mlflow_client(env, server.base_url, code=code) == {"m": 1.0}
    finally:
        server.stop()
    assert "as " + d.login.username in server.logs()


def test_a_password_changed_in_the_secret_is_set_by_the_next_migration(deploy):
    d = deploy
    _ok(d.migrate("first"))
    _ok(d.as_server("SELECT 1"))
    new_password = f"rotated-%'\":@/# -{secrets.token_urlsafe(12)}"
    d.moto.client("secretsmanager").put_secret_value(
        SecretId=d.login.secret_arn,
        SecretString=json.dumps({"username": d.login.username, "password": new_password}),
    )
    old = d.login.password
    _ok(d.migrate("after-rotation"))
    rotated = d.target.server.tcp_login(
        d.login.username, new_password, tls=True, sql="SELECT 1", database=d.target.name
    )
    assert rotated.returncode == 0, rotated.stderr
    stale = d.target.server.tcp_login(
        d.login.username, old, tls=True, sql="SELECT 1", database=d.target.name
    )
    assert stale.returncode != 0


def test_an_existing_instance_gets_mlflows_databases_and_login_from_its_master_login(
    existing_instance,
):
    """database.existing: the migration Job's master login connects to the instance's
    maintenance database (none on MySQL, `postgres`), makes MLflow's two databases and the
    server's login, and the migrations run as that login; a second deploy changes nothing."""
    d = existing_instance
    assert {d.target.name, d.auth_db}.isdisjoint(_databases(d.target.server))
    output = _ok(d.migrate("first-deploy"))
    assert f"database login {d.login.username} has {d.target.name} and {d.auth_db}" in output
    assert {d.target.name, d.auth_db} <= _databases(d.target.server)
    _ok(d.as_server("SELECT COUNT(*) FROM experiments"))
    _ok(d.as_server("SELECT COUNT(*) FROM users", database=d.auth_db))
    _ok(d.migrate("second-deploy"))
    _ok(d.as_server("SELECT COUNT(*) FROM experiments"))
    launcher.assert_no_secret(output, d.target.password, "the launcher's log")
