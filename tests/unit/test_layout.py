"""The house rules the code's shape depends on, checked on every module's imports.

Imports run one way (app -> stacks -> constructs_lib -> k8s_charts); the library is imported
only through its distinct name, `mlflow_on_eks` (a bare `constructs_lib` would load a second
copy of every module, whose classes fail isinstance checks against the first); only the charts
import cdk8s-plus.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = {
    "k8s_charts": {"mlflow_on_eks.constructs_lib", "stacks", "config", "aws_cdk"},
    "constructs_lib": {"stacks", "config"},
    "stacks": {"app"},
    "config": {"stacks"},
}
"""For each folder, the imports it must not make (module name prefixes)."""


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _python_files() -> list[Path]:
    folders = ("app.py", "config", "stacks", "constructs_lib", "k8s_charts", "tests", "bench")
    files: list[Path] = []
    for name in folders:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(f"{prefix}.")


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_imports_run_one_way(folder: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imports(path)
        if any(_under(name, banned) for banned in LAYERS[folder])
    ]
    assert wrong == []


def test_the_library_is_imported_by_its_distinct_name_only() -> None:
    bare = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _python_files()
        for name in _imports(path)
        if _under(name, "constructs_lib") or _under(name, "k8s_charts")
    ]
    assert bare == []


def test_only_the_charts_import_cdk8s_plus() -> None:
    outside = [
        str(path.relative_to(ROOT))
        for path in _python_files()
        if not path.is_relative_to(ROOT / "k8s_charts")
        and any(_under(name, "cdk8s_plus_27") for name in _imports(path))
    ]
    assert outside == []
