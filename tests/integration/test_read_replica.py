"""The read replica as the chart runs it: a primary with a real streaming replica (MariaDB,
PostgreSQL), the pod started from a synthesized ConfigMap that names the replica, sign-in on.

Reads are shown to go to the replica by pausing its replay: a write through the server then
succeeds on the primary but stays invisible through the server until replay resumes. Sign-in
checks must not lag like that: a user created while the replica is paused signs in at once.

The primary is also what RDS runs and the other tests' servers are not: binary logging on (RDS
turns it on with automated backups), a master login without SUPER, and the synthesized DB
parameter group applied. MLflow's migrations create triggers, which MySQL then refuses
(error 1419) unless the parameter group allows them.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import itest_launcher as launcher
import pytest
from itest_auth import HOSTILE, create_auth_secrets, send
from itest_chart import container_env, pod, substitute_endpoints
from itest_replication import ReplicatedDb
from itest_servers import RDS_MASTER_PRIVILEGES, free_port, sql_literal

from config import parse_settings
from tests.conftest import resources_of, synthesize

pytestmark = pytest.mark.integration

GET_BY_NAME = "/api/2.0/mlflow/experiments/get-by-name?experiment_name="
CREATE = "/api/2.0/mlflow/experiments/create"


class MasterLogin:
    """The primary's master login and its secret (the fields substitute_endpoints reads)."""

    def __init__(self, pair: ReplicatedDb, moto) -> None:
        suffix = secrets.token_hex(4)
        self.server, self.name, self.user = pair.primary, f"mlflow_{suffix}", f"master_{suffix}"
        self.password = f"db-{HOSTILE}-{secrets.token_urlsafe(8)}"
        if pair.engine == "mysql":
            literal = sql_literal(self.password, backslash_escapes=True)
            pair.primary.admin(
                f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4;"
                f"CREATE USER '{self.user}'@'%' IDENTIFIED BY {literal};"
                f"GRANT {RDS_MASTER_PRIVILEGES} ON *.* TO '{self.user}'@'%' WITH GRANT OPTION;"
            )
        else:
            pair.primary.create_database(self.name, self.user, self.password)
        secret = {"username": self.user, "password": self.password}
        self.secret_arn = moto.create_secret(json.dumps(secret))


def apply_parameter_group(pair: ReplicatedDb, chart) -> None:
    """The synthesized DB parameter group, set on the primary as RDS would. On PostgreSQL its
    one parameter (rds.force_ssl) is RDS's own; the test server's pg_hba refuses plain text."""
    [group] = resources_of(chart.templates["Data"], "AWS::RDS::DBParameterGroup").values()
    parameters = group["Properties"]["Parameters"]
    if pair.engine == "mysql":
        for name, value in parameters.items():
            assert name.isidentifier() and value.isdigit(), (name, value)
            pair.primary.admin(f"SET GLOBAL {name} = {value};")
    else:
        assert parameters == {"rds.force_ssl": "1"}


def _pod_with_replica(pair: ReplicatedDb, moto, tmp_path: Path, name: str):
    """A synthesized deployment with a read replica on `pair`'s engine, its parameter group on
    the primary: (chart, init container, server container, master login, bucket)."""
    settings = parse_settings({"database": {"engine": pair.engine, "read_replica": True}})
    chart = synthesize(f"{name}-{pair.engine}", settings, tmp_path / "synth")
    apply_parameter_group(pair, chart)
    _, (init, main) = pod(chart)
    return chart, init, main, MasterLogin(pair, moto), moto.create_bucket()


def _experiment_id(server: launcher.Server, name: str, login) -> str | None:
    response = send(server.base_url, "GET", GET_BY_NAME + name, login=login)
    if response.status == 404:
        return None
    assert response.status == 200, response
    return json.loads(response.body)["experiment"]["experiment_id"]


