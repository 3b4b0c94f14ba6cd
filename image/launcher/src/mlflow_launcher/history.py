"""MLflow's migration histories (the tracking store's and the auth database's: each head and
every revision), read from their scripts' source instead of by importing them.

Alembic learns a history by importing each script, and MLflow's scripts import MLflow: asking
MLflow for its head (``mlflow.store.db.utils._get_latest_schema_revision``) cost the server
container about 3 s of CPU before uvicorn's workers started, and reading the auth history
through Alembic imported MLflow's package again (1.4 s of the start). Each script states its
place in the history as module-level literals (``revision = "..."``, ``down_revision =
"..."``); this module reads those with ``ast`` (tens of milliseconds for MLflow 3.17.2). A
script whose place is not plain literals (or which uses Alembic's branch labels or
dependencies) sends the whole read back to importing them, so a future MLflow can make this
slower but not wrong; tests/unit/launcher/test_launcher_history.py checks both readings agree
for the installed MLflow, and that this one imports no MLflow.
"""

from __future__ import annotations

import ast
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow_launcher.errors import LauncherError
from mlflow_launcher.files import mlflow_file

log = logging.getLogger(__name__)

# Alembic's script files: `*.py` but `__init__` and editors' lock files (`.#name`), as in
# alembic.script.base's `_only_source_rev_file`.
_SCRIPT = re.compile(r"(?!\.#|__init__).*\.py$")
_PLACE = ("revision", "down_revision", "branch_labels", "depends_on")


@dataclass(frozen=True)
class History:
    head: str
    known: frozenset[str]


@functools.cache
def tracking() -> History:
    """This image's MLflow tracking history (read once per process)."""
    return _from_source_or(mlflow_file("store", "db_migrations", "versions"), _tracking_by_mlflow)


@functools.cache
def auth() -> History:
    """MLflow's auth history (its own Alembic history and version table; its scripts import
    MLflow too)."""
    return _from_source_or(mlflow_file(*AUTH_MIGRATIONS, "versions"), _auth_by_alembic)


AUTH_MIGRATIONS = ("server", "auth", "db", "migrations")


def _from_source_or(scripts: Path, by_import: Callable[[], History]) -> History:
    history = read(scripts)
    if history is None:
        log.info("the migration scripts in %s are not all plain literals: importing them", scripts)
        history = by_import()
    return history


def read(scripts: Path) -> History | None:
    """The history of the scripts in `scripts`, or None if a script's place in it is not
    plain literals (then only importing it can tell)."""
    downs: dict[str, tuple[str, ...]] = {}
    for path in sorted(scripts.iterdir()):
        if not _SCRIPT.fullmatch(path.name):
            continue
        place = _place(path)
        if place is None:
            return None
        revision, down = place
        downs[revision] = down
    if not downs:
        raise LauncherError(f"no migration scripts in {scripts}: the MLflow install is broken")
    heads = set(downs) - {d for down in downs.values() for d in down}
    if len(heads) != 1:
        # MLflow refuses the same (`_get_latest_schema_revision`).
        raise LauncherError(
            f"MLflow's migration history in {scripts} has {len(heads)} heads "
            f"({', '.join(sorted(heads))}), expected one: the MLflow install is broken"
        )
    [head] = heads
    return History(head, frozenset(downs))


def _place(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """(revision, down revisions) of one script, from its module-level assignments."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_bytes(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in _PLACE:
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                return None
    revision, down = values.get("revision"), values.get("down_revision")
    if values.get("branch_labels") is not None or values.get("depends_on") is not None:
        return None
    if not isinstance(revision, str):
        return None
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
        return revision, tuple(down)
    return None


def _tracking_by_mlflow() -> History:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    script = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    known = frozenset(revision.revision for revision in script.walk_revisions())
    return History(_get_latest_schema_revision(), known)


def _auth_by_alembic() -> History:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(mlflow_file(*AUTH_MIGRATIONS)))
    head = script.get_current_head()
    assert head is not None, "MLflow ships a linear auth migration history"
    return History(head, frozenset(revision.revision for revision in script.walk_revisions()))
