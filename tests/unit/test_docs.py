"""Docs that must match the code."""

from __future__ import annotations

import re

from config.reference import render
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
