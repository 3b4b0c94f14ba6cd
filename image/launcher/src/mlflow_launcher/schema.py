"""Bring the MLflow schema to head, once, however many replicas start at the same time.

MLflow's own migration code does the work (``mlflow.store.db.utils``); the launcher adds what
it lacks for several pods: a database advisory lock around "check revision, then migrate",
because Alembic upgrades are not transactional and two concurrent ones corrupt the schema.
The lock is session-scoped and lives on its own connection, so the database releases it if the
pod dies mid-migration.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from mlflow_launcher.errors import LauncherError

log = logging.getLogger(__name__)

LOCK_NAME = "mlflow_schema_migration"
# pg_advisory_lock takes a bigint: a fixed key, documented so operators can spot it in pg_locks.
PG_LOCK_KEY = 0x6D6C666C6F77  # "mlflow" in ASCII
LOCK_POLL_SECONDS = 5


def head_revision() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def current_revision(engine: Engine) -> str | None:
    from mlflow.store.db.utils import _get_schema_version

    return _get_schema_version(engine)


def _try_lock(conn: Connection) -> bool:
    if conn.dialect.name == "mysql":
        # GET_LOCK with a short timeout, so the wait can be logged while it lasts.
        got = conn.execute(
            text("SELECT GET_LOCK(:name, :timeout)"),
            {"name": LOCK_NAME, "timeout": LOCK_POLL_SECONDS},
        ).scalar()
        return got == 1
    if conn.dialect.name == "postgresql":
        got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PG_LOCK_KEY}).scalar()
        if not got:
            time.sleep(1)  # pg has no lock-wait timeout argument; poll instead
        return bool(got)
    return True  # SQLite (``local``): one process, nothing to serialise


def _unlock(conn: Connection) -> None:
    if conn.dialect.name == "mysql":
        conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the database-wide migration lock for the duration of the block."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        waited = False
        while not _try_lock(conn):
            if not waited:
                log.info("waiting for the migration lock (another replica is migrating)")
                waited = True
        log.info("acquired the migration lock")
        try:
            yield
        finally:
            _unlock(conn)


def migrate(engine: Engine) -> bool:
    """Bring the schema to head; True if this process changed it, False if it was at head."""
    from mlflow.store.db.utils import _initialize_tables, _is_empty_database, _upgrade_db

    head = head_revision()
    with migration_lock(engine):
        before = current_revision(engine)
        if before == head:
            log.info("schema already at head %s; nothing to migrate", head)
            return False
        if _is_empty_database(engine):
            log.info("empty database: creating the MLflow schema (revision %s)", head)
            _initialize_tables(engine)
        else:
            log.info("upgrading the schema from %s to %s", before, head)
            _upgrade_db(engine)
        after = current_revision(engine)
        if after != head:
            raise LauncherError(f"migration ended at revision {after}, expected head {head}")
        log.info("migrated schema from %s to head %s", before or "empty", head)
        return True


def require_head(engine: Engine) -> None:
    """The server container's check: it never migrates, it refuses a schema not at head."""
    head = head_revision()
    current = current_revision(engine)
    if current != head:
        raise LauncherError(
            f"database schema is at revision {current or '(none: empty database)'}, expected "
            f"head {head}: run `mlflow-launcher migrate` first (the Deployment's initContainer "
            "does); the server container never migrates"
        )
    log.info("schema at head %s", head)
