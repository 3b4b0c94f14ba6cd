"""Data safety: the stateful stack keeps its data unless two switches say otherwise.

Default (every configuration): termination protection, RDS deletion protection, a final
snapshot on delete or replacement, backups, the credentials secret and the bucket retained.
`removal_policy: destroy` alone gives a warning and keeps everything; only with the context
flag `allow_data_destroy` as well is the data deleted with the stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

from config import Settings, parse_settings
from stacks import DESTROY_FLAG
from tests.compliance.conftest import assembly_messages
from tests.conftest import (
    ROOT,
    Synth,
    only_resource,
    primary_database,
    resources_of,
    share_staged_files,
    synthesize,
)

PINNED_LOGICAL_IDS = {
    "AWS::RDS::DBInstance": {"DatabaseF44359DD"},
    "AWS::SecretsManager::Secret": {
        "DataDatabaseSecretB1078AFF0db5071a5edbe9eba8e7d639f663143b",
        # The server's login: the migration Job sets the database's password from it.
        "DatabaseServerLogin745A1DDC",
        # The admin login MLflow's user table was created with, and the passphrase the secrets
        # MLflow stores are encrypted under (basic auth, on by default).
        "AuthAdminCredentialsC5BA2C26",
        "AuthFlaskSecretKeyA27EF70F",
        "AuthKekPassphrase0E3A2E2A",
    },
    "AWS::S3::Bucket": {"Artifacts80C0BB10"},
}
"""A new logical ID makes CloudFormation replace the resource: a new, empty database, a new
password that opens nothing, a passphrase that decrypts nothing."""

DESTROY = {"database": {"removal_policy": "destroy"}, "artifacts": {"removal_policy": "destroy"}}


def termination_protection(outdir: Path, stack_id: str) -> bool:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return manifest["artifacts"][stack_id]["properties"].get("terminationProtection", False)


def assert_data_kept(outdir: Path, data: dict[str, Any], settings: Settings) -> None:
    assert termination_protection(outdir, "Data") is True
    if settings.database.existing.endpoint:
        # An existing instance is its owner's: nothing of it here to delete or replace.
        assert not resources_of(data, "AWS::RDS::DBInstance")
    else:
        _, db = primary_database(data)
        assert db["Properties"]["DeletionProtection"] is True
        assert (db["DeletionPolicy"], db["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")
        backup_days = settings.database.backup_retention_days
        assert db["Properties"]["BackupRetentionPeriod"] == backup_days >= 1
    secrets = resources_of(data, "AWS::SecretsManager::Secret")
    assert secrets, "the database credentials at least"
    for secret in secrets.values():
        assert (secret["DeletionPolicy"], secret["UpdateReplacePolicy"]) == ("Retain", "Retain")
    if settings.artifacts.existing.bucket_name:
        assert not resources_of(data, "AWS::S3::Bucket")
    else:
        _, bucket = only_resource(data, "AWS::S3::Bucket")
        assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert not [r for r in data["Resources"].values() if r["Type"] == "Custom::S3AutoDeleteObjects"]


def test_every_config_keeps_its_data(each_config: Synth) -> None:
    assert_data_kept(each_config.outdir, each_config.templates["Data"], each_config.settings)


def test_stateless_stacks_are_not_protected(each_config: Synth) -> None:
    """Only the data stack: the others can be deleted and recreated freely."""
    for stack_id in each_config.templates:
        if stack_id != "Data":
            assert termination_protection(each_config.outdir, stack_id) is False


def test_stateful_logical_ids_are_pinned(each_config: Synth) -> None:
    data = each_config.templates["Data"]
    auth = {"Auth" in i for i in PINNED_LOGICAL_IDS["AWS::SecretsManager::Secret"]}
    assert auth == {True, False}
    settings = each_config.settings
    # What an existing instance or bucket brings is its owner's, not in this template.
    existing = {
        "AWS::RDS::DBInstance": bool(settings.database.existing.endpoint),
        "AWS::S3::Bucket": bool(settings.artifacts.existing.bucket_name),
    }
    for resource_type, logical_ids in PINNED_LOGICAL_IDS.items():
        expected = {
            i
            for i in logical_ids
            if (settings.auth.enabled or "Auth" not in i)
            and not (settings.database.existing.endpoint and i.startswith("DataDatabaseSecret"))
        }
        if existing.get(resource_type):
            expected = set()
        found = set(resources_of(data, resource_type))
        if resource_type == "AWS::RDS::DBInstance" and found:
            found = {primary_database(data)[0]}  # a read replica keeps nothing: not pinned
        assert found == expected


@pytest.fixture(scope="module")
def destroy_without_flag(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    settings = parse_settings(DESTROY)
    return synthesize("destroy", settings, tmp_path_factory.mktemp("destroy-no-flag"))


@pytest.fixture(scope="module")
def destroy_with_flag(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    settings = parse_settings(DESTROY)
    outdir = tmp_path_factory.mktemp("destroy-flag")
    return synthesize("destroy", settings, outdir, allow_destroy=True)


def test_destroy_setting_alone_warns_and_keeps_the_data(destroy_without_flag: Synth) -> None:
    s = destroy_without_flag
    assert_data_kept(s.outdir, s.templates["Data"], s.settings)
    annotations = Annotations.from_stack(s.deployment.data)
    for what in ("database", "artifacts"):
        annotations.has_warning(
            "/Data", Match.string_like_regexp(f"{what}.removal_policy is destroy.*{DESTROY_FLAG}")
        )
    # The warnings reach the assembly, where `cdk synth` prints them.
    warnings = assembly_messages(s.outdir)["Data"]
    assert len(warnings) == 2 and all(DESTROY_FLAG in w for w in warnings), warnings


def test_destroy_setting_and_flag_delete_the_data(destroy_with_flag: Synth) -> None:
    s = destroy_with_flag
    data = s.templates["Data"]
    assert termination_protection(s.outdir, "Data") is False
    _, db = primary_database(data)
    assert db["Properties"]["DeletionProtection"] is False
    assert (db["DeletionPolicy"], db["UpdateReplacePolicy"]) == ("Delete", "Delete")
    for secret in resources_of(data, "AWS::SecretsManager::Secret").values():
        assert (secret["DeletionPolicy"], secret["UpdateReplacePolicy"]) == ("Delete", "Delete")
    _, bucket = only_resource(data, "AWS::S3::Bucket")
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Delete", "Delete")
    auto_delete = [
        r for r in data["Resources"].values() if r["Type"] == "Custom::S3AutoDeleteObjects"
    ]
    assert len(auto_delete) == 1
    Annotations.from_stack(s.deployment.data).has_no_warning("*", Match.any_value())
    assert assembly_messages(s.outdir)["Data"] == []
    # Same logical IDs either way: switching the flag never replaces the data.
    for resource_type, logical_ids in PINNED_LOGICAL_IDS.items():
        assert set(resources_of(data, resource_type)) == logical_ids


def test_flag_alone_changes_nothing(synth: Callable[[str], Synth], tmp_path: Path) -> None:
    kept = synthesize("default-flag", parse_settings({}), tmp_path, allow_destroy=True)
    assert kept.templates["Data"] == synth("default").templates["Data"]
    assert termination_protection(kept.outdir, "Data") is True


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """app.py as the CLI starts it, with `-c allow_data_destroy=true|false` (both at once)."""
    directory = tmp_path_factory.mktemp("app-flag")
    config = directory / "destroy.yaml"
    config.write_text(json.dumps(DESTROY))
    running = {}
    for flag in ("true", "false"):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
            "CDK_CONTEXT_JSON": json.dumps({"config": str(config), DESTROY_FLAG: flag}),
            "CDK_OUTDIR": str(directory / flag),
        }
        running[flag] = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for flag, process in running.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        share_staged_files(directory / flag)
    return {flag: directory / flag for flag in running}


@pytest.mark.parametrize(("flag", "deleted"), [("true", True), ("false", False)])
def test_app_reads_the_context_flag(app_runs: dict[str, Path], flag: str, deleted: bool) -> None:
    """From the CLI the flag arrives as a string; "false" must not count as set."""
    data = json.loads((app_runs[flag] / "Data.template.json").read_text())
    _, db = primary_database(data)
    assert (db["DeletionPolicy"] == "Delete") is deleted
    assert db["Properties"]["DeletionProtection"] is not deleted
    assert termination_protection(app_runs[flag], "Data") is not deleted
