"""cfn-lint on every synthesized template of every configuration: no findings but the
reasoned ones in cfn_lint_ignores.py (errors, warnings and informational alike)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cfnlint.api import ManualArgs, lint_file

from tests.compliance.cfn_lint_ignores import IGNORES
from tests.conftest import Synth

REGIONS = ["us-east-1", "eu-west-1"]
"""Where resource types and properties must exist (env-agnostic stacks deploy anywhere)."""


def lint(template: Path) -> list[str]:
    matches = lint_file(template, config=ManualArgs(regions=REGIONS))
    return [
        f"{template.name}: {m.rule.id} {m.message} at {'/'.join(map(str, m.path or []))}"
        for m in matches
        if not any(i.rule == m.rule.id and i.message_contains in m.message for i in IGNORES)
    ]


def test_templates_lint_clean(each_config: Synth) -> None:
    templates = sorted(each_config.outdir.glob("*.template.json"))
    assert len(templates) == len(each_config.templates)
    findings = [finding for template in templates for finding in lint(template)]
    assert findings == []


def test_lint_reports_a_broken_template(tmp_path: Path, synth: Callable[[str], Synth]) -> None:
    """The gate can fail: a template with an unknown property is reported."""
    import json

    template = json.loads((synth("default").outdir / "Data.template.json").read_text())
    bucket = next(r for r in template["Resources"].values() if r["Type"] == "AWS::S3::Bucket")
    bucket["Properties"]["VersioningConfigurationTypo"] = {"Status": "Enabled"}
    broken = tmp_path / "Broken.template.json"
    broken.write_text(json.dumps(template))
    assert any(" E3002 " in finding for finding in lint(broken))


def test_every_ignore_is_reasoned() -> None:
    assert IGNORES
    for ignore in IGNORES:
        assert ignore.rule and ignore.message_contains and len(ignore.reason) > 40
