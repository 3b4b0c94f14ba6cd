"""Each workload's IAM role, read from the synthesized server stack: it trusts exactly its own
ServiceAccount, and allows no action outside its workload's list, on no resource but its own.

The lists are what each workload's code calls (constructs_lib/workload_roles.py says why each
action is there); an action added to a role without adding it here fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlflow_on_eks.constructs_lib.review import render_intrinsics
from tests.conftest import CONFIGS, Synth, resources_of

SECRET_READ = {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
ARTIFACT_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:ListBucket",
}
SNAPSHOT_ACTIONS = {"rds:CreateDBSnapshot", "rds:AddTagsToResource", "rds:DescribeDBSnapshots"}
# With an existing bucket's or secret's own KMS key (database.existing, artifacts.existing).
ARTIFACT_KEY_ACTIONS = {"kms:GenerateDataKey", "kms:Decrypt"}
SECRET_KEY_ACTIONS = {"kms:Decrypt"}
ALLOWED = {
    "mlflow": SECRET_READ | ARTIFACT_ACTIONS | ARTIFACT_KEY_ACTIONS,
    "mlflow-migrate": SECRET_READ | SNAPSHOT_ACTIONS | SECRET_KEY_ACTIONS,
    "mlflow-gc": SECRET_READ,
    "mlflow-verify": SECRET_READ,
    "mlflow-sso-sync": SECRET_READ,
    # An MLflow server whose jobs use the store and the artifacts: the server's list.
    "mlflow-jobs": SECRET_READ | ARTIFACT_ACTIONS | ARTIFACT_KEY_ACTIONS,
}
"""ServiceAccount -> every action its role may allow."""
SECRETS = {
    "mlflow": {
        "DatabaseServerLogin",
        "AuthAdminCredentials",
        "AuthFlaskSecretKey",
        "AuthKekPassphrase",
    },
    "mlflow-migrate": {"DatabaseServerLogin", "DatabaseSecret"},
    "mlflow-gc": {"DatabaseServerLogin", "AuthAdminCredentials"},
    "mlflow-verify": {"AuthAdminCredentials"},
    "mlflow-sso-sync": set(),  # the IdP client's secret, the user's own: checked below
    "mlflow-jobs": {
        "DatabaseServerLogin",
        "AuthAdminCredentials",
        "AuthFlaskSecretKey",
        "AuthKekPassphrase",
    },
}
"""ServiceAccount -> the secrets (by logical ID prefix) its role may read, with sign-in on;
an existing instance's secret (database.existing.secret_arn) replaces DatabaseSecret."""
NEVER = (
    "s3:*",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:BypassGovernanceRetention",
    "s3:PutBucketPolicy",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketVersioning",
)


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return actions if isinstance(actions, list) else [actions]


