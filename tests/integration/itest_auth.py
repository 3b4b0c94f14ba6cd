"""MLflow's basic-auth app as the chart runs it: its three secrets in moto as the data stack
makes them, a database login with what RDS's master user may do (create databases), HTTP with
and without a login, and the real MLflow client (in .venv-image) signed in."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import itest_launcher as launcher
from itest_chart import (
    AUTH_PREFIX,
    AUTH_SECRET_IDS,
    container_env,
    pod,
    rds_instance,
    substitute_endpoints,
)
from itest_servers import sql_literal

ADMIN_SECRET_ENV, FLASK_SECRET_ENV, KEK_SECRET_ENV = AUTH_SECRET_IDS
DB_NAME_ENV = "MLFLOW_AUTH_DB_NAME"
PERMISSION_ENV = "MLFLOW_AUTH_DEFAULT_PERMISSION"
CONFIG_FILE = "mlflow-auth/basic_auth.ini"
"""Under the container's TMPDIR (launcher.container_env sets it to the pod's home)."""
AUTH_OFF_WARNING = "authentication is off"
SIGNUP = "/signup"
CREATE_USER_UI = "/api/2.0/mlflow/users/create-ui"
API_CHECK = "/api/2.0/mlflow/experiments/search?max_results=5"
# Every character that breaks a URL, an ini file or a shell, plus non-ASCII (4-byte UTF-8 too).
HOSTILE = "%'\"\\:@/# ?&=+ pä%%ss-密码-🔑 %(x)s end"


@dataclass
class AuthSecrets:
    """The basic-auth secrets in moto: the admin's login (JSON), the Flask key and the KEK
    passphrase (plain strings), and their ARNs by the ConfigMap variable naming each."""

    admin_username: str
    admin_password: str = field(repr=False)
    flask_key: str = field(repr=False)
    kek_passphrase: str = field(repr=False)
    arns: dict[str, str]

    def values(self) -> dict[str, str]:
        """What must never show: each secret value by what it is."""
        return {
            "the admin password": self.admin_password,
            "the Flask secret key": self.flask_key,
            "the KEK passphrase": self.kek_passphrase,
        }

    def admin_login(self) -> tuple[str, str]:
        return self.admin_username, self.admin_password


def create_auth_secrets(
    moto,
    *,
    admin_password: str | None = None,
    admin_username: str = "admin",
    flask_key: str | None = None,
    kek_passphrase: str | None = None,
) -> AuthSecrets:
    admin_password = admin_password or f"admin-{secrets.token_urlsafe(24)}"
    flask_key = flask_key or secrets.token_urlsafe(48)
    kek_passphrase = kek_passphrase or secrets.token_urlsafe(48)
    admin = json.dumps({"username": admin_username, "password": admin_password})
    arns = {
        ADMIN_SECRET_ENV: moto.create_secret(admin),
        FLASK_SECRET_ENV: moto.create_secret(flask_key),
        KEK_SECRET_ENV: moto.create_secret(kek_passphrase),
    }
    return AuthSecrets(admin_username, admin_password, flask_key, kek_passphrase, arns)


@dataclass
class Login:
    """A database with its own login and the Secrets Manager secret holding it (the fields of
    conftest's Target, which substitute_endpoints reads), the login allowed to create
    databases as RDS's master user is."""

    server: object
    name: str
    user: str
    password: str = field(repr=False)
    secret_arn: str


def new_login(server, moto, password: str) -> Login:
    suffix = secrets.token_hex(5)
    name, user = f"mlflow_{suffix}", f"user_{suffix}"
    server.create_database(name, user, password)
    secret = {"username": user, "password": password, "engine": server.engine}
    return Login(server, name, user, password, moto.create_secret(json.dumps(secret)))


@dataclass
class Deployment:
    engine: str
    chart: object
    init: dict
    main: dict
    login: Login
    auth: AuthSecrets
    auth_db: str
    bucket: str
    moto: object
    ca: Path
    home: Path
    outputs: list[str]
    """The output of each launcher run, the first replica's `migrate` first."""
    instance_id: str
    """The RDS instance (in moto) that `migrate` snapshots before an upgrade."""

    def users(self) -> list[list[str]]:
        """The auth database's users: name, and whether an admin (as 0/1)."""
        rows = self.login.server.query(
            self.auth_db, "SELECT username, is_admin FROM users ORDER BY username"
        )
        return [[name, {"t": "1", "f": "0"}.get(flag, flag)] for name, flag in rows]

    def env(self, container: dict, name: str, auth: dict | None = None, **changes) -> dict:
        """`container`'s environment as Kubernetes sets it, AWS made local (the auth secrets'
        ARNs `auth`, default this deployment's), in a pod of its own (TMPDIR) called `name`."""
        env = container_env(self.chart, container)
        arns = self.auth.arns if auth is None else auth
        env = substitute_endpoints(
            env,
            self.login,
            self.moto,
            self.ca,
            self.bucket,
            arns or None,
            instance_id=self.instance_id,
        )
        env |= {"MLFLOW_DB_NAME": self.login.name}
        if any(key.startswith(AUTH_PREFIX) for key in env):
            env[DB_NAME_ENV] = self.auth_db
        return launcher.container_env({**env, **changes}, self.home / name)

    def migrate(self, name: str, **changes) -> subprocess.CompletedProcess:
        result = launcher.run(self.init["args"], self.env(self.init, name, **changes))
        self.outputs.append(result.stdout + result.stderr)
        return result


def deploy(
    db_server, chart, moto, ca: Path, home: Path, *, db_password: str, admin_password: str
) -> Deployment:
    """`chart`'s pod (migration Job, server) on a login of its own that may create databases
    (as RDS's master user), with the basic-auth secrets in moto; nothing migrated yet."""
    _, (init, main) = pod(chart)
    login = new_login(db_server, moto, db_password)
    engine = db_server.engine
    return Deployment(
        engine=engine,
        chart=chart,
        init=init,
        main=main,
        login=login,
        auth=create_auth_secrets(moto, admin_password=admin_password),
        # Its own name on the session's shared server (the chart's is mlflow_auth).
        auth_db=f"{login.name}_auth",
        bucket=moto.create_bucket(),
        moto=moto,
        ca=ca,
        home=home,
        outputs=[],
        instance_id=rds_instance(moto, f"itest-auth-{engine}-{secrets.token_hex(4)}"),
    )


def deployed(
    db_server, chart, moto, ca: Path, home: Path, *, templated: bool = False, **changes: str
) -> Deployment:
    """`deploy` with passwords of its own, migrated by its first replica (`changes`: the
    migration's extra variables). `templated`: from itest_template's copy of a migrated store
    (for tests that are not about migrating), the real `migrate` run on it all the same."""
    token = secrets.token_urlsafe(12)
    d = deploy(
        db_server, chart, moto, ca, home, db_password=f"db-{token}", admin_password=f"admin-{token}"
    )
    if templated:
        import itest_template  # it imports this module

        d.outputs.append(
            itest_template.migrate(db_server, d.init["args"], d.env(d.init, "migrate", **changes))
        )
        return d
    migrated = d.migrate("migrate", **changes)
    assert migrated.returncode == 0, d.outputs[-1]
    return d


def signed_in_pod_env(
    chart,
    container: dict,
    login: Login,
    auth: AuthSecrets,
    moto,
    ca: Path,
    bucket: str,
    home: Path,
    **changes: str,
) -> dict[str, str]:
    """`container`'s environment from the synthesized chart, AWS made local, sign-in on with
    `auth`'s secrets, the tracking and users' databases `login`'s, in the pod `home`."""
    local = substitute_endpoints(
        container_env(chart, container),
        login,
        moto,
        ca,
        bucket,
        auth.arns,
        instance_id=rds_instance(moto, f"itest-{secrets.token_hex(4)}"),
    )
    local |= {"MLFLOW_DB_NAME": login.name, DB_NAME_ENV: f"{login.name}_auth"}
    return launcher.container_env({**local, **changes}, home)


def memory_limit_mib(container: dict) -> int:
    """The container's memory limit (the chart writes it in Mi)."""
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    return int(limit.removesuffix("Mi"))


def create_empty_database(server, name: str, owner: str) -> None:
    """A database the operator made by hand for `owner` (the server's login), that nothing
    has migrated."""
    if server.engine == "mysql":
        server.admin(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4;"
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{owner}'@'%';"
        )
    else:
        server.admin(f'CREATE DATABASE "{name}" OWNER "{owner}";')


def let_read(server, name: str, login: str) -> None:
    """`login` may read what another login made in database `name` (as the migration Job's
    hand-over would give it)."""
    if server.engine == "mysql":
        server.admin(f"GRANT SELECT ON `{name}`.* TO '{login}'@'%';")
    else:
        server.admin(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{login}";', name)


def database_exists(server, name: str) -> bool:
    literal = sql_literal(name, backslash_escapes=server.engine == "mysql")
    if server.engine == "mysql":
        where = f"information_schema.schemata WHERE schema_name = {literal}"
        return bool(server.query("information_schema", f"SELECT schema_name FROM {where}"))  # noqa: S608
    where = f"pg_database WHERE datname = {literal}"
    return bool(server.query("postgres", f"SELECT datname FROM {where}"))  # noqa: S608


def auth_revision(server, database: str) -> str | None:
    rows = server.query(database, "SELECT version_num FROM alembic_version_auth")
    return rows[0][0] if rows else None


@functools.cache
def auth_history() -> list[str]:
    """MLflow's auth migrations, oldest first, read with the image's Alembic."""
    code = (
        "import json, mlflow.server.auth.db.utils as u\n"
        "from alembic.script import ScriptDirectory\n"
        "s = ScriptDirectory(str(u._get_alembic_dir()))\n"
        "print(json.dumps([r.revision for r in reversed(list(s.walk_revisions()))]))\n"
    )
    return json.loads(launcher.image_python("-c", code).stdout)


_MIGRATE_AUTH_TO = """
# The auth database as an older release's `migrate` left it: created, then migrated as the
# launcher does (on MySQL its first revision by the launcher), but only up to one revision;
# the launcher's settings, login and TLS.
import os, sys
from mlflow.server.auth.db import utils
from mlflow_launcher import auth, dburl, secret, settings, wait
db = settings.load_db(os.environ)
# Older releases migrated as the master login (the migration Job's MLFLOW_DB_ADMIN_SECRET_ID).
login = os.environ.get("MLFLOW_DB_ADMIN_SECRET_ID") or db.secret_id
url = dburl.build_url(db, secret.fetch_credentials(login, region=db.region))
config = auth.load(os.environ)
auth.create_database(wait.make_engine(url), config.db_name)
engine = wait.make_engine(auth.database_url(url, config))
if engine.dialect.name == "mysql":
    auth._initial_revision_for_mysql(engine, utils.INITIAL_REVISION)
utils.migrate(engine, sys.argv[1])
"""


def migrate_auth_to(env: dict[str, str], revision: str) -> str:
    """Its output."""
    result = launcher.image_python("-c", _MIGRATE_AUTH_TO, revision, env=env, timeout=120)
    return result.stdout + result.stderr


def tables(server, database: str) -> list[str]:
    sql = (
        "SHOW TABLES"
        if server.engine == "mysql"
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    )
    return [row[0] for row in server.query(database, sql)]


_SCHEMA = """
# The auth schema's tables, columns and foreign keys: `deployed`, the auth database the
# launcher's environment names (its login and TLS); `reference`, what MLflow's own auth
# migrations make of an SQLite file.
import json, os, sys, tempfile
from sqlalchemy import create_engine, inspect
if sys.argv[1] == "reference":
    from mlflow.server.auth.db import utils
    engine = create_engine("sqlite:///" + os.path.join(tempfile.mkdtemp(), "auth.db"))
    utils.migrate(engine, "head")
else:
    from mlflow_launcher import auth, dburl, secret, settings, wait
    db = settings.load_db(os.environ)
    url = dburl.build_url(db, secret.fetch_credentials(db.secret_id, region=db.region))
    engine = wait.make_engine(auth.database_url(url, auth.load(os.environ)))
found = inspect(engine)
print(json.dumps({
    table: {
        "columns": sorted(c["name"] for c in found.get_columns(table)),
        "foreign_keys": sorted(
            [k["constrained_columns"], k["referred_table"], k["referred_columns"]]
            for k in found.get_foreign_keys(table)
        ),
    }
    for table in sorted(found.get_table_names())
}))
"""


def auth_schema(env: dict[str, str]) -> dict:
    """The auth schema in the database `env` (the launcher's environment) names."""
    return _schema(env)


@functools.cache
def reference_schema() -> dict:
    """The auth schema MLflow's own migrations make (on SQLite, where they work)."""
    return _schema(None)


def _schema(env: dict[str, str] | None) -> dict:
    kind = "reference" if env is None else "deployed"
    result = launcher.image_python("-c", _SCHEMA, kind, env=env, timeout=120)
    return json.loads(result.stdout.strip().splitlines()[-1])


def foreign_key_names(server, database: str) -> dict[str, list[str]]:
    """MySQL: each table's foreign key constraint names."""
    literal = sql_literal(database, backslash_escapes=True)
    rows = server.query(
        database,
        "SELECT table_name, constraint_name FROM information_schema.table_constraints "  # noqa: S608
        f"WHERE constraint_schema = {literal} AND constraint_type = 'FOREIGN KEY'",
    )
    found: dict[str, list[str]] = {}
    for table, name in rows:
        found.setdefault(table, []).append(name)
    return {table: sorted(names) for table, names in sorted(found.items())}


SERVER_PROCESSES = (b"\0-m\0mlflow_launcher.uvicorn_main\0", b"\0-m\0mlflow\0server\0")


def server_process(server: launcher.Server) -> int:
    """The pid of the process the launcher exec'd into, under tini: uvicorn's supervisor (an
    API pod) or `mlflow server` (the job runner's)."""
    for pid in server.process_tree():
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if any(name in cmdline for name in SERVER_PROCESSES):
                return pid
    raise AssertionError(f"no server process under {server.proc.pid}")


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


# ---------------------------------------------------------------- HTTP ----------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    """By lower-case name."""
    body: str

    def cookie(self) -> str:
        """The Set-Cookie header's name=value, as a browser would send it back."""
        return self.headers["set-cookie"].split(";", 1)[0]


def basic(username: str, password: str) -> str:
    """The Authorization header as MLflow's client and browsers build it (UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def send(
    base_url: str,
    method: str,
    path: str,
    *,
    login: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    json_body: dict | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    headers = dict(headers or {})
    if login is not None:
        headers["Authorization"] = basic(*login)
    data = None
    if form is not None:
        data = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310 - http to loopback only
        f"{base_url}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:  # noqa: S310
            return Response(r.status, _lower(r.headers.items()), r.read().decode())
    except urllib.error.HTTPError as e:
        return Response(e.code, _lower(e.headers.items()), e.read().decode())


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def csrf_token(signup_page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', signup_page)
    assert found, f"no CSRF token in the sign-up form:\n{signup_page[:2000]}"
    return found.group(1)


# ---------------------------------------------------------------- the MLflow client ---------

_CLIENT = r"""
# The real MLflow client; logins come from the environment, as a user's would.
import json, os, sys
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client

uri, step = sys.argv[1], sys.argv[2]
ADMIN = {k[len("ADMIN_"):]: v for k, v in os.environ.items() if k.startswith("ADMIN_MLFLOW_")}
USER = {k[len("USER_"):]: v for k, v in os.environ.items() if k.startswith("USER_MLFLOW_")}


def as_(login):
    os.environ.update(login)


def refused(call):
    try:
        call()
    except MlflowException as e:
        return str(e)
    return None


def write(client, experiment_id, tag):
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "by", tag)
    client.log_metric(run.info.run_id, "loss", 0.5)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


out = {}
if step == "admin":
    import mlflow

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(sys.argv[3])
    run_id = write(client, experiment_id, "admin")
    out = {
        "mlflow": mlflow.__version__,
        "experiment_id": experiment_id,
        "run_id": run_id,
        "params": client.get_run(run_id).data.params,
        "searched": [e.name for e in client.search_experiments()],
    }
elif step == "permissions":
    experiment_id = sys.argv[3]
    as_(ADMIN)
    auth = get_app_client("basic-auth", tracking_uri=uri)
    user = auth.create_user(username=USER["MLFLOW_TRACKING_USERNAME"],
                            password=USER["MLFLOW_TRACKING_PASSWORD"])
    out["created"] = {"username": user.username, "is_admin": user.is_admin}
    as_(USER)
    client = MlflowClient(uri)
    out["read"] = client.get_experiment(experiment_id).name
    out["read_runs"] = len(client.search_runs([experiment_id]))
    out["write_refused"] = refused(lambda: write(client, experiment_id, "user"))
    out["grant_refused_to_user"] = refused(lambda: get_app_client(
        "basic-auth", tracking_uri=uri).grant_user_permission(
            USER["MLFLOW_TRACKING_USERNAME"], resource_type="experiment",
            resource_id=experiment_id, permission="EDIT"))
    as_(ADMIN)
    auth.grant_user_permission(USER["MLFLOW_TRACKING_USERNAME"], resource_type="experiment",
                               resource_id=experiment_id, permission="EDIT")
    out["granted"] = auth.get_user_permission(
        USER["MLFLOW_TRACKING_USERNAME"], resource_type="experiment", resource_id=experiment_id
    ).to_json()
    as_(USER)
    run_id = write(client, experiment_id, "user")
    out["written"] = client.get_run(run_id).data.params
print(json.dumps(out, default=str))
"""


def run_client(
    base_url: str,
    step: str,
    *args: str,
    home: str,
    admin: tuple[str, str] | None = None,
    user: tuple[str, str] | None = None,
) -> dict:
    """A client script step (`admin`: create an experiment and log a run as the admin;
    `permissions`: a user's READ, refused write and EDIT grant) on a user's machine: no AWS,
    nothing of the server's; logins in the environment, never in argv."""
    env = client_env(base_url, home, ADMIN=admin, USER=user)
    if step == "admin" and admin is not None:
        env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = admin
    return launcher.mlflow_client(env, base_url, step, *args, code=_CLIENT)


def client_env(base_url: str, home: str, **logins: tuple[str, str] | None) -> dict[str, str]:
    """A user's machine (no AWS, nothing of the server's) for a client script, each login as
    `<NAME>_MLFLOW_TRACKING_USERNAME`/`_PASSWORD`, which the script swaps into MLflow's own
    variables to act as that user."""
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8"}
    env["MLFLOW_TRACKING_URI"] = base_url
    for name, login in logins.items():
        if login is not None:
            env[f"{name}_MLFLOW_TRACKING_USERNAME"] = login[0]
            env[f"{name}_MLFLOW_TRACKING_PASSWORD"] = login[1]
    return env