def test_reads_go_to_the_replica_and_sign_in_to_the_primary(
    replicated_db: ReplicatedDb, moto, test_ca, tmp_path: Path
) -> None:
    pair = replicated_db
    chart, init, main, login, bucket = _pod_with_replica(pair, moto, tmp_path, "replica")
    auth = create_auth_secrets(moto)
    admin = auth.admin_login()

    def local(container: dict, **changes: str) -> dict[str, str]:
        env = substitute_endpoints(
            container_env(chart, container),
            login,
            moto,
            test_ca.ca,
            bucket,
            auth=auth.arns,
            read_port=pair.replica.port,
        )
        env |= {"MLFLOW_DB_NAME": login.name, **changes}
        return launcher.container_env(env, tmp_path / "home")

    # A fresh migration the paused replica has not replayed: the server waits for it.
    pair.wait_caught_up()
    pair.pause()
    migrate = launcher.run(init["args"], local(init))
    assert migrate.returncode == 0, migrate.stderr
    server = launcher.Server(local(main), tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 60
        while "replication lag" not in server.logs():
            assert time.monotonic() < deadline and server.proc.poll() is None, server.logs()
            time.sleep(0.5)
        pair.resume()
        server.wait_healthy(timeout=120)
        assert f"read replica 127.0.0.1:{pair.replica.port}" in server.logs()

        # Caught up: what was written is read back through the replica.
        created = send(server.base_url, "POST", CREATE, login=admin, json_body={"name": "one"})
        assert created.status == 200, created
        pair.wait_caught_up()
        assert _experiment_id(server, "one", admin) is not None

        # Replay paused: a write still lands on the primary, but reads miss it.
        pair.pause()
        created = send(server.base_url, "POST", CREATE, login=admin, json_body={"name": "two"})
        assert created.status == 200, created
        two = json.loads(created.body)["experiment_id"]
        assert pair.primary.query(
            login.name,
            f"SELECT name FROM experiments WHERE experiment_id = {int(two)}",  # noqa: S608
        ) == [["two"]]
        assert _experiment_id(server, "two", admin) is None

        # Sign-in reads the primary: a user made now signs in now.
        user = ("reader", f"reader-{secrets.token_urlsafe(16)}")
        made = send(
            server.base_url,
            "POST",
            "/api/2.0/mlflow/users/create",
            login=admin,
            json_body={"username": user[0], "password": user[1]},
        )
        assert made.status == 200, made
        assert send(server.base_url, "GET", GET_BY_NAME + "one", login=user).status == 200
        wrong = ("reader", "wrong")
        assert send(server.base_url, "GET", GET_BY_NAME + "one", login=wrong).status == 401

        pair.resume()
        pair.wait_caught_up()
        assert _experiment_id(server, "two", admin) == two

        # The replica's URI carries the password too: never in a process's argv.
        for pid in server.process_tree():
            cmdline = Path(f"/proc/{pid}/cmdline")
            if cmdline.exists():
                launcher.assert_no_secret(
                    cmdline.read_bytes().decode(errors="replace"), login.password, "argv"
                )
    finally:
        server.stop()
    launcher.assert_no_secret(server.logs(), login.password, "the server's logs")


def test_an_unreachable_replica_stops_the_server_with_its_address(
    replicated_db: ReplicatedDb, moto, test_ca, tmp_path: Path
) -> None:
    pair = replicated_db
    chart, init, main, login, bucket = _pod_with_replica(pair, moto, tmp_path, "replica-gone")
    nowhere = free_port()

    def local(container: dict) -> dict[str, str]:
        env = substitute_endpoints(
            container_env(chart, container), login, moto, test_ca.ca, bucket, read_port=nowhere
        )
        env |= {
            "MLFLOW_DB_NAME": login.name,
            "MLFLOW_DB_CONNECT_ATTEMPTS": "3",
            "MLFLOW_DB_CONNECT_BACKOFF_MAX_SECONDS": "0.2",
        }
        return launcher.container_env(env, tmp_path / "home")

    assert launcher.run(init["args"], local(init)).returncode == 0
    result = launcher.run(main["args"], local(main), timeout=120)
    assert result.returncode != 0
    assert f"read replica 127.0.0.1:{nowhere}/{login.name} not ready after 3 attempts" in (
        result.stderr
    )
    launcher.assert_no_secret(result.stderr + result.stdout, login.password, "the logs")