def _roles(synth: Synth) -> dict[str, dict[str, Any]]:
    """ServiceAccount -> {"role": id, "statements": [...]} of every IRSA role of the stack."""
    template = synth.templates["Mlflow"]
    trusts = {
        logical_id: {
            key.rsplit(":", 1)[1]: value
            for key, value in json.loads(render_intrinsics(resource["Properties"]["Value"])).items()
        }
        for logical_id, resource in resources_of(template, "Custom::AWSCDKCfnJson").items()
    }
    found: dict[str, dict[str, Any]] = {}
    for role_id, role in resources_of(template, "AWS::IAM::Role").items():
        [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if statement["Action"] != "sts:AssumeRoleWithWebIdentity":
            continue
        trust = trusts[statement["Condition"]["StringEquals"]["Fn::GetAtt"][0]]
        assert set(trust) == {"sub", "aud"} and trust["aud"] == "sts.amazonaws.com", trust
        prefix = f"system:serviceaccount:{synth.settings.server.namespace}:"
        assert trust["sub"].startswith(prefix), trust
        account = trust["sub"].removeprefix(prefix)
        assert account not in found, f"two roles trust {account}"
        statements = [
            st
            for policy in resources_of(template, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
            for st in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        assert not role["Properties"].get("ManagedPolicyArns"), role_id
        found[account] = {"role": role_id, "statements": statements}
    return found


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_each_workload_has_its_own_role(synth, config: str) -> None:
    s = synth(config)
    roles = _roles(s)
    expected = {"mlflow", "mlflow-migrate"}
    expected |= {"mlflow-gc"} if s.settings.gc.enabled else set()
    # The deploy check signs in as the admin: only then does it read a secret.
    verify = s.settings.deploy_check.enabled and s.settings.auth.enabled
    expected |= {"mlflow-verify"} if verify else set()
    sso = s.settings.auth.enabled and s.settings.auth.sso.enabled
    expected |= {"mlflow-sso-sync"} if sso else set()
    expected |= {"mlflow-jobs"} if s.settings.jobs.enabled else set()
    assert set(roles) == expected


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_no_role_allows_an_action_outside_its_workloads_list(synth, config: str) -> None:
    for account, role in _roles(synth(config)).items():
        actions = {a for st in role["statements"] for a in _actions(st)}
        assert actions <= ALLOWED[account], (account, sorted(actions - ALLOWED[account]))
        assert not [a for a in actions if a in NEVER or "*" in a], (account, actions)
        for statement in role["statements"]:
            assert statement["Effect"] == "Allow" and statement["Resource"] != "*"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_each_role_reads_exactly_its_secrets(synth, config: str) -> None:
    s = synth(config)
    for account, role in _roles(s).items():
        read = {
            json.dumps(resource)
            for st in role["statements"]
            if set(_actions(st)) & SECRET_READ
            for resource in (
                st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            )
        }
        if account == "mlflow-sso-sync":  # exactly the configured secret, by its ARN
            assert read == {json.dumps(s.settings.auth.sso.client_secret_arn)}, read
            continue
        expected = {n for n in SECRETS[account] if s.settings.auth.enabled or "Auth" not in n}
        existing = s.settings.database.existing.secret_arn
        if existing and "DatabaseSecret" in expected:
            expected = (expected - {"DatabaseSecret"}) | {existing}
        names = {name for name in expected if any(name in r for r in read)}
        assert names == expected, (account, read)
        assert len(read) == len(expected), (account, read)


@pytest.mark.parametrize("config", ["default", "existing-data"])
def test_the_server_touches_artifacts_under_its_prefix_only(synth, config: str) -> None:
    s = synth(config)
    existing = s.settings.artifacts.existing
    prefix = existing.prefix if existing.bucket_name else "artifacts"
    roles = _roles(s)
    assert s.settings.jobs.enabled  # the job runner's role too
    for account in ("mlflow", "mlflow-jobs"):
        s3 = [st for st in roles[account]["statements"] if _actions(st)[0].startswith("s3:")]
        objects = [st for st in s3 if "s3:ListBucket" not in _actions(st)]
        [listing] = [st for st in s3 if "s3:ListBucket" in _actions(st)]
        assert objects and all(f'/{prefix}/*"' in json.dumps(st["Resource"]) for st in objects)
        assert listing["Condition"] == {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
        if existing.bucket_name:
            bucket = f"arn:aws:s3:::{existing.bucket_name}"
            assert [st["Resource"] for st in objects] == [f"{bucket}/{prefix}/*"]
            assert listing["Resource"] == bucket


def test_a_users_keys_are_used_through_their_service_only(synth) -> None:
    """An existing bucket's and secret's own KMS keys: the server may make data keys and
    decrypt through S3, the migration Job decrypt through Secrets Manager; with that key only,
    and no other role with any key."""
    s = synth("existing-data")
    region = s.settings.aws.region
    expected = {
        "mlflow": (s.settings.artifacts.existing.kms_key_arn, ARTIFACT_KEY_ACTIONS, "s3"),
        "mlflow-jobs": (s.settings.artifacts.existing.kms_key_arn, ARTIFACT_KEY_ACTIONS, "s3"),
        "mlflow-migrate": (
            s.settings.database.existing.secret_kms_key_arn,
            SECRET_KEY_ACTIONS,
            "secretsmanager",
        ),
    }
    for account, role in _roles(s).items():
        keys = [st for st in role["statements"] if _actions(st)[0].startswith("kms:")]
        if account not in expected:
            assert keys == [], account
            continue
        key, actions, service = expected[account]
        [statement] = keys
        assert statement["Resource"] == key and set(_actions(statement)) == actions
        via = f"{service}.{region}.amazonaws.com"
        assert statement["Condition"] == {"StringEquals": {"kms:ViaService": via}}


@pytest.mark.parametrize("config", ["default", "existing-data"])
def test_only_the_migration_job_reads_the_master_login_or_takes_snapshots(
    synth, config: str
) -> None:
    s = synth(config)
    master = s.settings.database.existing.secret_arn or "DatabaseSecret"
    for account, role in _roles(s).items():
        text = json.dumps(role["statements"])
        reads_master = master in text.replace("DatabaseServerLogin", "")
        snapshots = "rds:" in text
        assert reads_master == snapshots == (account == "mlflow-migrate"), account
