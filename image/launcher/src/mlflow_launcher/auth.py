"""MLflow's basic-auth app: settings from the ConfigMap, secrets from Secrets Manager, its own
database on the backend store's instance, and the config file MLflow reads.

`migrate` creates the auth database and brings it to head under the schema lock (MLflow's
workers would otherwise race each other's Alembic upgrades on a first start); `serve` checks it
is at head, writes the config file into the pod's scratch space and hands the secrets to
`mlflow server` in its environment, never in argv.
"""

from __future__ import annotations

import configparser
import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from mlflow_launcher import contract, history, secret, settings
from mlflow_launcher.app import AUTH_ENV, BASIC_AUTH
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.files import mlflow_file, write_private
from mlflow_launcher.schema import refuse_newer
from mlflow_launcher.snapshot import SchemaChange
from mlflow_launcher.wait import driver_message

log = logging.getLogger(__name__)

ADMIN_SECRET_ENV = contract.AUTH_ADMIN_SECRET_ID.name
CACHE_ENV = contract.AUTH_CACHE_SECONDS.name
"""Optional: how long each server process remembers a successful sign-in check (0: never)."""
CONFIG_FILE = "mlflow-auth/basic_auth.ini"
"""Under TMPDIR (the pod's emptyDir): the only writable place, and private to the pod."""
BASIC_AUTH_FUNCTION = "mlflow.server.auth:authenticate_request_basic_auth"
"""MLflow's own `authorization_function` (mlflow.server.auth.config's default)."""
GRANT_DEFAULT_WORKSPACE_ACCESS: bool = contract.AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS.default  # type: ignore[assignment]


@dataclass(frozen=True)
class AuthEnvironment:
    admin_secret_id: str
    flask_secret_id: str
    kek_secret_id: str
    default_permission: str
    db_name: str
    cache_seconds: int = contract.AUTH_CACHE_SECONDS.default  # type: ignore[assignment]
    grant_default_workspace_access: bool = GRANT_DEFAULT_WORKSPACE_ACCESS


@dataclass(frozen=True)
class AuthSecrets:
    admin: secret.Credentials
    flask_secret_key: str = field(repr=False)
    kek_passphrase: str = field(repr=False)

    def values(self) -> list[str]:
        """Every secret value, for the log mask."""
        return [self.admin.password, self.flask_secret_key, self.kek_passphrase]


def load(env: Mapping[str, str]) -> AuthEnvironment | None:
    """None when authentication is off (none of the variables set); all or nothing."""
    names = [variable.name for variable in contract.AUTH]
    present = [name for name in names if env.get(name, "").strip()]
    if not present:
        return None
    missing = [name for name in names if name not in present]
    if missing:
        raise LauncherError(
            f"authentication is half configured: {', '.join(missing)} unset (the chart sets "
            "all of the MLFLOW_AUTH_* variables, or none to run without authentication)"
        )
    values = settings.parse(
        env,
        *contract.AUTH,
        contract.AUTH_CACHE_SECONDS,
        contract.AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS,
    )
    v = contract
    return AuthEnvironment(
        admin_secret_id=values[v.AUTH_ADMIN_SECRET_ID.name],
        flask_secret_id=values[v.AUTH_FLASK_SECRET_ID.name],
        kek_secret_id=values[v.AUTH_KEK_SECRET_ID.name],
        default_permission=values[v.AUTH_DEFAULT_PERMISSION.name],
        db_name=values[v.AUTH_DB_NAME.name],
        cache_seconds=values[v.AUTH_CACHE_SECONDS.name],
        grant_default_workspace_access=values[v.AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS.name],
    )


def fetch_secrets(auth: AuthEnvironment, *, region: str | None) -> AuthSecrets:
    return AuthSecrets(
        admin=secret.fetch_credentials(auth.admin_secret_id, region=region),
        flask_secret_key=secret.fetch_string(auth.flask_secret_id, region=region),
        kek_passphrase=secret.fetch_string(auth.kek_secret_id, region=region),
    )


