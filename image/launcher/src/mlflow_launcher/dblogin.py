"""The server's own database login, made and kept by `migrate` with the instance's master login.

MLflow never runs as RDS's master user: the server pods read a login of their own
(MLFLOW_DB_SECRET_ID) that may use MLflow's two databases and nothing else of the instance, and
only the migration Job reads the master login (MLFLOW_DB_ADMIN_SECRET_ID). Before it migrates,
that Job makes sure, every time (idempotent, so a changed password or a restored snapshot is
put right by the next deploy):

- the login exists, with the password its secret holds, and requires TLS (MySQL);
- the tracking and the auth database exist and the login has everything on them: on MySQL every
  privilege on the two databases; on PostgreSQL it owns them, their public schema and every
  object a master-run migration created there (earlier releases migrated as master);
- then the migrations run as that login, so what they create is its own.

No password is sent in clear text of a statement on PostgreSQL: the role gets a SCRAM-SHA-256
verifier computed here (as `psql \\password` does), so even a statement logged on error shows
no password. MySQL and MariaDB mask the password of CREATE/ALTER USER in their logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from mlflow_launcher import contract, wait
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.secret import Credentials
from mlflow_launcher.wait import driver_message

log = logging.getLogger(__name__)

ADMIN_SECRET_ENV = contract.DB_ADMIN_SECRET_ID.name
"""The instance's master login (RDS-generated secret); set for the migration Job only."""
MAINTENANCE_DATABASE = {"mysql": "", "postgres": "postgres"}
"""Where the master login connects: no database on MySQL, PostgreSQL's `postgres` (every RDS
for PostgreSQL instance has it). Not MLflow's own: on an existing instance those do not exist
until `ensure` makes them."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
"""Logins and databases needing no quoting anywhere (MySQL's user names: 32 characters)."""
MYSQL_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, "
    "ALTER ROUTINE, EVENT, TRIGGER"
)
"""Every privilege MySQL grants on one database (its ALL at that level), named: RDS's master
user holds each with GRANT OPTION, while ALL would also ask for what it lacks where a server
adds privileges of its own (MariaDB's DELETE HISTORY)."""
SCRAM_ITERATIONS = 4096
"""PostgreSQL's own default (scram_iterations, PostgreSQL 16+; fixed at 4096 before)."""


def ensure(admin: Engine, login: Credentials, databases: Sequence[str]) -> None:
    """As the master login (`admin`'s): `login` exists with its password and has everything on
    each of `databases` (created if missing), and on nothing else."""
    for name in (login.username, *databases):
        if not _NAME.fullmatch(name):
            raise LauncherError(
                f"{name!r} is not a plain database or login name (letters, digits, _; at most "
                "32 characters): the server's login and databases must need no quoting"
            )
    try:
        if admin.dialect.name == "mysql":
            _mysql(admin, login, databases)
        else:
            _postgres(admin, login, databases)
    except SQLAlchemyError as exc:
        raise LauncherError(
            f"cannot make the server's database login {login.username} with the master login: "
            f"{driver_message(exc)} (the master login needs CREATE USER and GRANT OPTION on "
            "MySQL, CREATEROLE and CREATEDB on PostgreSQL, as RDS's master user has)"
        ) from None
    log.info(
        "database login %s has %s and nothing else of the instance",
        login.username,
        " and ".join(databases),
    )


def _mysql(admin: Engine, login: Credentials, databases: Sequence[str]) -> None:
    user = f"'{login.username}'@'%'"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in databases:
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4"))
        # IF NOT EXISTS, then ALTER: the password follows the secret on every run.
        conn.execute(
            text(f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY :password REQUIRE SSL"),
            {"password": login.password},
        )
        conn.execute(
            text(f"ALTER USER {user} IDENTIFIED BY :password REQUIRE SSL"),
            {"password": login.password},
        )
        for name in databases:
            conn.execute(text(f"GRANT {MYSQL_PRIVILEGES} ON `{name}`.* TO {user}"))


def _postgres(admin: Engine, login: Credentials, databases: Sequence[str]) -> None:
    role = f'"{login.username}"'
    verifier = scram_verifier(login.password)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": login.username}
        ).first()
        verb = "ALTER" if exists else "CREATE"
        # A SCRAM verifier is no password: safe in the statement's text. (Sent as is: its
        # base64 and colons are no bind parameters.)
        conn.exec_driver_sql(f"{verb} ROLE {role} LOGIN PASSWORD '{verifier}'")
        # The master may then hand its objects over (ALTER ... OWNER TO needs membership).
        conn.execute(text(f"GRANT {role} TO CURRENT_USER"))
        for name in databases:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if found:
                conn.execute(text(f'ALTER DATABASE "{name}" OWNER TO {role}'))
            else:
                conn.execute(text(f'CREATE DATABASE "{name}" OWNER {role}'))
    for name in databases:
        with (
            wait.engine_for(admin.url.set(database=name)) as engine,
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        ):
            _hand_over(conn, login.username)


def _hand_over(conn: Connection, owner: str) -> None:
    """Give `owner` the public schema and whatever the connected login owns in it (what
    earlier releases' migrations, run as master, created)."""
    conn.execute(text(f'ALTER SCHEMA public OWNER TO "{owner}"'))
    statements = conn.execute(
        text(
            """
            SELECT format('ALTER %s %s OWNER TO %I',
                          CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                         WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                          c.oid::regclass, :owner)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
              AND pg_get_userbyid(c.relowner) = current_user
              AND NOT (c.relkind = 'S' AND EXISTS (
                  SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
            UNION ALL
            SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, :owner)
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
              AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
              AND pg_get_userbyid(t.typowner) = current_user
            UNION ALL
            SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :owner)
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) = current_user
            """
        ),
        {"owner": owner},
    ).scalars()
    for statement in list(statements):
        conn.execute(text(statement))


def scram_verifier(password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677; the
    format of PostgreSQL's pg_authid.rolpassword)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
