"""Migrations are safe under replicas: concurrent `migrate` on an empty database all succeed,
exactly one does the work under the advisory lock, and the server container never migrates."""

import subprocess

import itest_launcher as launcher
import pytest

pytestmark = pytest.mark.integration

REPLICAS = 4


def test_concurrent_migrate_on_empty_database(db_server, new_database, moto, test_ca, tmp_path):
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, "unused-bucket"), tmp_path / "home"
    )
    procs = [
        subprocess.Popen(
            [*launcher.entrypoint(), "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(REPLICAS)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0] * REPLICAS, "\n----\n".join(outputs)

    did_work = [o for o in outputs if "migrated schema from empty to head" in o]
    at_head = [o for o in outputs if "schema already at head" in o]
    assert len(did_work) == 1, "\n----\n".join(outputs)
    assert len(at_head) == REPLICAS - 1, "\n----\n".join(outputs)
    assert all("acquired the migration lock" in o for o in outputs)

    head = did_work[0].split("to head ")[1].split()[0]
    rows = target.server.query(target.name, "SELECT version_num FROM alembic_version")
    assert rows == [[head]]
    for output in outputs:
        launcher.assert_no_secret(output, target.password, "migrate output")


def test_serve_refuses_an_unmigrated_database(db_server, new_database, moto, test_ca, tmp_path):
    target = new_database(db_server)
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, "unused-bucket"), tmp_path / "home"
    )
    result = launcher.run(["serve"], env, timeout=120)
    assert result.returncode != 0
    assert "run `mlflow-launcher migrate` first" in result.stderr
    assert "the server container never migrates" in result.stderr
    schema = "DATABASE()" if db_server.engine == "mysql" else "current_schema()"
    sql = f"SELECT table_name FROM information_schema.tables WHERE table_schema = {schema}"  # noqa: S608
    tables = target.server.query(target.name, sql)
    assert tables == [], "serve created tables"
