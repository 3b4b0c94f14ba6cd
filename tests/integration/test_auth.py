"""Authentication as the chart runs it: MLflow's basic-auth app behind the launcher, on MariaDB
and on PostgreSQL, started from the synthesized pod (ConfigMap, initContainer `migrate`, then
`serve`) with its three secrets in moto's Secrets Manager.

Per engine, one deployment: a database login allowed to create databases (as RDS's master user)
whose password, like the admin's, holds every character that breaks a URL, an ini file or a
shell. Its servers (two replicas sharing the secrets, one with another Flask key, one without
authentication) are started together and shared by the cases that need them.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import itest_launcher as launcher
import pytest
from itest_auth import (
    API_CHECK,
    AUTH_OFF_WARNING,
    CONFIG_FILE,
    CREATE_USER_UI,
    DB_NAME_ENV,
    FLASK_SECRET_ENV,
    HOSTILE,
    PERMISSION_ENV,
    SIGNUP,
    Deployment,
    Response,
    auth_history,
    auth_revision,
    auth_schema,
    create_empty_database,
    csrf_token,
    database_exists,
    deploy,
    environ,
    foreign_key_names,
    let_read,
    migrate_auth_to,
    reference_schema,
    run_client,
    send,
    server_process,
    tables,
)
from itest_chart import (
    AUTH_PREFIX,
    AUTH_SECRET_IDS,
    PLACEHOLDER,
    container_env,
    pod,
    server_login,
)

pytestmark = pytest.mark.integration

CONFIG_FOR_ENGINE = {"mysql": "default", "postgres": "postgres"}
# What `serve` hands to `mlflow server` in its environment, and nothing else may carry.
SERVER_SECRET_ENV = (
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MLFLOW_CRYPTO_KEK_PASSPHRASE",
)


@pytest.fixture(scope="module")
def deployment(db_server, synth, moto, test_ca, tmp_path_factory) -> Deployment:
    """The pod's first start: its initContainer migrates both schemas."""
    engine = db_server.engine
    chart = synth(CONFIG_FOR_ENGINE[engine])
    _, (init, main) = pod(chart)
    assert init["args"] == ["migrate"] and main["args"] == ["serve"]
    config = container_env(chart, main)
    assert set(AUTH_SECRET_IDS) <= set(config), "authentication is not on by default"
    assert config[DB_NAME_ENV] == "mlflow_auth" and config[PERMISSION_ENV] == "READ"
    token = secrets.token_urlsafe(12)
    deployment = deploy(
        db_server,
        chart,
        moto,
        test_ca.ca,
        tmp_path_factory.mktemp(f"auth-{engine}"),
        db_password=f"db-{HOSTILE}-{token}",
        admin_password=f"admin-{HOSTILE}-{token}",
    )
    first = deployment.migrate("first-replica")
    assert first.returncode == 0, deployment.outputs[-1]
    return deployment


@dataclass
class Servers:
    a: launcher.Server
    """A replica."""
    b: launcher.Server
    """Another replica: the same secrets, another port and pod."""
    other_key: launcher.Server
    """A server whose Flask secret key differs."""
    no_auth: launcher.Server
    """The same pod without the MLFLOW_AUTH_* variables."""

    def all(self) -> dict[str, launcher.Server]:
        return dict(vars(self))


@pytest.fixture(scope="module")
def servers(deployment, moto) -> Iterator[Servers]:
    d = deployment
    other_key = {**d.auth.arns, FLASK_SECRET_ENV: moto.create_secret(secrets.token_urlsafe(48))}
    envs = {
        "a": d.env(d.main, "a"),
        "b": d.env(d.main, "b"),
        "other_key": d.env(d.main, "other-key", auth=other_key),
        "no_auth": d.env(d.main, "no-auth", auth={}),
    }
    assert not [k for k in envs["no_auth"] if k.startswith(AUTH_PREFIX)]
    # b keeps records for 6 s, not the chart's 30 (which `a` keeps, and the hostile-password
    # test reads back): the removed-admin test waits out b's window once per engine, and it
    # reads the window from b's environment, so a shorter one proves the same bound.
    assert envs["b"]["MLFLOW_AUTH_CACHE_SECONDS"] == "30"
    envs["b"]["MLFLOW_AUTH_CACHE_SECONDS"] = "6"
    started = {name: launcher.Server(env, d.home / f"{name}.log") for name, env in envs.items()}
    try:
        for server in started.values():
            server.wait_healthy(timeout=180)
        yield Servers(**started)
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def admin_experiment(deployment, servers, tmp_path_factory) -> dict:
    """An experiment and a run the admin created with the real MLflow client."""
    return run_client(
        servers.a.base_url,
        "admin",
        f"admin-experiment-{deployment.engine}",
        home=str(tmp_path_factory.mktemp("admin-client")),
        admin=deployment.auth.admin_login(),
    )


