"""The house rules the code's shape depends on, checked on every module's imports.

Imports run one way (app -> stacks -> constructs_lib -> k8s_charts); the library is imported
only through its distinct name, `mlflow_on_eks` (a bare `constructs_lib` would load a second
copy of every module, whose classes fail isinstance checks against the first); only the charts
import cdk8s-plus. Inside the library, modules import each other relatively.
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


LIBRARY = ("constructs_lib", "k8s_charts")
"""The library's folders: installed as mlflow_on_eks.<folder>, importing each other relatively."""


def _package(path: Path) -> list[str]:
    """The dotted package a file is in, as imported: the library's under mlflow_on_eks."""
    parts = list(path.relative_to(ROOT).parent.parts)
    return ["mlflow_on_eks", *parts] if parts and parts[0] in LIBRARY else parts


def _imports(path: Path, *, relative: bool = True) -> set[str]:
    """Absolute names of what a file imports; relative imports resolved (or left out)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level and relative:
            package = _package(path)
            base = package[: len(package) - (node.level - 1)]
            names.add(".".join([*base, *([node.module] if node.module else [])]))
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


def test_the_library_imports_itself_relatively() -> None:
    """Type checkers and IDEs follow relative imports within the package; an absolute
    `mlflow_on_eks...` import inside it resolves only through the installed distribution."""
    absolute = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in LIBRARY
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imports(path, relative=False)
        if _under(name, "mlflow_on_eks")
    ]
    assert absolute == []


def test_only_the_charts_import_cdk8s_plus() -> None:
    outside = [
        str(path.relative_to(ROOT))
        for path in _python_files()
        if not path.is_relative_to(ROOT / "k8s_charts")
        and any(_under(name, "cdk8s_plus_27") for name in _imports(path))
    ]
    assert outside == []
