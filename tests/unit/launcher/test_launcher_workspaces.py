"""The one-way door's check reads every table MLflow scopes by workspace: compared with MLflow's
own list (in .venv-image), so an MLflow upgrade that adds one fails here, not in production."""

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mlflow_launcher import workspaces
from mlflow_launcher.errors import LauncherError

IMAGE_PYTHON = Path(__file__).resolve().parents[3] / ".venv-image" / "bin" / "python"


def test_the_tables_are_mlflows():
    listing = subprocess.run(
        [
            str(IMAGE_PYTHON),
            "-c",
            "from mlflow.store.workspace.sqlalchemy_store import _WORKSPACE_ROOT_MODELS as m;"
            "print(' '.join(x.__tablename__ for x in m))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(listing.stdout.split()) == sorted(workspaces.SCOPED_TABLES)


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db'}")
    with engine.begin() as conn:
        for table in workspaces.SCOPED_TABLES:
            conn.execute(text(f"CREATE TABLE {table} (id INTEGER, workspace VARCHAR(63))"))
            conn.execute(text(f"INSERT INTO {table} VALUES (1, 'default')"))  # noqa: S608
    return engine


def test_everything_in_default_starts(engine):
    workspaces.refuse_hidden(engine)


def test_anything_outside_default_is_refused_naming_the_way_back(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO evaluation_datasets VALUES (2, 'team-a')"))
    with pytest.raises(LauncherError) as err:
        workspaces.refuse_hidden(engine)
    message = str(err.value)
    assert "evaluation_datasets in workspace 'team-a'" in message
    assert "mlflow db migrate-to-default-workspace" in message
    assert "server.workspaces" in message