def _error(output: str) -> str:
    errors = [line for line in output.splitlines() if " mlflow-launcher ERROR " in line]
    assert errors, f"no error logged:\n{output}"
    return errors[-1].split(" mlflow-launcher ERROR ", 1)[1]


def test_migrate_creates_the_auth_database_and_serve_refuses_one_behind(deployment):
    d, server = deployment, deployment.login.server
    missing, empty, behind = (f"{d.login.name}_{s}" for s in ("missing", "empty", "behind"))
    history = auth_history()
    head = history[-1]
    # Independent launcher and client runs side by side (each spends seconds importing MLflow).
    with ThreadPoolExecutor(4) as pool:
        # Another replica's initContainer; the auth schema as deployed and as MLflow makes
        # it; and an auth database a release behind (MLflow upgraded, `migrate` not run yet).
        # Python's import log on (stderr): a migration that changes nothing imports no MLflow.
        again = pool.submit(d.migrate, "second-replica", PYTHONPROFILEIMPORTTIME="1")
        deployed = pool.submit(auth_schema, d.env(d.init, "inspect"))
        reference = pool.submit(reference_schema)
        old_env = d.env(d.init, "old-release", **{DB_NAME_ENV: behind})
        old_release = pool.submit(migrate_auth_to, old_env, history[-2])
        # As an operator would by hand, for the server's login.
        server_user = server_login(d.moto, d.login).username
        create_empty_database(server, empty, server_user)

        first = d.outputs[0]
        # The migration Job made the auth database with the server's login (test_db_login.py).
        assert f"has {d.login.name} and {d.auth_db} and nothing else" in first, first
        assert f"migrated the auth schema from empty to head {head}" in first, first
        assert auth_revision(server, d.auth_db) == head
        assert d.users() == [], "no user yet: the server creates the admin"
        # The tables, columns and foreign keys MLflow's own migrations make, on MySQL too,
        # where the launcher makes the first revision itself (MLflow's fails there: both its
        # foreign keys are named fk_user_id, and MySQL wants names unique in a database;
        # mlflow/mlflow#9642).
        assert deployed.result() == reference.result()
        if d.engine == "mysql":
            assert foreign_key_names(server, d.auth_db)["registered_model_permissions"] == [
                "fk_registered_model_perm_user_id"
            ]

        again_output = again.result().stdout + again.result().stderr
        assert again.result().returncode == 0, again_output
        assert f"auth schema already at head {head}; nothing to migrate" in again_output
        assert "schema already at head" in again_output
        assert "created the auth database" not in again_output
        assert "migrated the auth schema" not in again_output
        imported = re.findall(r"\|\s+(mlflow(?:\.\S+)?)$", again.result().stderr, re.MULTILINE)
        assert imported == [], "migrate at head imported MLflow: seconds of CPU per pod start"
        d.outputs.append(old_release.result())
        assert auth_revision(server, behind) == history[-2]
        let_read(server, behind, server_user)  # the older release's tables are the master's

        # `serve` refuses auth databases not at head, and leaves them as they are.
        refusals = {
            name: pool.submit(
                launcher.run, ["serve"], d.env(d.main, f"refused-{name}", **{DB_NAME_ENV: name})
            )
            for name in (missing, empty, behind)
        }
        results = {name: future.result() for name, future in refusals.items()}
    outputs = {name: r.stdout + r.stderr for name, r in results.items()}
    d.outputs += outputs.values()
    expected = {
        missing: f"cannot read the auth schema's revision in database {missing}: ",
        empty: f"auth schema in database {empty} is at revision (none: new database), "
        f"expected head {head}: run `mlflow-launcher migrate` first",
        behind: f"auth schema in database {behind} is at revision {history[-2]}, "
        f"expected head {head}: run `mlflow-launcher migrate` first",
    }
    for name, result in results.items():
        assert result.returncode == 2, outputs[name]
        assert _error(outputs[name]).startswith(expected[name]), outputs[name]
        assert "run `mlflow-launcher migrate` first" in _error(outputs[name])
        assert "starting mlflow server" not in outputs[name], outputs[name]
    assert not database_exists(server, missing)
    assert auth_revision(server, behind) == history[-2]
    assert tables(server, empty) == []

    # The new release's initContainer brings the one behind to head.
    upgraded = d.migrate("upgrade", **{DB_NAME_ENV: behind})
    assert upgraded.returncode == 0, d.outputs[-1]
    assert f"migrated the auth schema from {history[-2]} to head {head}" in d.outputs[-1]
    # Data was there, so a snapshot first (the default `snapshot_before_upgrade`).
    assert d.outputs[-1].index("taking snapshot mlflow-before-") < d.outputs[-1].index(
        "migrated the auth schema"
    )
    assert auth_revision(server, behind) == head


