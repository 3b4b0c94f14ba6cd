"""MLflow's workspaces as the chart runs them (`server.workspaces: true`), with sign-in, on
MariaDB and on PostgreSQL: two workspaces, two users each with a role in one, the real MLflow
client logging an artifact, and the one-way door (workspaces turned off again).

Per engine one deployment and one server (the pod's ConfigMap with MLFLOW_ENABLE_WORKSPACES, as
the chart writes it for `server.workspaces: true`: tests/unit/test_auth_templates.py).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import itest_launcher as launcher
import pytest
from itest_auth import Deployment, client_env, deployed, send

pytestmark = pytest.mark.integration

CONFIG_FOR_ENGINE = {"mysql": "default", "postgres": "postgres"}
WORKSPACES_ON = {"MLFLOW_ENABLE_WORKSPACES": "true"}
HEADER = "X-MLFLOW-WORKSPACE"
WORKSPACE_API = "/api/3.0/mlflow/workspaces"
ROLES_API = "/api/3.0/mlflow/roles"
EXPERIMENTS_API = "/api/2.0/mlflow/experiments"
DAY_MS = 24 * 3600 * 1000


@dataclass
class Team:
    workspace: str
    login: tuple[str, str]
    experiment_id: str = ""
    run_id: str = ""
    """Of the run that logged an artifact."""


@dataclass
class Running:
    deployment: Deployment
    server: launcher.Server
    migrate_output: str
    teams: list[Team]

    def call(self, method: str, path: str, login, workspace: str | None = None, body=None):
        headers = {HEADER: workspace} if workspace else {}
        return send(
            self.server.base_url, method, path, login=login, json_body=body, headers=headers
        )


@pytest.fixture(scope="module")
def running(db_server, synth, moto, test_ca, tmp_path_factory) -> Iterator[Running]:
    engine = db_server.engine
    home = tmp_path_factory.mktemp(f"workspaces-{engine}")
    d = deployed(
        db_server, synth(CONFIG_FOR_ENGINE[engine]), moto, test_ca.ca, home, **WORKSPACES_ON
    )
    server = launcher.Server(d.env(d.main, "server", **WORKSPACES_ON), d.home / "server.log")
    try:
        server.wait_healthy(timeout=180)
        running = Running(d, server, d.outputs[-1], [])
        admin = d.auth.admin_login()
        for name in ("team-a", "team-b"):
            team = Team(f"{name}-{engine}", (f"{name}-user", f"pw-{secrets.token_urlsafe(18)}"))
            created = running.call("POST", WORKSPACE_API, admin, body={"name": team.workspace})
            assert created.status == 201, created
            user = {"username": team.login[0], "password": team.login[1]}
            made = running.call("POST", "/api/2.0/mlflow/users/create", admin, body=user)
            assert made.status == 200, made
            # MLflow seeds roles `admin` and `user` into each new workspace.
            listed = running.call("GET", f"{ROLES_API}/list?workspace={team.workspace}", admin)
            [role] = [r for r in json.loads(listed.body)["roles"] if r["name"] == "user"]
            assign = {"username": team.login[0], "role_id": role["id"]}
            assigned = running.call("POST", f"{ROLES_API}/assign", admin, body=assign)
            assert assigned.status == 200, assigned
            # The user's experiment, in the workspace the header names.
            body = {"name": f"experiment-of-{team.workspace}"}
            create = f"{EXPERIMENTS_API}/create"
            created = running.call("POST", create, team.login, team.workspace, body)
            assert created.status == 200, created
            team.experiment_id = json.loads(created.body)["experiment_id"]
            running.teams.append(team)
        yield running
    finally:
        server.stop()


def test_the_migrations_make_workspaces_under_the_lock(running):
    """Nothing of its own to migrate: MLflow's workspace tables are in the tracking schema's
    history, its roles in the auth schema's, both run by `migrate` under the lock."""
    d, output = running.deployment, running.migrate_output
    assert output.index("acquired the migration lock") < output.index("migrated schema from")
    assert "migrated the auth schema from empty to head" in output
    server = d.login.server
    assert ["default"] in server.query(d.login.name, "SELECT name FROM workspaces")
    seeded = "SELECT COUNT(*) FROM roles WHERE name IN ('admin', 'user')"
    [[roles]] = server.query(d.auth_db, seeded)
    assert int(roles) == 4, "two seeded roles in each of the two new workspaces"