def database_url(store_url: URL, auth: AuthEnvironment) -> URL:
    """The auth database: the backend store's server, login and TLS, another database."""
    return store_url.set(database=auth.db_name)


def create_database(engine: Engine, name: str) -> None:
    """Create the auth database on the store's server unless it exists (the store's login
    owns the instance: RDS's master user may create databases)."""
    try:
        exists = _create_database(engine, name)
    except SQLAlchemyError as exc:
        raise LauncherError(
            f"cannot create the auth database {name}: {driver_message(exc)} (the database "
            "login needs the CREATE privilege, or create the database yourself)"
        ) from None
    if not exists:
        log.info("created the auth database %s", name)


def _create_database(engine: Engine, name: str) -> bool:
    """Whether it existed already."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.dialect.name == "mysql":
            exists = conn.execute(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"),
                {"n": name},
            ).first()
            if not exists:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        elif conn.dialect.name == "postgresql":
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        else:
            return True  # SQLite (`local`): a database is a file, created on first connect
    return exists is not None


def _migrations() -> str:
    """MLflow's auth migrations, found without importing mlflow.server.auth: that package
    builds its Flask app and store on import, seconds that `serve` should not spend."""
    return str(mlflow_file(*history.AUTH_MIGRATIONS))


def revisions(engine: Engine) -> tuple[str | None, str]:
    """(current, head) of the auth schema (its own Alembic history and version table); a
    current revision a newer MLflow wrote is refused here (schema.refuse_newer), before
    anything changes. The history is read from the scripts' source (history.py): importing
    them imports MLflow."""
    from alembic.migration import MigrationContext

    known = history.auth()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": "alembic_version_auth"})
        current = context.get_current_revision()
    where = f"the auth schema in database {engine.url.database}"
    refuse_newer(where, current, known.head, known.known)
    return current, known.head


def migrate(engine: Engine, before_change: Callable[[SchemaChange], object] | None = None) -> bool:
    """Bring the auth schema to head (what `python -m mlflow.server.auth db upgrade` does);
    call with the schema lock held. True if this changed it. `before_change(change)` runs first
    when existing users' schema is about to change."""
    before, head = revisions(engine)
    if before == head:
        log.info("auth schema already at head %s; nothing to migrate", head)
        return False
    # Only now, as in schema._to_head: MLflow's auth package builds its app on import (0.8 s).
    from mlflow.server.auth.db import utils as auth_db

    if before is not None and before_change is not None:
        before_change(SchemaChange("auth", before, head))
    if before is None and engine.dialect.name == "mysql":
        _initial_revision_for_mysql(engine, auth_db.INITIAL_REVISION)
    auth_db.migrate(engine, head)
    after, _ = revisions(engine)
    if after != head:
        raise LauncherError(f"auth migration ended at revision {after}, expected head {head}")
    log.info("migrated the auth schema from %s to head %s", before or "empty", head)
    return True


# MLflow's first auth revision names both of its foreign keys `fk_user_id`. MySQL and MariaDB
# want constraint names unique in a database, so that migration fails there ("errno: 121
# Duplicate key on write or update"; mlflow/mlflow#9642, #10964). The launcher creates that
# revision's tables itself on MySQL, the second key named apart, and stamps the revision; MLflow's
# own migrations do the rest. No later revision names either key.
_MYSQL_RENAMED_FOREIGN_KEY = "fk_registered_model_perm_user_id"


def _initial_tables() -> sa.MetaData:
    """The tables of MLflow's auth revision 8606fa83a998 (its migration script, verbatim but
    for the one foreign key's name)."""
    metadata = sa.MetaData()
    sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False, primary_key=True),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=True),
        sa.UniqueConstraint("username"),
    )
    sa.Table(
        "experiment_permissions",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False, primary_key=True),
        sa.Column("experiment_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("permission", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_id"),
        sa.UniqueConstraint("experiment_id", "user_id", name="unique_experiment_user"),
    )
    sa.Table(
        "registered_model_permissions",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False, primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("permission", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=_MYSQL_RENAMED_FOREIGN_KEY),
        sa.UniqueConstraint("name", "user_id", name="unique_name_user"),
    )
    return metadata