def test_anonymous_is_refused_and_the_admin_signs_in(deployment, servers, admin_experiment):
    d, a = deployment, servers.a
    anonymous = send(a.base_url, "GET", API_CHECK)
    assert anonymous.status == 401, anonymous
    assert anonymous.headers.get("www-authenticate") == 'Basic realm="mlflow"'
    assert send(a.base_url, "GET", API_CHECK, login=(d.auth.admin_username, "wrong")).status == 401

    admin = send(a.base_url, "GET", API_CHECK, login=d.auth.admin_login())
    assert admin.status == 200, admin
    assert "experiments" in json.loads(admin.body)
    # The real client, signed in with MLFLOW_TRACKING_USERNAME/PASSWORD.
    assert admin_experiment["mlflow"].startswith("3.17."), admin_experiment
    assert admin_experiment["params"] == {"by": "admin"}
    assert f"admin-experiment-{d.engine}" in admin_experiment["searched"]
    # MLflow created the admin from the secret, once, in the auth database.
    assert d.users()[0] == [d.auth.admin_username, "1"]
    # MLflow serves its own /metrics to admins only (fail-closed for unlisted routes), so
    # scrapers use the pod's metrics port (test_metrics.py).
    assert send(a.base_url, "GET", "/metrics").status == 401


def test_a_read_user_reads_and_writes_once_granted_edit(
    deployment, servers, admin_experiment, tmp_path
):
    user = (f"reader-{secrets.token_hex(4)}", f"reader-{secrets.token_urlsafe(18)}")
    experiment_id = admin_experiment["experiment_id"]
    out = run_client(
        servers.a.base_url,
        "permissions",
        experiment_id,
        home=str(tmp_path),
        admin=deployment.auth.admin_login(),
        user=user,
    )
    assert out["created"] == {"username": user[0], "is_admin": False}
    # READ by default: the admin's experiment and run are visible...
    assert out["read"] == f"admin-experiment-{deployment.engine}"
    assert out["read_runs"] == 1
    # ...but not writable, and the user cannot grant themselves more.
    assert out["write_refused"] and "403" in out["write_refused"], out
    assert out["grant_refused_to_user"] and "403" in out["grant_refused_to_user"], out
    # After the admin's grant (docs/operations.md's command), the write goes through.
    assert out["granted"]["permission"] == "EDIT", out
    assert out["written"] == {"by": "user"}
    status = send(servers.a.base_url, "GET", API_CHECK, login=user).status
    assert status == 200


