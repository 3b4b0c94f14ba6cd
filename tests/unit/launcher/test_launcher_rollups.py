"""The launcher's check for SQL trace rollups left behind (mlflow_launcher.rollups) is MLflow's:
the same tables (compared with MLflow's own list, in .venv-image), the same reading of the
variable, and on the same SQLite store the same verdict as MLflow's
`validate_sql_trace_rollup_startup`, which `mlflow server` calls before it starts."""

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mlflow_launcher import rollups
from mlflow_launcher.errors import LauncherError

IMAGE_PYTHON = Path(__file__).resolve().parents[3] / ".venv-image" / "bin" / "python"

# In the image's Python: MLflow's tables, and MLflow's verdict on a store it makes itself (the
# rollup tables from its own models), empty, then with one row, with the variable unset and set.
MLFLOW = """
import json, os, sys
import sqlalchemy as sa
from mlflow.exceptions import MlflowException
from mlflow.store.db.trace_rollups import _BUILT_FAMILIES, FAMILY_MODEL
from mlflow.tracing.trace_rollup_service import validate_sql_trace_rollup_startup

uri = f"sqlite:///{sys.argv[1]}"
engine = sa.create_engine(uri)
tables = [FAMILY_MODEL[family].__table__ for family in _BUILT_FAMILIES]
for table in tables:
    table.create(engine)

def verdicts():
    out = {}
    for value in (None, "true", "0"):
        os.environ.pop("MLFLOW_SQL_TRACE_ROLLUPS_ENABLED", None)
        if value is not None:
            os.environ["MLFLOW_SQL_TRACE_ROLLUPS_ENABLED"] = value
        try:
            validate_sql_trace_rollup_startup(uri)
            out[str(value)] = "starts"
        except MlflowException:
            out[str(value)] = "refused"
    return out

empty = verdicts()
with engine.begin() as connection:
    connection.execute(sa.text(
        "INSERT INTO sql_span_cost_daily_rollups "
        + "(id, experiment_id, rollup_day, metric_name, grouping_set, sample_count)"
        + " VALUES (1, 0, '2026-01-01', 'cost', 'all', 1)"
    ))
print(json.dumps({"tables": [t.name for t in tables], "empty": empty, "one row": verdicts()}))
"""


@pytest.fixture(scope="module")
def mlflows(tmp_path_factory):
    store = tmp_path_factory.mktemp("rollups") / "mlflow.db"
    done = subprocess.run(
        [str(IMAGE_PYTHON), "-c", MLFLOW, str(store)],
        capture_output=True,
        text=True,
        check=True,
    )
    return store, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_tables_are_mlflows(mlflows):
    _, found = mlflows
    assert sorted(found["tables"]) == sorted(rollups.TABLES)


def _ours(store: Path, value: str | None) -> str:
    env = {} if value is None else {rollups.ENABLED: value}
    try:
        rollups.refuse_left_behind(create_engine(f"sqlite:///{store}"), env)
    except LauncherError:
        return "refused"
    return "starts"


def test_the_verdicts_are_mlflows_on_the_store_mlflow_made(mlflows):
    store, found = mlflows
    # The store now holds the row MLflow's run added.
    assert found["empty"] == {"None": "starts", "true": "starts", "0": "starts"}
    assert found["one row"] == {"None": "refused", "true": "starts", "0": "refused"}
    ours = {value: _ours(store, None if value == "None" else value) for value in found["one row"]}
    assert ours == found["one row"]


def test_the_refusal_names_the_tables_and_both_ways_out(mlflows):
    store, _ = mlflows
    with pytest.raises(LauncherError) as err:
        rollups.refuse_left_behind(create_engine(f"sqlite:///{store}"), {})
    message = str(err.value)
    assert "(sql_span_cost_daily_rollups)" in message
    assert "server.extra_env MLFLOW_SQL_TRACE_ROLLUPS_ENABLED: 'true'" in message
    assert "mlflow db delete-trace-rollups" in message


def test_a_store_without_the_tables_starts(tmp_path):
    """A store whose schema has no rollup tables (an older head) has nothing left behind."""
    rollups.refuse_left_behind(create_engine(f"sqlite:///{tmp_path / 'empty.db'}"), {})


@pytest.mark.parametrize("value", ["TRUE", "True", "1"])
def test_every_spelling_of_true_turns_the_check_off(value):
    assert rollups.enabled({rollups.ENABLED: value})


@pytest.mark.parametrize("value", ["", "yes", "on", "2"])
def test_a_value_mlflow_would_refuse_is_refused_once(value):
    with pytest.raises(LauncherError, match="MLflow takes true, false, 1 or 0"):
        rollups.enabled({rollups.ENABLED: value})


def test_the_tables_empty_start(mlflows, tmp_path):
    store, _ = mlflows
    emptied = tmp_path / "emptied.db"
    emptied.write_bytes(store.read_bytes())
    engine = create_engine(f"sqlite:///{emptied}")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM sql_span_cost_daily_rollups"))
    assert _ours(emptied, None) == "starts"
