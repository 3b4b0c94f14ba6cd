"""The read replica as the chart runs it: a primary with a real streaming replica (MariaDB,
PostgreSQL), the pod started from a synthesized ConfigMap that names the replica, sign-in on.

Searches are shown to go to the replica by pausing its replay: a write through the server
then succeeds on the primary but stays out of searches until replay resumes. Nothing else may
lag like that: a user created while the replica is paused signs in at once, and a run (logged
model, model version, MCP server) created a moment ago can at once be changed by its owner,
refused to another user (permission checks), and read back by MLflow's client.

The primary is also what RDS runs and the other tests' servers are not: binary logging on (RDS
turns it on with automated backups), a master login without SUPER, and the synthesized DB
parameter group applied. MLflow's migrations create triggers, which MySQL then refuses
(error 1419) unless the parameter group allows them.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import itest_launcher as launcher
import itest_template
import pytest
from itest_auth import (
    DB_NAME_ENV,
    HOSTILE,
    AuthSecrets,
    client_env,
    create_auth_secrets,
    send,
)
from itest_chart import container_env, pod, substitute_endpoints
from itest_replication import ReplicatedDb
from itest_servers import RDS_MASTER_PRIVILEGES, free_port, sql_literal

from config import parse_settings
from tests.conftest import resources_of, synthesize

pytestmark = pytest.mark.integration

GET_BY_NAME = "/api/2.0/mlflow/experiments/get-by-name?experiment_name="
SEARCH = "/api/2.0/mlflow/experiments/search"
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


@dataclass
class ReplicaPod:
    """A synthesized deployment with a read replica on `pair`'s engine, its parameter group on
    the primary, and its master login and bucket."""

    pair: ReplicatedDb
    chart: object
    init: dict
    main: dict
    login: MasterLogin
    bucket: str
    moto: object
    ca: Path
    home: Path

    def env(
        self,
        container: dict,
        *,
        auth: AuthSecrets | None = None,
        read_port: int | None = None,
        **changes: str,
    ) -> dict[str, str]:
        """`container`'s environment made local, signing in with `auth`'s secrets (without
        them, as with `auth.enabled: false`), the replica at `read_port` (default: the pair's)."""
        env = substitute_endpoints(
            container_env(self.chart, container),
            self.login,
            self.moto,
            self.ca,
            self.bucket,
            auth=auth.arns if auth else None,
            read_port=read_port or self.pair.replica.port,
        )
        env |= {"MLFLOW_DB_NAME": self.login.name}
        if auth:  # its own users: the session's pair serves every test
            env[DB_NAME_ENV] = f"{self.login.name}_auth"
        return launcher.container_env({**env, **changes}, self.home)


def _pod_with_replica(pair: ReplicatedDb, moto, ca: Path, tmp_path: Path, name: str) -> ReplicaPod:
    settings = parse_settings({"database": {"engine": pair.engine, "read_replica": True}})
    chart = synthesize(f"{name}-{pair.engine}", settings, tmp_path / "synth")
    apply_parameter_group(pair, chart)
    _, (init, main) = pod(chart)
    login, bucket = MasterLogin(pair, moto), moto.create_bucket()
    return ReplicaPod(pair, chart, init, main, login, bucket, moto, ca, tmp_path / "home")


def _searched_experiment_id(server: launcher.Server, name: str, login) -> str | None:
    body = {"filter": f"name = '{name}'", "max_results": 1}
    response = send(server.base_url, "POST", SEARCH, login=login, json_body=body)
    assert response.status == 200, response
    found = json.loads(response.body).get("experiments", [])
    return found[0]["experiment_id"] if found else None


def test_searches_go_to_the_replica_and_sign_in_to_the_primary(
    replicated_db: ReplicatedDb, moto, test_ca, tmp_path: Path
) -> None:
    pair = replicated_db
    deployment = _pod_with_replica(pair, moto, test_ca.ca, tmp_path, "replica")
    login = deployment.login
    auth = create_auth_secrets(moto)
    admin = auth.admin_login()

    # A fresh migration the paused replica has not replayed: the server waits for it.
    pair.wait_caught_up()
    pair.pause()
    migrate = launcher.run(deployment.init["args"], deployment.env(deployment.init, auth=auth))
    assert migrate.returncode == 0, migrate.stderr
    server = launcher.Server(deployment.env(deployment.main, auth=auth), tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 60
        while "replication lag" not in server.logs():
            assert time.monotonic() < deadline and server.proc.poll() is None, server.logs()
            time.sleep(0.5)
        pair.resume()
        server.wait_healthy(timeout=120)
        assert f"read replica 127.0.0.1:{pair.replica.port}" in server.logs()

        # Caught up: a search (which reads the replica) finds what was written.
        created = send(server.base_url, "POST", CREATE, login=admin, json_body={"name": "one"})
        assert created.status == 200, created
        pair.wait_caught_up()
        assert _searched_experiment_id(server, "one", admin) is not None

        # Replay paused: a write still lands on the primary, but searches miss it.
        pair.pause()
        created = send(server.base_url, "POST", CREATE, login=admin, json_body={"name": "two"})
        assert created.status == 200, created
        two = json.loads(created.body)["experiment_id"]
        assert pair.primary.query(
            login.name,
            f"SELECT name FROM experiments WHERE experiment_id = {int(two)}",  # noqa: S608
        ) == [["two"]]
        assert _searched_experiment_id(server, "two", admin) is None

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
        assert _searched_experiment_id(server, "two", admin) == two

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
    deployment = _pod_with_replica(replicated_db, moto, test_ca.ca, tmp_path, "replica-gone")
    login = deployment.login
    nowhere = free_port()

    def local(container: dict) -> dict[str, str]:
        return deployment.env(
            container,
            read_port=nowhere,
            MLFLOW_DB_CONNECT_ATTEMPTS="3",
            MLFLOW_DB_CONNECT_BACKOFF_MAX_SECONDS="0.2",
        )

    assert launcher.run(deployment.init["args"], local(deployment.init)).returncode == 0
    result = launcher.run(deployment.main["args"], local(deployment.main), timeout=120)
    assert result.returncode != 0
    assert f"read replica 127.0.0.1:{nowhere}/{login.name} not ready after 3 attempts" in (
        result.stderr
    )
    launcher.assert_no_secret(result.stderr + result.stdout, login.password, "the logs")


_LAGGING_CLIENT = r"""
# The real MLflow client on a server with sign-in (logins in the environment: an admin, and two
# users the admin adds, default permission READ) or without. `setup`: the users, and the owner's
# experiment (which grants the owner MANAGE on it). `write`, with the replica's replay paused:
# the owner creates and at once changes a run, a logged model, a registered model version, an
# MCP server (one of MLflow's FastAPI routes) and another experiment; the other user tries to
# change them. `read`, once replay has resumed: the changes, read back.
import json, os, sys, tempfile
from pathlib import Path
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, LoggedModelOutput, Metric, Param, RunTag
from mlflow.server import get_app_client

uri, step, name = sys.argv[1], sys.argv[2], sys.argv[3]
LOGINS = {
    who: {k[len(who) + 1:]: v for k, v in os.environ.items() if k.startswith(who + "_MLFLOW_")}
    for who in ("ADMIN", "OWNER", "OTHER")
}
NOTES = Path(tempfile.mkdtemp()) / "notes.txt"
NOTES.write_text("written while the replica lagged")
client = MlflowClient(uri)
out = {"failed": {}}


def as_(who):
    os.environ.update(LOGINS[who])


def attempt(label, call):
    try:
        return call()
    except Exception as e:
        out["failed"][label] = f"{type(e).__name__}: {e}"[:600]


def create_and_change(experiment_id):
    ids = out["ids"] = {"experiment": experiment_id}
    run = attempt("create_run", lambda: client.create_run(experiment_id))
    run_id = ids["run"] = run and run.info.run_id
    for label, call in [
        ("log_param", lambda: client.log_param(run_id, "alpha", "0.1")),
        ("log_metric", lambda: client.log_metric(run_id, "loss", 0.5)),
        ("set_tag", lambda: client.set_tag(run_id, "stage", "lagging")),
        ("log_batch", lambda: client.log_batch(
            run_id, [Metric("loss", 0.25, 0, 1)], [Param("beta", "2")], [RunTag("batch", "yes")])),
        ("log_inputs", lambda: client.log_inputs(
            run_id, [DatasetInput(Dataset("train", "d1", "local", "file:///train"))])),
        ("log_artifact", lambda: client.log_artifact(run_id, str(NOTES))),
    ]:
        attempt(label, call)
    model = attempt("create_logged_model",
                    lambda: client.create_logged_model(experiment_id, source_run_id=run_id))
    model_id = ids["model"] = model and model.model_id
    for label, call in [
        ("log_metric with model", lambda: client.log_metric(run_id, "acc", 0.9, model_id=model_id)),
        ("log_outputs", lambda: client.log_outputs(run_id, [LoggedModelOutput(model_id, 0)])),
        ("set_logged_model_tags", lambda: client.set_logged_model_tags(model_id, {"ok": "yes"})),
        ("finalize_logged_model", lambda: client.finalize_logged_model(model_id, "READY")),
        ("set_terminated", lambda: client.set_terminated(run_id)),
        ("create_registered_model", lambda: client.create_registered_model(name)),
    ]:
        attempt(label, call)
    created = attempt("create_model_version", lambda: client.create_model_version(
        name, f"runs:/{run_id}/model", run_id=run_id))
    version = ids["version"] = created and created.version
    for label, call in [
        ("update_model_version",
            lambda: client.update_model_version(name, version, description="lagging")),
        ("set_model_version_tag",
            lambda: client.set_model_version_tag(name, version, "checked", "yes")),
        ("set_registered_model_alias",
            lambda: client.set_registered_model_alias(name, "champion", version)),
        # A version of a new server creates the server, and grants its creator MANAGE on it.
        ("create_mcp_server_version", lambda: client.create_mcp_server_version(
            {"name": f"io.example/{name}", "version": "1.0.0"}, tools=[])),
        ("update_mcp_server",
            lambda: client.update_mcp_server(f"io.example/{name}", description="mine")),
        # set_experiment creates the experiment and reads it back.
        ("create_run in a new experiment",
            lambda: client.create_run(mlflow.set_experiment(f"{name}-new").experiment_id)),
    ]:
        attempt(label, call)
    # A read of one thing finds it; a search reads the replica, which has none of it yet.
    out["get_run"] = attempt("get_run", lambda: client.get_run(run_id).info.status)
    out["searched_runs"] = len(client.search_runs([experiment_id]))
    out["searched_models"] = len(client.search_registered_models(f"name = '{name}'"))
    return ids


if LOGINS["ADMIN"] and step == "setup":
    as_("ADMIN")
    users = get_app_client("basic-auth", tracking_uri=uri)
    for who in ("OWNER", "OTHER"):
        users.create_user(LOGINS[who]["MLFLOW_TRACKING_USERNAME"],
                          LOGINS[who]["MLFLOW_TRACKING_PASSWORD"])
if LOGINS["OWNER"]:
    as_("OWNER")
if step == "setup":
    out["experiment"] = client.create_experiment(name)
elif step == "write":
    ids = create_and_change(sys.argv[4])
if LOGINS["OTHER"] and step == "write":
    as_("OTHER")  # READ only: each change is checked against the primary, and refused
    out["refused"] = {}
    for label, call in [
        ("log_param", lambda: client.log_param(ids["run"], "by", "other")),
        ("log_artifact", lambda: client.log_artifact(ids["run"], str(NOTES), "other")),
        ("set_logged_model_tags", lambda: client.set_logged_model_tags(ids["model"], {"o": "1"})),
        ("update_model_version",
            lambda: client.update_model_version(name, ids["version"], description="other")),
        ("update_mcp_server",
            lambda: client.update_mcp_server(f"io.example/{name}", description="other")),
    ]:
        attempt(f"other: {label}", call)
        out["refused"][label] = out["failed"].pop(f"other: {label}", None)
if step == "read":
    ids = json.loads(sys.argv[4])
    run = client.get_run(ids["run"])
    model = client.get_logged_model(ids["model"])
    version = client.get_model_version(name, ids["version"])
    artifacts = tempfile.mkdtemp()
    out.update(
        params=run.data.params,
        metrics=run.data.metrics,
        tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        status=run.info.status,
        datasets=[d.dataset.name for d in run.inputs.dataset_inputs],
        outputs=[o.model_id for o in run.outputs.model_outputs],
        artifacts=[f.path for f in client.list_artifacts(ids["run"])],
        notes=Path(client.download_artifacts(ids["run"], "notes.txt", artifacts)).read_text(),
        model=[model.status.name, {k: v for k, v in model.tags.items() if "." not in k}],
        version=[version.description, version.tags, list(version.aliases)],
        mcp=client.get_mcp_server(f"io.example/{name}").description,
        searched_runs=len(client.search_runs([ids["experiment"]])),
    )
print(json.dumps(out, default=str))
"""


def test_a_user_changes_what_they_just_created_while_the_replica_lags(
    replicated_db: ReplicatedDb, moto, test_ca, tmp_path: Path
) -> None:
    """Only searches read the replica. MLflow's writes read what they change, its permission
    checks read what a user changes, and its client reads back what it just wrote: on a lagging
    replica each would miss a run created a moment ago and fail (404, or 403 for a non-admin),
    and the client does not retry. With sign-in (the chart's default) and without."""
    pair = replicated_db
    deployment = _pod_with_replica(pair, moto, test_ca.ca, tmp_path, "replica-users")
    auth = create_auth_secrets(moto)
    # From the session's migrated copy (itest_template), replayed on the primary and so
    # replicated; the migration under a paused replica is the test above.
    itest_template.migrate(
        pair.primary, deployment.init["args"], deployment.env(deployment.init, auth=auth)
    )
    servers = {
        "auth": launcher.Server(deployment.env(deployment.main, auth=auth), tmp_path / "auth.log"),
        "open": launcher.Server(deployment.env(deployment.main), tmp_path / "open.log"),
    }
    owner = (f"owner-{secrets.token_hex(3)}", f"owner-{secrets.token_urlsafe(18)}")
    other = (f"other-{secrets.token_hex(3)}", f"other-{secrets.token_urlsafe(18)}")
    logins = {"auth": {"ADMIN": auth.admin_login(), "OWNER": owner, "OTHER": other}, "open": {}}
    name = f"lagging-{secrets.token_hex(3)}"
    experiments, wrote, read = {}, {}, {}

    def client(step: str, server: str, *args: str) -> dict:
        url = servers[server].base_url
        env = client_env(url, str(tmp_path), **logins[server])
        return launcher.mlflow_client(
            env, url, step, f"{name}-{server}", *args, code=_LAGGING_CLIENT
        )

    try:
        for server in servers.values():
            server.wait_healthy(timeout=180)
        for server in servers:
            experiments[server] = client("setup", server)["experiment"]
        pair.wait_caught_up()
        pair.pause()
        try:
            for server in servers:
                wrote[server] = client("write", server, experiments[server])
            runs = "SELECT status FROM runs ORDER BY status"
            statuses = [
                db.query(deployment.login.name, runs) for db in (pair.primary, pair.replica)
            ]
        finally:
            pair.resume()
        for server, out in wrote.items():
            assert not out["failed"], f"{server}: {json.dumps(out['failed'], indent=1)}"
            assert out["get_run"] == "FINISHED", out
            assert out["searched_runs"] == out["searched_models"] == 0, out
        # While paused, the runs were on the primary and not on the replica.
        assert statuses == [[["FINISHED"], ["FINISHED"], ["RUNNING"], ["RUNNING"]], []]
        refused = wrote["auth"]["refused"]
        assert all(refusal and "403" in refusal for refusal in refused.values()), refused
        assert len(refused) == 5, refused

        pair.wait_caught_up()
        for server in servers:
            read[server] = client("read", server, json.dumps(wrote[server]["ids"]))
    finally:
        for server in servers.values():
            server.stop()

    for server, out in read.items():
        assert out["params"] == {"alpha": "0.1", "beta": "2"}, out
        assert out["metrics"] == {"loss": 0.25, "acc": 0.9}, out
        assert out["tags"] == {"stage": "lagging", "batch": "yes"}, out
        assert out["status"] == "FINISHED", out
        assert out["datasets"] == ["train"], out
        assert out["outputs"] == [wrote[server]["ids"]["model"]], out
        assert out["artifacts"] == ["notes.txt"], out
        assert out["notes"] == "written while the replica lagged", out
        assert out["model"] == ["READY", {"ok": "yes"}], out
        assert out["version"] == ["lagging", {"checked": "yes"}, ["champion"]], out
        assert out["mcp"] == "mine", out
        assert out["searched_runs"] == 1, out