def _initial_revision_for_mysql(engine: Engine, revision: str) -> None:
    """Create what is missing of the initial revision's tables and stamp it (idempotent: a
    run that died half way is completed by the next)."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    _initial_tables().create_all(engine, checkfirst=True)
    with engine.begin() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": "alembic_version_auth"})
        context.stamp(ScriptDirectory(_migrations()), revision)
    log.info("created the initial auth tables (revision %s) for MySQL", revision)


def require_head(engine: Engine) -> None:
    """The server never migrates the auth schema either: MLflow's workers would race."""
    name = engine.url.database
    try:
        current, head = revisions(engine)
    except SQLAlchemyError as exc:
        # Most often the database does not exist yet: `migrate` creates it.
        raise LauncherError(
            f"cannot read the auth schema's revision in database {name}: "
            f"{driver_message(exc)}: run `mlflow-launcher migrate` first (the migration "
            "Job does; it creates the database)"
        ) from None
    if current != head:
        raise LauncherError(
            f"auth schema in database {name} is at revision "
            f"{current or '(none: new database)'}, expected head {head}: run "
            "`mlflow-launcher migrate` first (the migration Job does); the server "
            "container never migrates"
        )
    log.info("auth schema at head %s", head)


def write_config(
    directory: Path,
    *,
    database_uri: str,
    default_permission: str,
    admin_username: str,
    cache_seconds: int = 0,
    authorization_function: str = BASIC_AUTH_FUNCTION,
    grant_default_workspace_access: bool = False,
) -> Path:
    """The file MLFLOW_AUTH_CONFIG_PATH names. It holds the auth database's URI, password
    included (MLflow reads it from nowhere else), so it is readable by this user only.

    `cache_seconds` is MLflow's `auth_cache_ttl_seconds`: a server process remembers a
    successful check of a user's password (keyed by an HMAC of it) for that long, so a client's
    stream of requests does not pay a deliberately slow password hash on every call.

    `authorization_function` decides who a request is: MLflow's Basic check, or single
    sign-on's (mlflow_launcher.sso.mlflow_auth.FUNCTION), which falls back to it.

    `grant_default_workspace_access` matters only with workspaces on: a user without a role in
    the `default` workspace then still gets `default_permission` there (without it, MLflow
    grants nothing in any workspace but through roles)."""
    path = directory / CONFIG_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = configparser.ConfigParser()
    # MLflow reads the file with ConfigParser's default interpolation: a literal `%` (the
    # URI's percent-encoding, or one in the admin's name) must be written `%%`.
    values = {
        "default_permission": default_permission,
        "database_uri": database_uri,
        "admin_username": admin_username,
        "authorization_function": authorization_function,
        "auth_cache_ttl_seconds": str(cache_seconds),
        "grant_default_workspace_access": str(grant_default_workspace_access).lower(),
    }
    config["mlflow"] = {key: value.replace("%", "%%") for key, value in values.items()}
    text = io.StringIO()
    config.write(text)
    return write_private(path, text.getvalue())


def server_env(secrets: AuthSecrets, config_path: Path) -> dict[str, str]:
    """What MLflow's basic-auth app reads from its environment, and the switch that has
    mlflow_launcher.app build it."""
    return {
        AUTH_ENV: BASIC_AUTH,
        "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
        "MLFLOW_AUTH_ADMIN_USERNAME": secrets.admin.username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": secrets.admin.password,
        # The same on every replica: a session or CSRF token one pod signed, another accepts.
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.flask_secret_key,
        "MLFLOW_CRYPTO_KEK_PASSPHRASE": secrets.kek_passphrase,
    }
