"""cfn-lint on every synthesized template of every configuration: no findings but the
reasoned ones in cfn_lint_ignores.py (errors, warnings and informational alike)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cfnlint.api import ManualArgs, lint_by_config

from tests.compliance.cfn_lint_ignores import IGNORES
from tests.conftest import Synth

REGIONS = ["us-east-1", "eu-west-1"]
"""Where resource types and properties must exist (env-agnostic stacks deploy anywhere)."""


def lint(*templates: Path) -> list[str]:
    """One cfn-lint run over `templates`, as `cfn-lint a.json b.json` runs: it loads its rules
    and their data once (about 0.7 s of CPU a run), not once per template."""
    assert templates
    matches = lint_by_config(ManualArgs(templates=[str(t) for t in templates], regions=REGIONS))
    return [
        f"{Path(m.filename).name}: {m.rule.id} {m.message} at {'/'.join(map(str, m.path or []))}"
        for m in matches
        if not any(i.rule == m.rule.id and i.message_contains in m.message for i in IGNORES)
    ]


def test_templates_lint_clean(each_config: Synth) -> None:
    templates = sorted(each_config.outdir.glob("*.template.json"))
    assert len(templates) == len(each_config.templates)
    assert lint(*templates) == []


def test_lint_reports_a_broken_template(tmp_path: Path, synth: Callable[[str], Synth]) -> None:
    """The gate can fail: a template with an unknown property is reported, by its name, when
    it is linted beside a clean one (as a configuration's templates are)."""
    import json

    clean = synth("default").outdir / "Data.template.json"
    template = json.loads(clean.read_text())
    bucket = next(r for r in template["Resources"].values() if r["Type"] == "AWS::S3::Bucket")
    bucket["Properties"]["VersioningConfigurationTypo"] = {"Status": "Enabled"}
    broken = tmp_path / "Broken.template.json"
    broken.write_text(json.dumps(template))
    findings = lint(clean, broken)
    assert any(finding.startswith("Broken.template.json: E3002 ") for finding in findings)
    assert all(finding.startswith("Broken.template.json: ") for finding in findings), findings


def test_every_ignore_is_reasoned() -> None:
    assert IGNORES
    for ignore in IGNORES:
        assert ignore.rule and ignore.message_contains and len(ignore.reason) > 40
