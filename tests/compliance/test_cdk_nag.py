"""cdk-nag AwsSolutions: zero unacknowledged findings on every configuration.

The packs run as CDK validation plugins (cdk-nag 3), as `cdk synth` would run them. The
acknowledgements live in constructs_lib (constructs_lib/acknowledgements.py and the constructs);
the tests below prove they apply, and apply only where they are made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from config import load_settings
from mlflow_on_eks.constructs_lib import acknowledgements as acknowledgements_module
from mlflow_on_eks.constructs_lib import database as database_module
from mlflow_on_eks.constructs_lib import workload_roles as workload_roles_module
from mlflow_on_eks.constructs_lib.acknowledgements import acknowledge
from stacks import build_deployment
from tests.compliance.conftest import VALIDATION_REPORT, NagFindings, synth_with_nag
from tests.conftest import CONFIGS, cdk_json_context


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_no_unacknowledged_findings(name: str, nag_synth: Callable[[str], Path]) -> None:
    # nag_synth raises NagFindings (with CDK's report) on any unacknowledged error.
    report = json.loads((nag_synth(name) / VALIDATION_REPORT).read_text())
    findings = [
        (violation["ruleName"], resource.get("constructPath"))
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        for resource in violation.get("violatingResources", [])
    ]
    assert findings == []


def test_removing_acknowledgements_brings_the_findings_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One plain and the server role's late (resolved) acknowledgements removed: each
    reported."""
    plain = database_module.acknowledge

    def without_rds11(scope: object, rule_id: str, reason: str) -> None:
        if rule_id != "AwsSolutions-RDS11":
            plain(scope, rule_id, reason)  # type: ignore[arg-type]

    monkeypatch.setattr(database_module, "acknowledge", without_rds11)
    monkeypatch.setattr(
        workload_roles_module,
        "acknowledge_wildcard_resources",
        lambda *args, **kwargs: None,
    )
    with pytest.raises(NagFindings) as raised:
        synth_with_nag(load_settings(None), tmp_path)
    report = str(raised.value)
    assert "AwsSolutions-RDS11" in report
    assert "Data/Database/Resource/Resource" in report
    assert "AwsSolutions-IAM5[Resource::" in report
    assert "/artifacts/*]" in report
    assert "Mlflow/TrackingServer/Roles/Server/DefaultPolicy/Resource" in report
    assert "Mlflow/TrackingServer/Roles/Jobs/DefaultPolicy/Resource" in report
    assert "Mlflow/TrackingServer/Roles/Migrate/DefaultPolicy/Resource" in report
    assert ":snapshot:mlflow-before-*]" in report and ":snapshot:*]" in report
    # Every other acknowledgement still applies: RDS11 and the four wildcards (the server's
    # and the job runner's artifacts, two of snapshots) are all.
    assert report.count("AwsSolutions-") == 5, report


def test_an_acknowledgement_applies_only_under_its_construct(tmp_path: Path) -> None:
    """CDK once matched acknowledgements by rule id app-wide (aws/aws-cdk#38495)."""
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = cdk.Stack(app, "Buckets")
    acknowledged = s3.Bucket(stack, "Acknowledged", enforce_ssl=True)
    s3.Bucket(stack, "NotAcknowledged", enforce_ssl=True)
    acknowledge(acknowledged, "AwsSolutions-S1", "test")
    with pytest.raises(Exception, match="AwsSolutions-S1") as raised:
        app.synth()
    assert "Buckets/NotAcknowledged/Resource" in str(raised.value)
    assert "Buckets/Acknowledged/Resource" not in str(raised.value)


class _Recorder:
    """Stands in for `Validations` in constructs_lib/acknowledgements.py: records, acknowledges
    nothing."""

    def __init__(self, recorded: list[tuple[str, str]]) -> None:
        self.recorded = recorded

    def of(self, scope: IConstruct) -> _Recorder._Scope:
        return _Recorder._Scope(self.recorded, scope.node.path)

    class _Scope:
        def __init__(self, recorded: list[tuple[str, str]], path: str) -> None:
            self.recorded, self.path = recorded, path

        def acknowledge(self, *acknowledgments: cdk.Acknowledgment) -> None:
            self.recorded.extend((self.path, a.id) for a in acknowledgments)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_acknowledgements_match_the_findings_exactly(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without acknowledgements, the findings are exactly the acknowledged ones: every
    acknowledgement names a real finding under its construct (none is stale or misspelt),
    and every finding has one."""
    from cdk_nag import AwsSolutionsChecks

    recorded: list[tuple[str, str]] = []
    monkeypatch.setattr(acknowledgements_module, "Validations", _Recorder(recorded))
    app = cdk.App(outdir=str(tmp_path), context=cdk_json_context())
    build_deployment(app, load_settings(CONFIGS[name]), allow_destroy=False)
    app.synth()
    findings = {
        (violation.rule_name, resource.construct_path)
        for violation in AwsSolutionsChecks().validate_scope(app).violations
        for resource in violation.violating_resources
    }

    def covers(path: str, resource: str) -> bool:
        return resource == path or resource.startswith(f"{path}/")

    unused = [
        (path, rule)
        for path, rule in recorded
        if not any(r == rule and covers(path, p) for r, p in findings)
    ]
    unacknowledged = [
        (rule, resource)
        for rule, resource in findings
        if not any(r == rule and covers(p, resource) for p, r in recorded)
    ]
    assert recorded
    assert unused == []
    assert unacknowledged == []
