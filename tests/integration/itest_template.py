"""A store the launcher's `migrate` finds at head, without MLflow's migrations run for it again.

MLflow's ~60 tracking migrations (and the users' database's) cost about 5 s of CPU per store on
either engine; most integration tests migrate only to serve. Here the first such `migrate` of a
session server (per schema set: tracking alone or with the users' database) runs from empty and
its result is kept as a template; every later one starts from a copy of it, and then runs the
real `migrate` all the same: the login, grants and hand-over it makes, its lock, and its check
that both schemas are at head, as on a second replica or a pod's restart. Tests about the
migration itself (test_migrations, test_auth, test_db_login, test_faults, test_tls, the chart's
own run in test_chart_wiring) migrate from empty and do not come here.

The copy: on PostgreSQL `CREATE DATABASE ... TEMPLATE` (the objects' owner then moved to the
test's login, as if its own `migrate` had made them); on MariaDB a `mariadb-dump` of the
template replayed into the test's database (MySQL tables have no owner; the grants are the
login's, which `migrate` gives).

Under pytest-xdist each worker has servers of its own, so each would migrate every schema set
from empty once. The first worker to do so also leaves a dump of it (no owners, no grants) in
the run's directory the workers share (`share_in`), under a file lock per schema set; a worker
that finds one replays it as the migrating login instead of migrating from empty, then keeps
its own template as above.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import itest_launcher as launcher
from itest_auth import DB_NAME_ENV
from itest_chart import AUTH_PREFIX

TEMPLATE_ROLE = "itest_template_owner"
"""PostgreSQL: owns the templates' objects (no login); the databases are the superuser's."""

_templates: dict[tuple, dict[str, str]] = {}
"""(port, engine, schema set, workspace settings) -> {kind (tracking, auth): its template
(PostgreSQL: a database; MariaDB: the dump's SQL)}."""

_shared_dir: Path | None = None


def share_in(directory: Path | None) -> None:
    """Where this process's workers leave and find portable dumps (None: nowhere, one
    process)."""
    global _shared_dir
    _shared_dir = directory


def migrate(server, args: list[str], env: dict[str, str]) -> str:
    """Run the launcher's `args` (the chart's `migrate`) with `env` on a fresh store of
    `server`; asserts it succeeded, returns its output. The store it leaves is at head either
    way."""
    databases = _databases(env)
    schemas = (server.engine, tuple(sorted(databases.values())), _schema_settings(env))
    key = (server.port, *schemas)
    template = _templates.get(key)
    if template is not None:
        owner = _migrating_login(env)
        for database in databases:
            _restore(server, template[databases[database]], database, owner)
        return _run(args, env)
    with _shared_dumps(schemas) as shared:
        if shared:
            owner = _migrating_login(env)
            for database, kind in databases.items():
                _replay(server, shared[kind], database, owner)
        output = _run(args, env)
        _templates[key] = {
            kind: _keep(server, database) for kind, database in _by_kind(databases).items()
        }
        if not shared:
            for kind, database in _by_kind(databases).items():
                mine = _templates[key][kind]
                shared[kind] = mine if server.engine == "mysql" else server.dump(database)
    return output


def _run(args: list[str], env: dict[str, str]) -> str:
    result = launcher.run(args, env)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


@contextlib.contextmanager
def _shared_dumps(schemas: tuple) -> Iterator[dict[str, str]]:
    """The workers' dumps of `schemas` by kind, empty if none has migrated it yet; what the
    caller adds is left for the others. Held under the schema set's lock: a worker that needs
    it while another migrates it waits for that dump rather than migrating again."""
    if _shared_dir is None:
        yield {}
        return
    path = _shared_dir / f"template-{hashlib.sha256(repr(schemas).encode()).hexdigest()[:16]}.json"
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        dumps = json.loads(path.read_text()) if path.exists() else {}
        found = bool(dumps)
        yield dumps
        if dumps and not found:
            written = path.with_suffix(".part")
            written.write_text(json.dumps(dumps))
            written.replace(path)


def _databases(env: dict[str, str]) -> dict[str, str]:
    """The store's databases by name -> kind (tracking, auth)."""
    found = {env["MLFLOW_DB_NAME"]: "tracking"}
    if any(key.startswith(AUTH_PREFIX) for key in env):
        assert DB_NAME_ENV in env, f"sign-in on: name the users' database ({DB_NAME_ENV})"
        found[env[DB_NAME_ENV]] = "auth"
    return found


def _migrating_login(env: dict[str, str]) -> str:
    """Who `migrate` connects as, so owns what it makes (PostgreSQL): the master login of the
    migration Job's secret, else the server's own."""
    import boto3

    secret_id = env.get("MLFLOW_DB_ADMIN_SECRET_ID") or env["MLFLOW_DB_SECRET_ID"]
    client = boto3.client(
        "secretsmanager",
        endpoint_url=env["AWS_ENDPOINT_URL_SECRETS_MANAGER"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    return str(json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])["username"])


def _by_kind(databases: dict[str, str]) -> dict[str, str]:
    return {kind: name for name, kind in databases.items()}


def _schema_settings(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """What could change the schema `migrate` makes: the workspaces setting."""
    return tuple(sorted((k, v) for k, v in env.items() if "WORKSPACE" in k))


def _keep(server, database: str) -> str:
    if server.engine == "mysql":
        return server.dump(database)
    template = f"itest_template_{secrets.token_hex(5)}"
    owners = server.owners(database)
    assert len(owners) == 1, f"{database}: objects of several owners {owners}"
    owner = owners[0]
    server.admin(
        f"DO $$BEGIN CREATE ROLE {TEMPLATE_ROLE} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END$$;"
        f'CREATE DATABASE "{template}" TEMPLATE "{database}";'
    )
    # REASSIGN moves the owner's databases too (the test's own): given back at once.
    owned = server.query(
        "postgres",
        f"SELECT datname FROM pg_database WHERE datdba = '{owner}'::regrole",  # noqa: S608
    )
    server.admin(f'REASSIGN OWNED BY "{owner}" TO {TEMPLATE_ROLE};', template)
    server.admin("".join(f'ALTER DATABASE "{name}" OWNER TO "{owner}";' for [name] in owned))
    return template


def _restore(server, template: str, database: str, owner: str) -> None:
    if server.engine == "mysql":
        _replay(server, template, database, owner)
        return
    server.admin(
        f'DROP DATABASE IF EXISTS "{database}";'
        f'CREATE DATABASE "{database}" TEMPLATE "{template}" OWNER "{owner}";'
    )
    server.admin(f'REASSIGN OWNED BY {TEMPLATE_ROLE} TO "{owner}";', database)


def _replay(server, dump: str, database: str, owner: str) -> None:
    """`dump` (`server.dump`'s, of any server of the engine) replayed into `database`, what it
    makes owned by `owner` (PostgreSQL)."""
    if server.engine == "mysql":
        server.admin(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4;")
        server.admin(dump, database)
        return
    server.admin(
        f'DROP DATABASE IF EXISTS "{database}";CREATE DATABASE "{database}" OWNER "{owner}";'
    )
    server.admin(f'SET ROLE "{owner}";\n{dump}', database)
