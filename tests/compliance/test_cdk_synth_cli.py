"""`cdk synth` of every configuration through the pinned CDK CLI prints no warnings but the
one the product means to print.

This is what a user runs (`make synth`): the CLI starts app.py, CDK validates the templates
against its default rules (`@aws-cdk/core:validateAgainstDefaultRules` in cdk.json) and
reports deprecated APIs, unset feature flags and annotations as warnings.

The one warning by design: sign-in over a plain-HTTP internal load balancer (the default, as no
certificate can be made up at synth), exactly where a configuration has it, in exactly the
CLI's three lines; any other warning, or this one elsewhere, fails the gate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest

from config import load_settings
from mlflow_on_eks.constructs_lib.tracking_server import (
    PLAIN_HTTP_SIGN_IN,
    PLAIN_HTTP_SIGN_IN_WARNING,
)
from tests.compliance.conftest import CliSynth, assembly_messages
from tests.conftest import CONFIGS

# Everything `cdk synth --quiet` may print when all is well; any other line (a warning in any
# wording, a banner, a notice) fails the gate.
KNOWN_GOOD = (
    re.compile(r"Successfully synthesized to \S+"),
    re.compile(r"Supply a stack id \((?:\w+, )*\w+\) to display its template\."),
)
PLAIN_HTTP_LINES = [
    f"WARNING {PLAIN_HTTP_SIGN_IN_WARNING} (Annotation)",
    "Mlflow/TrackingServer constructs.Construct",
    f"Acknowledge with 'Annotation::{PLAIN_HTTP_SIGN_IN}'",
]
"""How the CLI prints the plain-HTTP sign-in warning (CDK's validation report of annotations)."""


def sign_in_over_plain_http(name: str) -> bool:
    settings = load_settings(CONFIGS[name])
    internal = settings.exposure.internal
    return settings.auth.enabled and internal.enabled and not internal.tls


def unexpected_lines(output: str, expected: Sequence[str] = ()) -> list[str]:
    """The lines of `output` that are neither a clean synth's nor, in order, `expected`."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in expected:
        if line not in lines:
            return [f"missing: {line}"]
        lines.remove(line)
    return [line for line in lines if not any(good.fullmatch(line) for good in KNOWN_GOOD)]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cdk_synth_prints_no_warnings(name: str, cli_synths: dict[str, CliSynth]) -> None:
    result = cli_synths[name]
    assert result.returncode == 0, result.output
    expected = PLAIN_HTTP_LINES if sign_in_over_plain_http(name) else []
    assert unexpected_lines(result.output, expected) == []
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
    expected = sign_in_over_plain_http(name)
    violations = {
        (plugin["pluginName"], violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
    }
    assert violations == (
        {("Construct Annotations", f"Annotation::{PLAIN_HTTP_SIGN_IN}")} if expected else set()
    )
    outdir = cli_synths[name].outdir
    warning = f"{PLAIN_HTTP_SIGN_IN_WARNING} [ack: {PLAIN_HTTP_SIGN_IN}]"
    assert assembly_messages(outdir, "warning") == {
        stack: [warning] if expected and stack == "Mlflow" else []
        for stack in assembly_messages(outdir, "warning")
    }
    assert assembly_messages(outdir, "error") == {
        stack: [] for stack in assembly_messages(outdir, "error")
    }
    assert set(assembly_messages(outdir)) >= {"Data", "Mlflow"}


def test_anything_but_the_known_good_lines_is_caught() -> None:
    """The allow-list passes exactly what a clean synth prints, and nothing else."""
    clean = (
        "Successfully synthesized to /work/main/cdk.out\n"
        "Supply a stack id (Network, Data, Cluster, Mlflow) to display its template.\n"
    )
    assert unexpected_lines(clean) == []
    warned = "\n".join(PLAIN_HTTP_LINES) + "\n" + clean
    assert unexpected_lines(warned, PLAIN_HTTP_LINES) == []
    # Expected but absent, or present but not expected: both fail.
    assert unexpected_lines(clean, PLAIN_HTTP_LINES) == [f"missing: {PLAIN_HTTP_LINES[0]}"]
    assert unexpected_lines(warned) == PLAIN_HTTP_LINES
    for line in (
        "[Warning at /Data/Database] something",
        "WARNING: The aws-cdk-lib.Foo API is deprecated",
        "(node:1) [DEP0040] DeprecationWarning: punycode",
        "[Warning] Template validation found issues in your templates",
        "b'!!  Node 20 is end-of-life and not supported anymore by this software  !!'",
        "Heads up: a new wording nobody wrote a pattern for",
    ):
        assert unexpected_lines(clean + line) == [line], line
