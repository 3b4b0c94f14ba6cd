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
import math
import time
from collections.abc import Callable, Iterator

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from mlflow_launcher import history
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.settings import DEFAULT_MIGRATION_LOCK_TIMEOUT_SECONDS, LOCK_TIMEOUT_ENV
from mlflow_launcher.snapshot import SchemaChange
from mlflow_launcher.wait import driver_message

log = logging.getLogger(__name__)

LOCK_NAME = "mlflow_schema_migration"
# pg_advisory_lock takes a bigint: a fixed key, documented so operators can spot it in pg_locks.
PG_LOCK_KEY = 0x6D6C666C6F77  # "mlflow" in ASCII
LOCK_POLL_SECONDS = 5  # one try's wait at most; the deadline is checked between tries
PG_POLL_SECONDS = 1


def head_revision() -> str:
    return history.tracking().head


def known_revisions() -> frozenset[str]:
    """Every revision of this MLflow's tracking migration history."""
    return history.tracking().known


def current_revision(engine: Engine) -> str | None:
    """The store's revision, read as MLflow reads it (``_get_schema_version``: Alembic's
    version table; None when there is none)."""
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def refuse_newer(what: str, current: str | None, head: str, known: frozenset[str]) -> None:
    """Refuse a schema at a revision this MLflow's history lacks: a newer MLflow migrated it.

    Before anything else looks at it, so that nothing changes and no snapshot is taken: MLflow
    would otherwise try to upgrade from a revision it cannot find (Alembic's "Can't locate
    revision"), after the snapshot guard had taken a snapshot for a change that never comes.
    This is what a rollback meets when the release it rolls back from migrated the schema; the
    way out is forward, or back with the data (docs/operations.md, "Rolling back")."""
    if current is None or current in known:
        return
    raise LauncherError(
        f"{what} is at revision {current}, which this image's MLflow ({_mlflow_version()}, "
        f"head {head}) does not know: a newer MLflow migrated it; deploy that version again, "
        "or restore the snapshot taken before the upgrade (docs/operations.md, Rolling back)"
    )


def _mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


def _try_lock(conn: Connection, wait: float) -> bool:
    """Take the lock, waiting at most about ``wait`` seconds (0: one try, no wait)."""
    if conn.dialect.name == "mysql":
        # GET_LOCK waits in the server; whole seconds, as MySQL's docs only promise those.
        got = conn.execute(
            text("SELECT GET_LOCK(:name, :timeout)"),
            {"name": LOCK_NAME, "timeout": math.ceil(wait)},
        ).scalar()
        return got == 1
    if conn.dialect.name == "postgresql":
        got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PG_LOCK_KEY}).scalar()
        if not got and wait:
            time.sleep(min(wait, PG_POLL_SECONDS))  # pg has no lock-wait timeout; poll instead
        return bool(got)
    return True  # SQLite (``local``): one process, nothing to serialise


def _holder(conn: Connection) -> tuple[str, str]:
    """Who holds the lock and the statement that ends its session, as far as the server says."""
    try:
        if conn.dialect.name == "mysql":
            cid = conn.execute(text("SELECT IS_USED_LOCK(:name)"), {"name": LOCK_NAME}).scalar()
            if cid is not None:
                return f"MySQL connection id {cid}", f"`KILL {cid}`"
        else:
            # pg_locks shows a bigint key split in two: high half in classid, low half in objid
            # (objsubid 1). Advisory locks are per database, hence the database filter.
            pid = conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND objsubid = 1 AND (classid::bigint << 32 | objid::bigint) = :key"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ),
                {"key": PG_LOCK_KEY},
            ).scalar()
            if pid is not None:
                return f"PostgreSQL backend pid {pid}", f"`SELECT pg_terminate_backend({pid})`"
    except Exception as exc:  # naming the holder is a nicety; the timeout error must still come
        log.warning(
            "could not ask the database who holds the migration lock: %s", driver_message(exc)
        )
    return "an unknown session", "`KILL <id>` (MySQL) or `SELECT pg_terminate_backend(<pid>)`"


def _unlock(conn: Connection) -> None:
    if conn.dialect.name == "mysql":
        conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})


@contextlib.contextmanager
def migration_lock(
    engine: Engine, timeout: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_SECONDS
) -> Iterator[None]:
    """Hold the database-wide migration lock for the duration of the block.

    The wait is bounded: a session lost mid-migration (node gone) can keep the lock for hours
    (MySQL's wait_timeout is 8 h by default), and an unbounded wait would leave every new pod
    in Init with no message. Failing names the holder, so the operator can end its session.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        deadline = time.monotonic() + timeout
        wait = 0.0  # the first try does not wait, so the log says at once what the pod waits for
        while not _try_lock(conn, wait):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holder, end = _holder(conn)
                raise LauncherError(
                    f"waited {timeout:g} s for the migration lock, held by {holder}: if no other "
                    f"pod is migrating, a lost session still holds it; end it with {end} or wait "
                    f"for that session to time out; if a migration really takes longer, raise "
                    f"{LOCK_TIMEOUT_ENV}"
                )
            if not wait:
                log.info(
                    "waiting for the migration lock (another replica is migrating; giving up "
                    "after %g s, %s)",
                    timeout,
                    LOCK_TIMEOUT_ENV,
                )
            wait = min(LOCK_POLL_SECONDS, remaining)
        log.info("acquired the migration lock")
        try:
            yield
        finally:
            _unlock(conn)


def migrate(
    engine: Engine,
    lock_timeout: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_SECONDS,
    *,
    then: Callable[[], object] | None = None,
    before_change: Callable[[SchemaChange], object] | None = None,
) -> bool:
    """Bring the schema to head, then run `then` (another schema's migration) under the same
    lock; True if this process changed the store's schema, False if it was at head.
    `before_change(change)` runs first when a schema that holds data is about to change."""
    with migration_lock(engine, lock_timeout):
        changed = _to_head(engine, before_change)
        if then is not None:
            then()
        return changed


def _to_head(engine: Engine, before_change: Callable[[SchemaChange], object] | None = None) -> bool:
    head = head_revision()
    before = current_revision(engine)
    if before == head:
        log.info("schema already at head %s; nothing to migrate", head)
        return False
    # Only now: importing MLflow's store costs about 1.4 s of CPU, which the migration Job of
    # every deploy that changes no schema (most of them) need not spend.
    from mlflow.store.db.utils import _initialize_tables, _is_empty_database, _upgrade_db

    refuse_newer("the database schema", before, head, known_revisions())
    if _is_empty_database(engine):
        log.info("empty database: creating the MLflow schema (revision %s)", head)
        _initialize_tables(engine)
    else:
        if before_change is not None:
            before_change(SchemaChange("tracking", before, head))
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
        refuse_newer("the database schema", current, head, known_revisions())
        raise LauncherError(
            f"database schema is at revision {current or '(none: empty database)'}, expected "
            f"head {head}: run `mlflow-launcher migrate` first (the migration Job does); the "
            "server container never migrates"
        )
    log.info("schema at head %s", head)
