"""`cdk synth` of every configuration through the pinned CDK CLI prints no warnings.

This is what a user runs (`make synth`): the CLI starts app.py, CDK validates the templates
against its default rules (`@aws-cdk/core:validateAgainstDefaultRules` in cdk.json) and
reports deprecated APIs, unset feature flags and annotations as warnings.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.compliance.conftest import CliSynth, assembly_messages
from tests.conftest import CONFIGS

# Everything `cdk synth --quiet` may print when all is well; any other line (a warning in any
# wording, a banner, a notice) fails the gate.
KNOWN_GOOD = (
    re.compile(r"Successfully synthesized to \S+"),
    re.compile(r"Supply a stack id \((?:\w+, )*\w+\) to display its template\."),
)


def unexpected_lines(output: str) -> list[str]:
    return [
        line
        for line in output.splitlines()
        if line.strip() and not any(good.fullmatch(line.strip()) for good in KNOWN_GOOD)
    ]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cdk_synth_prints_no_warnings(name: str, cli_synths: dict[str, CliSynth]) -> None:
    result = cli_synths[name]
    assert result.returncode == 0, result.output
    assert unexpected_lines(result.output) == []
    assert "Successfully synthesized" in result.output
    assert sorted(result.outdir.glob("*.template.json"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cdk_validation_report_is_empty(name: str, cli_synths: dict[str, CliSynth]) -> None:
    """CDK's template validation found nothing (it would list even downgraded findings)."""
    report_file = cli_synths[name].outdir / "validation-report.json"
    # Written whenever CDK validates (validateAgainstDefaultRules); its absence would mean the
    # validation did not run, not that it found nothing.
    assert report_file.is_file(), "CDK wrote no validation report"
    report = json.loads(report_file.read_text())
    assert report["title"] == "Validation Report"
    assert [p for p in report["pluginReports"] if p.get("violations")] == []
    outdir = cli_synths[name].outdir
    for level in ("warning", "error"):
        assert assembly_messages(outdir, level) == {
            stack: [] for stack in assembly_messages(outdir, level)
        }
    assert set(assembly_messages(outdir)) >= {"Data", "Mlflow"}


def test_anything_but_the_known_good_lines_is_caught() -> None:
    """The allow-list passes exactly what a clean synth prints, and nothing else."""
    clean = (
        "Successfully synthesized to /work/main/cdk.out\n"
        "Supply a stack id (Network, Data, Cluster, Mlflow) to display its template.\n"
    )
    assert unexpected_lines(clean) == []
    for line in (
        "[Warning at /Data/Database] something",
        "WARNING: The aws-cdk-lib.Foo API is deprecated",
        "(node:1) [DEP0040] DeprecationWarning: punycode",
        "[Warning] Template validation found issues in your templates",
        "b'!!  Node 20 is end-of-life and not supported anymore by this software  !!'",
        "Heads up: a new wording nobody wrote a pattern for",
    ):
        assert unexpected_lines(clean + line) == [line], line
