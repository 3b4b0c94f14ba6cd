"""The test servers themselves: what lets the xdist workers' servers run side by side."""

import itest_launcher as launcher
import itest_template as template
import pytest

pytestmark = pytest.mark.integration


def test_each_mariadb_keeps_its_temporary_files_to_itself(mariadb):
    """A mariadbd that starts deletes every "#sql*" file in its tmpdir, taking them for a
    crash's leftovers. With the default /tmp shared by the workers, one worker's server start
    deleted another worker's mariadb-install-db tables mid-bootstrap, and every MariaDB test
    of that worker errored (CI at d4558a0). Each server has its own tmpdir."""
    (tmpdir,) = mariadb.admin("SELECT @@tmpdir;").split()
    assert tmpdir == str(mariadb.tmpdir), tmpdir
    assert mariadb.tmpdir.is_relative_to(mariadb.base), mariadb.tmpdir


def test_a_store_another_worker_migrated_is_replayed_as_the_login_s(
    db_server, new_database, moto, test_ca, tmp_path, monkeypatch
):
    """itest_template under pytest-xdist: the first worker to migrate a schema set from empty
    leaves a dump; another (its own servers, no template yet) replays it as the migrating login,
    and its `migrate` then finds the store at head. The replayed store is the first one, object
    for object and row for row, and on PostgreSQL its objects are the login's, as if its own
    `migrate` had made them."""
    monkeypatch.setattr(template, "_shared_dir", tmp_path / "shared")
    (tmp_path / "shared").mkdir()
    stores = []
    for worker in ("first", "second"):
        monkeypatch.setattr(template, "_templates", {})  # a worker of its own
        target = new_database(db_server)
        env = launcher.container_env(
            target.contract_env(moto, test_ca.ca, "unused-bucket"), tmp_path / worker
        )
        output = template.migrate(db_server, ["migrate"], env)
        stores.append((target, output))
    (first, from_empty), (second, replayed) = stores
    assert "nothing to migrate" not in from_empty, from_empty
    assert "schema already at head" in replayed, replayed
    assert _store(db_server, second.name) == _store(db_server, first.name)
    if db_server.engine == "postgres":
        assert db_server.owners(second.name) == [second.user]


# PostgreSQL's catalog, public schema: what a migration makes, as data.
_PG_CATALOG = {
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default "
    "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    # pg_constraint, not information_schema: that one names NOT NULLs after OIDs.
    "constraints": "SELECT conrelid::regclass::text, conname, contype FROM pg_constraint "
    "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
    "indexes": "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "sequences": "SELECT sequencename, last_value FROM pg_sequences "
    "WHERE schemaname = 'public' ORDER BY 1",
}


def _store(server, database: str) -> object:
    """What a store holds: MariaDB's dump; PostgreSQL's tables, columns, constraints, indexes
    and sequences from its catalog, and its rows. (A CHECK constraint's text is not compared
    there: PostgreSQL deparses `x IN ('a', 'b')` again when a dump is replayed, as
    `x = ANY (ARRAY[...])` with the casts moved: the same constraint, another text.)"""
    if server.engine == "mysql":
        return server.dump(database)
    found = {name: server.query(database, sql) for name, sql in _PG_CATALOG.items()}
    tables = sorted({table for table, *_ in found["columns"]})
    for table in tables:
        rows = f'SELECT row_to_json(t)::text FROM "{table}" t ORDER BY 1'  # noqa: S608
        found[table] = server.query(database, rows)
    return found