def test_each_user_works_in_their_workspace_only(running):
    a, b = running.teams
    for team in running.teams:
        got = running.call(
            "GET",
            f"{EXPERIMENTS_API}/get?experiment_id={team.experiment_id}",
            team.login,
            team.workspace,
        )
        assert json.loads(got.body)["experiment"]["workspace"] == team.workspace, got
    # A sees its own workspace's experiments, not B's, whichever way it asks.
    search = f"{EXPERIMENTS_API}/search?max_results=100"
    seen = json.loads(running.call("GET", search, a.login, a.workspace).body)["experiments"]
    assert [e["name"] for e in seen] == [f"experiment-of-{a.workspace}"]
    in_b = running.call("GET", search, a.login, b.workspace)
    assert in_b.status == 200 and json.loads(in_b.body).get("experiments", []) == [], in_b
    get_b = f"{EXPERIMENTS_API}/get?experiment_id={b.experiment_id}"
    assert running.call("GET", get_b, a.login, b.workspace).status == 403
    assert running.call("GET", get_b, a.login, a.workspace).status == 403
    refused = running.call(
        "POST", f"{EXPERIMENTS_API}/create", a.login, b.workspace, {"name": "intruder"}
    )
    assert refused.status == 403, refused
    # Without the header: the default workspace, where everything made before lives. A has
    # no role there, and sees it through auth.grant_default_workspace_access (default true).
    default = json.loads(running.call("GET", search, a.login).body)["experiments"]
    assert [e["name"] for e in default] == ["Default"]


_LOG_ARTIFACT = r"""
import json, os, sys, tempfile
import mlflow

path = os.path.join(tempfile.mkdtemp(), "weights.txt")
with open(path, "w") as handle:
    handle.write("w")
with mlflow.start_run(experiment_id=sys.argv[2]) as run:
    mlflow.log_artifact(path)
print(json.dumps({"artifact_uri": run.info.artifact_uri, "run_id": run.info.run_id}))
"""


def log_artifact(running: Running, team: Team, home) -> dict:
    """A run with an artifact in `team`'s experiment, by the real client as that team's user
    in its workspace (MLFLOW_WORKSPACE, which the client sends as X-MLFLOW-WORKSPACE)."""
    env = client_env(running.server.base_url, str(home))
    env |= {
        "MLFLOW_TRACKING_USERNAME": team.login[0],
        "MLFLOW_TRACKING_PASSWORD": team.login[1],
        "MLFLOW_WORKSPACE": team.workspace,
    }
    base_url = running.server.base_url
    return launcher.mlflow_client(env, base_url, team.experiment_id, code=_LOG_ARTIFACT)


def test_artifacts_land_under_the_workspace_inside_the_prefix(running, moto, tmp_path):
    a = running.teams[0]
    out = log_artifact(running, a, tmp_path)
    keys = [k for k in moto.objects(running.deployment.bucket) if k.endswith("weights.txt")]
    # The chart's artifacts prefix (the IRSA policy's grant), then MLflow's workspace layout.
    expected = f"artifacts/workspaces/{a.workspace}/{a.experiment_id}/{out['run_id']}/"
    assert keys == [f"{expected}artifacts/weights.txt"], (keys, out)
    a.run_id = out["run_id"]
    # Read back through the proxied download route in the workspace: the launcher's streaming
    # route (s3_download.py, the one that declares a length) scopes the path as MLflow does.
    path = f"/api/2.0/mlflow-artifacts/artifacts/{a.experiment_id}/{a.run_id}/artifacts"
    got = running.call("GET", f"{path}/weights.txt", a.login, a.workspace)
    assert (got.status, got.body, got.headers.get("content-length")) == (200, "w", "1"), got


