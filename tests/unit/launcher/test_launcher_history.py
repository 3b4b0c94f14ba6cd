"""The tracking migration history read from MLflow's scripts' source (mlflow_launcher.history):
the same head and revisions as MLflow's own reading, which imports every script, for the
installed MLflow (in .venv-image) without importing MLflow; and the shapes of history it must
either read right or hand back to MLflow."""

import json
import subprocess
from pathlib import Path

import pytest

from mlflow_launcher import history
from mlflow_launcher.errors import LauncherError

ROOT = Path(__file__).resolve().parents[3]
IMAGE_PYTHON = ROOT / ".venv-image" / "bin" / "python"
LAUNCHER_SRC = ROOT / "image" / "launcher" / "src"

COMPARE = """
import json, sys
from mlflow_launcher import history
ours = {}
for name, parts in (("tracking", ("store", "db_migrations")), ("auth", history.AUTH_MIGRATIONS)):
    found = history.read(history.mlflow_file(*parts, "versions"))
    ours[name] = None if found is None else [found.head, sorted(found.known)]
imported = "mlflow" in sys.modules
from alembic.script import ScriptDirectory
from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision
tracking = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
auth = ScriptDirectory(str(history.mlflow_file(*history.AUTH_MIGRATIONS)))
print(json.dumps({
    "ours": ours,
    "mlflow imported by ours": imported,
    "mlflow": {
        "tracking": [
            _get_latest_schema_revision(), sorted(r.revision for r in tracking.walk_revisions())
        ],
        "auth": [auth.get_current_head(), sorted(r.revision for r in auth.walk_revisions())],
    },
}))
"""


@pytest.mark.parametrize("schema", ["tracking", "auth"])
def test_the_installed_mlflows_histories_are_read_without_importing_it(compared, schema):
    assert compared["ours"][schema] is not None, "read by import: a script is not plain literals"
    assert compared["ours"][schema] == compared["mlflow"][schema]
    assert compared["mlflow imported by ours"] is False


def test_neither_read_is_empty_or_cut_short(compared):
    """MLflow 3.17.2 has 67 tracking revisions and 7 auth ones."""
    assert len(compared["ours"]["tracking"][1]) >= 67
    assert len(compared["ours"]["auth"][1]) >= 7


@pytest.fixture(scope="module")
def compared():
    done = subprocess.run(
        [str(IMAGE_PYTHON), "-c", COMPARE],
        env={"PYTHONPATH": str(LAUNCHER_SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _scripts(tmp_path: Path, **sources: str) -> Path:
    for name, source in sources.items():
        (tmp_path / f"{name}.py").write_text(source)
    return tmp_path


def _script(revision: str, down: str) -> str:
    return (
        f'"""migration {revision}"""\nfrom alembic import op\n\n'
        f"revision = {revision!r}\ndown_revision = {down}\nbranch_labels = None\n"
        "depends_on = None\n\n\ndef upgrade():\n    op.drop_table('x')\n"
    )


def _read(tmp_path: Path, *places: tuple[str, str]) -> history.History | None:
    """The history of scripts at `places`: (revision, down_revision as Python source)."""
    return history.read(
        _scripts(tmp_path, **{f"s{i}": _script(*place) for i, place in enumerate(places)})
    )


def test_a_linear_history_has_its_last_revision_as_head(tmp_path):
    found = _read(tmp_path, ("a1", "None"), ("b2", "'a1'"), ("c3", "'b2'"))
    assert found == history.History("c3", frozenset({"a1", "b2", "c3"}))


def test_a_merge_revision_closes_both_branches(tmp_path):
    found = _read(tmp_path, ("a1", "None"), ("b2", "'a1'"), ("c3", "'a1'"), ("d4", "('b2', 'c3')"))
    assert found is not None and found.head == "d4"


def test_annotated_assignments_are_read_too(tmp_path):
    """Newer Alembic templates write `revision: str = "..."`."""
    found = history.read(
        _scripts(
            tmp_path,
            a='revision: str = "a1"\ndown_revision: str | None = None\n',
            b='revision: str = "b2"\ndown_revision: str | None = "a1"\n',
        )
    )
    assert found == history.History("b2", frozenset({"a1", "b2"}))


def test_files_alembic_skips_are_skipped(tmp_path):
    found = history.read(
        _scripts(
            tmp_path,
            a=_script("a1", "None"),
            __init__="revision = 'not-a-script'\n",
            notes="",
        )
    )
    # notes.py has no revision: Alembic would refuse it, and so must this read.
    assert found is None
    (tmp_path / "notes.py").unlink()
    (tmp_path / ".#a.py").write_text("revision = 'lock-file'\n")
    (tmp_path / "README").write_text("revision = 'not python'\n")
    assert history.read(tmp_path) == history.History("a1", frozenset({"a1"}))


@pytest.mark.parametrize(
    "source",
    [
        "revision = 'b2'\ndown_revision = PREVIOUS\n",  # a name: only importing can tell
        "revision = make()\ndown_revision = 'a1'\n",
        "revision = 'b2'\ndown_revision = 'a1'\nbranch_labels = ('x',)\n",
        "revision = 'b2'\ndown_revision = 'a1'\ndepends_on = 'a1'\n",
        "revision = 'b2'\ndown_revision = 7\n",
    ],
)
def test_a_place_that_is_not_plain_literals_is_left_to_mlflow(tmp_path, source):
    assert history.read(_scripts(tmp_path, a=_script("a1", "None"), b=source)) is None


def test_two_heads_are_refused_as_mlflow_refuses_them(tmp_path):
    with pytest.raises(LauncherError, match=r"has 2 heads \(b2, c3\), expected one"):
        _read(tmp_path, ("a1", "None"), ("b2", "'a1'"), ("c3", "'a1'"))


def test_no_scripts_at_all_is_a_broken_install(tmp_path):
    with pytest.raises(LauncherError, match="no migration scripts"):
        history.read(tmp_path)
