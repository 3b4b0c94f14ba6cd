"""Every wait is bounded, on the synthesized pod with real servers: a database whose packets
are dropped (a failover, a lost route: no reset ever comes) fails a request with an error
instead of holding the worker, and the server serves again once the network is back, without a
restart; at start, an unreachable database, Secrets Manager or STS ends `serve` with the
launcher's own message before the startup probe's budget runs out (the kubelet would restart the
container then: here, a subprocess timeout of that budget stands in for it).

Packets are dropped by an nftables rule on a relay's port (itest_servers.Relay): the kernel
then neither delivers nor answers them, as on a real network, so TCP keepalives and
TCP_USER_TIMEOUT are exercised, not only timeouts of the driver's own reads.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import itest_launcher as launcher
import itest_template as template
import pytest
from itest_auth import DB_NAME_ENV, basic, create_auth_secrets, new_login
from itest_chart import container_env, pod, substitute_endpoints
from itest_servers import Relay

pytestmark = pytest.mark.integration

CONFIG_FOR_ENGINE = {"mysql": "default", "postgres": "postgres"}
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=100"
PATIENCE = 600
"""This test's own client waits this long where the network is sound: far beyond any bound the
pod has, so a request that would hang shows as a failed test rather than a slow one."""
MARGIN_SECONDS = 30
"""What a loaded machine may add to a bound before its effect shows (a process's start, a
worker's turn): a bound missed by more than this fails the test."""
# The bounds that fire are waited out at shorter values of the same variables the chart sets
# (its own values are asserted first, and tests/unit/launcher/test_start_budget.py checks them
# against the startup probe): the mechanism is the same, the test is minutes shorter.
SHORT_DB_WAIT_SECONDS = 10
"""MLFLOW_DB_WAIT_SECONDS here; the chart's is 90."""
SHORT_STATEMENT_TIMEOUT_SECONDS = 10
"""MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS here; the chart's is 60."""


def _request(
    server: launcher.Server, path: str, login, body: dict | None = None, patience=PATIENCE
):
    """(status, JSON body) of a request as the admin; the server's own answer, error or not;
    (None, why) when none came within `patience` seconds."""
    request = urllib.request.Request(  # noqa: S310 - http to loopback only
        f"{server.base_url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"Authorization": basic(*login), "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=patience) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except TimeoutError:
        return None, f"no answer within {patience} s"


def _pod_env(synth, engine, db_server, moto, test_ca, home: Path, db_port: int | None = None):
    """The chart's init and server containers' environments as the pod gets them (sign-in on,
    as by default), AWS made local, the database reached at `db_port`."""
    chart = synth(CONFIG_FOR_ENGINE[engine])
    _, (init, main) = pod(chart)
    login = new_login(db_server, moto, f"db-{secrets.token_urlsafe(16)}")
    auth = create_auth_secrets(moto)
    bucket = moto.create_bucket()

    def local(container: dict) -> dict[str, str]:
        env = substitute_endpoints(
            container_env(chart, container), login, moto, test_ca.ca, bucket, auth.arns
        )
        env |= {"MLFLOW_DB_NAME": login.name, DB_NAME_ENV: f"{login.name}_auth"}
        env.pop("MLFLOW_DB_INSTANCE_ID", None)  # an empty database: no snapshot to take
        if db_port is not None:
            env["MLFLOW_DB_PORT"] = str(db_port)
        return launcher.container_env(env, home)

    return chart, local(init), local(main), auth


def _startup_budget(chart) -> float:
    """How long the kubelet lets the server container start (its startup probe)."""
    _, (_, main) = pod(chart)
    probe = main["startupProbe"]
    return (probe["failureThreshold"] - 1) * probe["periodSeconds"]


def test_a_silent_database_fails_requests_within_a_bound_then_serves_again(
    db_server, synth, moto, test_ca, tmp_path
):
    with Relay(db_server.port) as relay:
        _, init_env, main_env, auth = _pod_env(
            synth, db_server.engine, db_server, moto, test_ca, tmp_path / "home", relay.port
        )
        # The bounds under test are the chart's own, the statement timeout shortened here.
        assert main_env["MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS"] == "60"
        assert main_env["MLFLOW_DB_NETWORK_TIMEOUT_SECONDS"] == "10"
        main_env["MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS"] = str(SHORT_STATEMENT_TIMEOUT_SECONDS)
        # A silent connection is given up after the statement timeout (MySQL: libmariadb's read
        # timeout) or the network timeout (PostgreSQL: TCP_USER_TIMEOUT), then a new
        # connection's connect timeout runs out: the server answers within that, or the
        # variables are not what bounds the request.
        bound = max(
            SHORT_STATEMENT_TIMEOUT_SECONDS, int(main_env["MLFLOW_DB_NETWORK_TIMEOUT_SECONDS"])
        )
        bound += int(main_env["MLFLOW_DB_CONNECT_TIMEOUT_SECONDS"])
        template.migrate(db_server, ["migrate"], init_env)
        server = launcher.Server(main_env, tmp_path / "server.log")
        try:
            server.wait_healthy(timeout=180)
            login = auth.admin_login()
            status, created = _request(
                server, "/api/2.0/mlflow/experiments/create", login, {"name": "before"}
            )
            assert status == 200, created
            pid = server.proc.pid

            with relay.silenced():
                status, body = _request(server, SEARCH, login, patience=bound + MARGIN_SECONDS)
                # The server's own error, within its bounds: not an answer, not a hang.
                assert status is not None and status >= 500, (status, body)
                health = urllib.request.urlopen(f"{server.base_url}/health", timeout=30)  # noqa: S310
                assert health.status == 200  # why a green probe proves nothing here

            status, found = _request(server, SEARCH, login)
            assert status == 200, found
            names = [e["name"] for e in found["experiments"]]
            assert "before" in names, names
            assert server.proc.pid == pid and server.proc.poll() is None  # never restarted
        finally:
            server.stop()
    launcher.assert_no_secret(server.logs(), auth.admin_password, "the server's log")


def test_connections_the_database_closed_are_replaced_without_a_failed_request(
    db_server, synth, moto, test_ca, tmp_path
):
    """The database closes every open connection (a restart, a failover: TCP ends, without
    TLS's close_notify): the next signed-in request is served on new ones. The sign-in check
    reads the database on every request here (auth.sign_in_cache_seconds 0), so both pools,
    the auth store's and the tracking store's, meet a closed connection first. On MySQL,
    libmariadb reports that end as a TLS error (2026), which SQLAlchemy alone does not count as
    a lost connection: the sign-in check then failed (500, or MLflow's 401, for a valid login)
    and the search 503 (mlflow_launcher/lost_connections.py). While the database does not
    answer at all, the sign-in check's request gets the 503 a client retries, not a 401 (the
    guard's)."""
    with Relay(db_server.port) as relay:
        _, init_env, main_env, auth = _pod_env(
            synth, db_server.engine, db_server, moto, test_ca, tmp_path / "home", relay.port
        )
        main_env["MLFLOW_AUTH_CACHE_SECONDS"] = "0"
        main_env["MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS"] = str(SHORT_STATEMENT_TIMEOUT_SECONDS)
        template.migrate(db_server, ["migrate"], init_env)
        server = launcher.Server(main_env, tmp_path / "server.log")
        try:
            server.wait_healthy(timeout=180)
            login = auth.admin_login()
            for name in ("before", "after"):
                status, created = _request(
                    server, "/api/2.0/mlflow/experiments/create", login, {"name": name}
                )
                assert status == 200, (name, created)
                relay.close_open()
                status, found = _request(server, SEARCH, login)
                assert status == 200, (name, found)
            assert {"before", "after"} <= {e["name"] for e in found["experiments"]}
            with relay.silenced():
                status, body = _request(server, SEARCH, login, patience=PATIENCE)
            assert status == 503, body
            assert "users' database" in body and "TEMPORARILY_UNAVAILABLE" in body, body
        finally:
            server.stop()


def _last_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if " mlflow-launcher ERROR " in line]
    assert errors, stderr
    return errors[-1]