def test_gc_removes_what_was_deleted_in_any_workspace(running, moto, tmp_path):
    """The CronJob's command with the ConfigMap's MLFLOW_ENABLE_WORKSPACES: MLflow's gc alone
    would clean `default` only."""
    d, b = running.deployment, running.teams[1]
    run_id = log_artifact(running, b, tmp_path)["run_id"]
    deleted = running.call(
        "POST", "/api/2.0/mlflow/runs/delete", b.login, b.workspace, {"run_id": run_id}
    )
    assert deleted.status == 200, deleted
    # Two days pass: its deletion time, as MLflow recorded it, moves back.
    d.login.server.admin(
        f"UPDATE runs SET deleted_time = deleted_time - {2 * DAY_MS} "  # noqa: S608
        f"WHERE run_uuid = '{run_id}'",
        d.login.name,
    )
    env = d.env(d.main, "gc", **WORKSPACES_ON)
    env |= {"MLFLOW_GC_OLDER_THAN": "1d", "MLFLOW_GC_TRACKING_URI": running.server.base_url}
    result = launcher.run(["gc"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = d.login.server.query(d.login.name, "SELECT run_uuid FROM runs")
    assert [run_id] not in rows, "its rows are gone"
    assert not [key for key in moto.objects(d.bucket) if run_id in key], "its artifacts too"


def test_workspaces_turned_off_refuse_to_start_naming_the_way_back(running):
    d = running.deployment
    result = launcher.run(["serve"], d.env(d.main, "workspaces-off"))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"experiments in workspace '{running.teams[0].workspace}'" in output
    assert "mlflow db migrate-to-default-workspace" in output
    assert "starting mlflow server" not in output


_MOVE_TO_DEFAULT = """
# What docs/operations.md ("Workspaces") has the operator run, with the server's login: MLflow's
# own command (in-process, so the URI with its password stays out of argv here).
import os
from mlflow.db import commands
from mlflow_launcher import dburl, secret, settings
db = settings.load_db(os.environ)
url = dburl.build_url(db, secret.fetch_credentials(db.secret_id, region=db.region))
commands.main(
    ["migrate-to-default-workspace", dburl.uri_for_mlflow(url), "--yes"], standalone_mode=False
)
"""


_DOWNLOAD = r"""
import json, pathlib, sys
import mlflow

path = pathlib.Path(
    mlflow.artifacts.download_artifacts(run_id=sys.argv[1], artifact_path="weights.txt")
)
print(json.dumps({path.name: path.read_text()}))
"""


def test_moved_back_into_default_it_starts_without_workspaces(running, tmp_path):
    """Last: it changes the deployment's data. The way out of the one-way door."""
    d = running.deployment
    off = d.env(d.main, "moved-back")
    moved = launcher.image_python("-c", _MOVE_TO_DEFAULT, env=off, timeout=120)
    assert "Moved " in moved.stdout and " rows to the default workspace" in moved.stdout, moved
    server = launcher.Server(off, d.home / "moved-back.log")
    try:
        server.wait_healthy(timeout=180)
        search = f"{EXPERIMENTS_API}/search?max_results=100"
        listed = send(server.base_url, "GET", search, login=d.auth.admin_login())
        names = {e["name"] for e in json.loads(listed.body)["experiments"]}
        # Nothing hidden: every team's experiment is in the one workspace there is, and the
        # artifact logged in a workspace is found where it was written.
        assert {f"experiment-of-{t.workspace}" for t in running.teams} <= names, names
        env = client_env(server.base_url, str(tmp_path))
        env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = d.auth.admin_login()
        run_id = running.teams[0].run_id
        assert run_id, "test_artifacts_land_under_the_workspace_inside_the_prefix runs first"
        out = launcher.mlflow_client(env, run_id, code=_DOWNLOAD)
        assert out == {"weights.txt": "w"}
    finally:
        server.stop()