def test_a_removed_admin_flag_reaches_every_replica_within_the_sign_in_cache(deployment, servers):
    """Each process keeps a user's record (its admin flag) as long as it keeps the user's
    password check (auth.sign_in_cache_seconds; app._remember_users): its own changes apply
    at once, another replica's within that window, as docs/configuration.md says."""
    admin, a, b = deployment.auth.admin_login(), servers.a.base_url, servers.b.base_url
    window = int(servers.b.env["MLFLOW_AUTH_CACHE_SECONDS"])
    assert window > 0
    user = (f"promoted-{secrets.token_hex(4)}", f"promoted-{secrets.token_urlsafe(18)}")
    created = send(b, "POST", USERS + "create", login=admin, json_body=_login_body(user))
    assert created.status == 200, created
    # Another user's record: for admins only.
    probe = f"{USERS}get?username={quote(deployment.auth.admin_username)}"
    assert send(b, "GET", probe, login=user).status == 403  # b now keeps the user's record

    assert _set_admin(b, admin, user[0], True) == 200
    assert send(b, "GET", probe, login=user).status == 200  # b's own change: at once
    assert send(a, "GET", probe, login=user).status == 200  # a keeps it now

    removed = time.monotonic()
    assert _set_admin(a, admin, user[0], False) == 200
    assert send(a, "GET", probe, login=user).status == 403  # a's own change: at once
    while send(b, "GET", probe, login=user).status == 200:  # b's kept record: for the window
        assert time.monotonic() - removed < window + 5, f"still an admin on b after {window} s"
        time.sleep(1)
    assert send(b, "GET", probe, login=user).status == 403


USERS = "/api/2.0/mlflow/users/"


def _login_body(login: tuple[str, str]) -> dict[str, str]:
    return {"username": login[0], "password": login[1]}


def _set_admin(base_url: str, admin: tuple[str, str], username: str, is_admin: bool) -> int:
    body = {"username": username, "is_admin": is_admin}
    return send(base_url, "PATCH", USERS + "update-admin", login=admin, json_body=body).status


def test_replicas_accept_each_others_csrf_tokens(deployment, servers):
    login = deployment.auth.admin_login()
    page = send(servers.a.base_url, "GET", SIGNUP, login=login)
    assert page.status == 200, page
    token, cookie = csrf_token(page.body), page.cookie()

    def sign_up(server: launcher.Server, **headers: str) -> tuple[str, Response]:
        """The sign-up form, filled in and posted as a browser does."""
        name = f"signup-{secrets.token_hex(4)}"
        form = {"csrf_token": token, "username": name, "password": secrets.token_urlsafe(18)}
        posted = send(
            server.base_url, "POST", CREATE_USER_UI, login=login, form=form, headers=headers
        )
        return name, posted

    def exists(name: str) -> bool:
        path = f"/api/2.0/mlflow/users/get?username={name}"
        return send(servers.a.base_url, "GET", path, login=login).status == 200

    # The form from replica A, posted to replica B (the load balancer's next pick).
    name, on_b = sign_up(servers.b, Cookie=cookie)
    assert on_b.status == 200, on_b
    assert f"Successfully signed up user: {name}" in on_b.body
    assert exists(name)
    # The session cookie carries the token's other half: without it, B refuses.
    name, without_cookie = sign_up(servers.b)
    assert without_cookie.status == 400 and "CSRF" in without_cookie.body, without_cookie
    assert not exists(name)
    # A server with another Flask key cannot read A's session: refused, nobody created.
    name, other = sign_up(servers.other_key, Cookie=cookie)
    assert other.status == 400 and "CSRF" in other.body, other
    assert not exists(name)


