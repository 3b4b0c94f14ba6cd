"""`cdk synth` of every configuration through the pinned CDK CLI prints no warnings.

This is what a user runs (`make synth`): the CLI starts app.py, CDK validates the templates
against its default rules (`@aws-cdk/core:validateAgainstDefaultRules` in cdk.json) and
reports deprecated APIs, unset feature flags and annotations as warnings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.compliance.conftest import assembly_messages
from tests.conftest import CONFIGS, ROOT

WARNING = re.compile(r"warn|deprecat|error|\bnotice", re.IGNORECASE)


@dataclass
class CliSynth:
    returncode: int
    output: str
    outdir: Path


def _env() -> dict[str, str]:
    # Without pytest's variables, so CDK runs the app as the CLI does (not "in-memory" mode).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env.pop("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", None)
    return env


@pytest.fixture(scope="module")
def cli_synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliSynth]:
    """Every configuration synthesized by the CLI, all started at once (they wait on I/O)."""
    running = {}
    for name, path in sorted(CONFIGS.items()):
        outdir = tmp_path_factory.mktemp(f"cli-{name}")
        command = ["npx", "--no-install", "cdk", "synth", "--quiet", "-o", str(outdir)]
        if path is not None:
            command += ["-c", f"config={path.relative_to(ROOT)}"]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running[name] = (process, outdir)
    results = {}
    for name, (process, outdir) in running.items():
        output, _ = process.communicate(timeout=600)
        results[name] = CliSynth(process.returncode, output, outdir)
    return results


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cdk_synth_prints_no_warnings(name: str, cli_synths: dict[str, CliSynth]) -> None:
    result = cli_synths[name]
    assert result.returncode == 0, result.output
    assert [line for line in result.output.splitlines() if WARNING.search(line)] == []
    assert "Successfully synthesized" in result.output
    assert sorted(result.outdir.glob("*.template.json"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cdk_validation_report_is_empty(name: str, cli_synths: dict[str, CliSynth]) -> None:
    """CDK's template validation found nothing (it would list even downgraded findings)."""
    report_file = cli_synths[name].outdir / "validation-report.json"
    if report_file.exists():
        report = json.loads(report_file.read_text())
        assert [p for p in report["pluginReports"] if p.get("violations")] == []
    outdir = cli_synths[name].outdir
    for level in ("warning", "error"):
        assert assembly_messages(outdir, level) == {
            stack: [] for stack in assembly_messages(outdir, level)
        }
    assert set(assembly_messages(outdir)) >= {"Data", "Mlflow"}


def test_warnings_would_be_caught() -> None:
    """The pattern sees the forms CDK and jsii print."""
    for line in (
        "[Warning at /Data/Database] something",
        "WARNING: The aws-cdk-lib.Foo API is deprecated",
        "(node:1) [DEP0040] DeprecationWarning: punycode",
        "[Warning] Template validation found issues in your templates",
    ):
        assert WARNING.search(line), line
