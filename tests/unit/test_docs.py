"""Docs that must match the code."""

from __future__ import annotations

import re

from config.reference import render
from mlflow_on_eks.constructs_lib.kubernetes import SUPPORTED_VERSIONS, release
from tests.conftest import EXAMPLES, ROOT


def test_configuration_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), (
        "run: .venv/bin/python -m config.reference > docs/configuration.md"
    )


def test_readme_shows_the_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make synth" in first_block and "make test" in first_block


def test_readme_names_existing_examples_only() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"config/examples/([\w-]+\.yaml)", readme))
    assert named == {p.name for p in EXAMPLES.glob("*.yaml")}


def test_operations_lists_the_add_on_builds_the_code_installs() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    listed = dict(re.findall(r"^\| (1\.\d+) \| `(v[^`]+)` \|$", operations, flags=re.M))
    assert listed == {v: release(v).metrics_server for v in SUPPORTED_VERSIONS}