def test_hostile_characters_in_the_passwords(deployment, servers):
    d, a = deployment, servers.a
    srv = server_login(d.moto, d.login)  # the server's own login, which MLflow runs with
    for password in (d.login.password, srv.password, d.auth.admin_password):
        assert all(c in password for c in "%'\"\\:@/# ") and not password.isascii()
    # migrate (the fixture) and serve worked with them; MLflow reads back the database URI
    # the launcher wrote, with ConfigParser's interpolation, as the same login.
    from sqlalchemy.engine import make_url

    config = configparser.ConfigParser()
    assert config.read(d.home / "a" / CONFIG_FILE, encoding="utf-8")
    url = make_url(config["mlflow"]["database_uri"])
    assert url.password == srv.password
    assert (url.username, url.database) == (srv.username, d.auth_db)
    assert config["mlflow"]["admin_username"] == d.auth.admin_username
    # The chart's default sign-in cache, as MLflow itself reads it from the file.
    as_mlflow_reads_it = launcher.image_python(
        "-c",
        "from mlflow.server.auth.config import read_auth_config; "
        "print(read_auth_config().auth_cache_ttl_seconds)",
        env={**d.env(d.main, "a"), "MLFLOW_AUTH_CONFIG_PATH": str(d.home / "a" / CONFIG_FILE)},
    )
    assert as_mlflow_reads_it.stdout.split()[-1] == "30"

    assert send(a.base_url, "GET", API_CHECK, login=d.auth.admin_login()).status == 200
    near_miss = (d.auth.admin_username, d.auth.admin_password[:-1])
    assert send(a.base_url, "GET", API_CHECK, login=near_miss).status == 401
    me = send(a.base_url, "GET", "/api/2.0/mlflow/users/current", login=d.auth.admin_login())
    assert me.status == 200, me
    assert json.loads(me.body)["user"]["is_admin"] is True


def test_no_secret_in_output_argv_or_configmap(deployment, servers):
    d = deployment
    values = {"the database password": d.login.password, **d.auth.values()}
    texts = {
        **{f"launcher run {i}": text for i, text in enumerate(d.outputs)},
        **{f"server {name}'s output": s.logs() for name, s in servers.all().items()},
    }
    for where, text in texts.items():
        for what, value in values.items():
            launcher.assert_no_secret(text, value, f"{where} ({what})")

    for name, server in servers.all().items():
        tree = server.process_tree()
        assert len(tree) >= 2, f"server {name}: {tree}"  # tini, uvicorn (one worker: itself)
        for pid in tree:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            for what, value in values.items():
                launcher.assert_no_secret(cmdline, value, f"server {name}'s argv ({what})")

    # They travel in the server's environment, and the secrets' ARNs stay with the launcher.
    env = environ(server_process(servers.a))
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == d.auth.flask_key
    assert env["MLFLOW_CRYPTO_KEK_PASSPHRASE"] == d.auth.kek_passphrase
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == d.auth.admin_password
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(d.home / "a" / CONFIG_FILE)
    assert not [key for key in AUTH_SECRET_IDS if key in env]

    # The ConfigMap names the secrets (deploy-time references), never holds one.
    configmap = container_env(d.chart, d.main)
    for key in AUTH_SECRET_IDS:
        assert PLACEHOLDER.fullmatch(configmap[key]), (key, configmap[key])
    assert not [key for key in SERVER_SECRET_ENV if key in configmap]
    rendered = json.dumps(d.chart.manifests, ensure_ascii=False)
    for what, value in values.items():
        launcher.assert_no_secret(rendered, value, f"the manifests ({what})")

    # The config file holds the database login: this user's only, in a directory of its own.
    for name in ("a", "b", "other-key"):
        ini = d.home / name / CONFIG_FILE
        assert stat.S_IMODE(ini.stat().st_mode) == 0o600, name
        assert stat.S_IMODE(ini.parent.stat().st_mode) == 0o700, name
        assert ini.stat().st_uid == os.geteuid()
        text = ini.read_text(encoding="utf-8")
        for what, value in d.auth.values().items():  # the database login only
            launcher.assert_no_secret(text, value, f"the auth config file ({what})")


def test_without_auth_settings_serve_warns_and_lets_anyone_in(deployment, servers):
    server = servers.no_auth
    warnings = [line for line in server.logs().splitlines() if AUTH_OFF_WARNING in line]
    assert len(warnings) == 1 and " mlflow-launcher WARNING " in warnings[0], server.logs()
    # The guard's app (always named in argv) builds MLflow's basic-auth app only when told to.
    environ = Path(f"/proc/{server_process(server)}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"MLFLOW_ON_EKS_AUTH=")]
    assert send(server.base_url, "GET", API_CHECK).status == 200
    created = send(
        server.base_url,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        json_body={"name": f"anonymous-{secrets.token_hex(4)}"},
    )
    assert created.status == 200, created
    assert not (deployment.home / "no-auth" / CONFIG_FILE).exists()
    # The replicas with authentication on never logged the warning.
    assert AUTH_OFF_WARNING not in servers.a.logs()