def test_an_unreachable_database_at_start_ends_with_the_launchers_message(
    mariadb, synth, moto, test_ca, tmp_path
):
    with Relay(mariadb.port) as relay, relay.silenced():
        chart, _, main_env, _ = _pod_env(
            synth, "mysql", mariadb, moto, test_ca, tmp_path / "home", relay.port
        )
        # The chart's wait, shortened here: the startup budget shrinks by as much. Unreachable,
        # the launcher never gets to its three schema checks (a connection attempt each): its
        # message is due within the budget without them, so a wait of the chart's length (the
        # variable not read) fails here too.
        assert main_env["MLFLOW_DB_WAIT_SECONDS"] == "90"
        main_env["MLFLOW_DB_WAIT_SECONDS"] = str(SHORT_DB_WAIT_SECONDS)
        attempt = sum(
            int(main_env[f"MLFLOW_DB_{bound}_TIMEOUT_SECONDS"]) for bound in ("CONNECT", "NETWORK")
        )
        budget = _startup_budget(chart) - (90 - SHORT_DB_WAIT_SECONDS) - 3 * attempt
        result = launcher.run(["serve"], main_env, timeout=budget)
    assert result.returncode != 0
    error = _last_error(result.stderr)
    assert f"database 127.0.0.1:{relay.port}/" in error and "not reachable after" in error
    assert "MLFLOW_DB_WAIT_SECONDS" in error


def test_an_unreachable_secrets_manager_ends_serve_with_the_launchers_message(
    mariadb, synth, moto, test_ca, tmp_path
):
    moto_port = int(moto.endpoint.rsplit(":", 1)[1])
    chart, _, main_env, _ = _pod_env(synth, "mysql", mariadb, moto, test_ca, tmp_path / "home")
    assert main_env["AWS_RETRY_MODE"] == "standard" and main_env["AWS_MAX_ATTEMPTS"] == "5"
    with Relay(moto_port) as relay, relay.silenced():
        main_env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = f"http://127.0.0.1:{relay.port}"
        result = launcher.run(["serve"], main_env, timeout=_startup_budget(chart))
    assert result.returncode != 0
    error = _last_error(result.stderr)
    assert f"cannot reach Secrets Manager to read {main_env['MLFLOW_DB_SECRET_ID']}" in error
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sts", ["answering", "silent"])
def test_irsa_credentials_come_from_sts_or_its_failure_is_named(
    sts, mariadb, synth, moto, test_ca, tmp_path
):
    """IRSA as EKS sets it up (a role and a web-identity token file, no keys): the launcher's
    STS call is bounded like its Secrets Manager calls, and a failure names STS and the role."""
    moto_port = int(moto.endpoint.rsplit(":", 1)[1])
    chart, init_env, _, _ = _pod_env(synth, "mysql", mariadb, moto, test_ca, tmp_path / "home")
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln")
    role = "arn:aws:iam::123456789012:role/mlflow-server"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        del init_env[key]
    init_env |= {"AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token)}
    with Relay(moto_port) as relay:
        init_env["AWS_ENDPOINT_URL_STS"] = f"http://127.0.0.1:{relay.port}"
        if sts == "answering":
            result = launcher.run(["migrate"], init_env)
            assert result.returncode == 0, result.stderr
            return
        with relay.silenced():
            result = launcher.run(["migrate"], init_env, timeout=_startup_budget(chart))
    assert result.returncode != 0
    error = _last_error(result.stderr)
    assert f"cannot reach STS (AssumeRoleWithWebIdentity for role {role})" in error
    assert init_env["MLFLOW_DB_SECRET_ID"] in error
