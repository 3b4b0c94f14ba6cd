"""Authentication on by default: the secrets, who may read them, and how they reach the pods.

The launcher side (auth database, admin bootstrap, sign-in) runs against real servers in
tests/integration/test_auth.py; here, what the templates and manifests promise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aws_cdk as cdk
import cdk8s
import pytest

from mlflow_on_eks.constructs_lib import MlflowAuth
from mlflow_on_eks.constructs_lib.review import render_intrinsics
from mlflow_on_eks.k8s_charts import (
    AuthProps,
    AuthSecretIds,
    DeployCheckChart,
    DeployCheckChartProps,
)
from mlflow_on_eks.k8s_charts.rules import InvalidProps
from tests.conftest import Synth, resources_of
from tests.unit.test_chart import PROPS as CHART_PROPS

SynthFn = Callable[[str], Synth]
AUTH_SECRETS = (
    "AuthAdminCredentials",
    "AuthFlaskSecretKey",
    "AuthKekPassphrase",
)


def _auth_secrets(synth: Synth) -> dict[str, dict[str, Any]]:
    found = resources_of(synth.templates["Data"], "AWS::SecretsManager::Secret")
    return {key: r for key, r in found.items() if key.startswith("Auth")}


def test_the_secrets_are_generated_and_kept_with_the_data(synth: SynthFn) -> None:
    secrets = _auth_secrets(synth("default"))
    assert sorted(k[: -len("C5BA2C26")] for k in secrets) == sorted(AUTH_SECRETS)
    for secret in secrets.values():
        assert (secret["DeletionPolicy"], secret["UpdateReplacePolicy"]) == ("Retain", "Retain")
        assert "SecretString" not in secret["Properties"], "generated, never written"
    admin = next(r for k, r in secrets.items() if k.startswith("AuthAdminCredentials"))
    generate = admin["Properties"]["GenerateSecretString"]
    assert json.loads(generate["SecretStringTemplate"]) == {"username": "admin"}
    assert generate["GenerateStringKey"] == "password"
    # MLflow refuses passwords under 12 characters; punctuation is kept (hostile characters
    # are tested against the real server).
    assert generate["PasswordLength"] >= 12 and "ExcludePunctuation" not in generate


def test_turning_auth_off_creates_no_secret_and_no_setting(synth: SynthFn) -> None:
    s = synth("test-minimal")
    assert s.settings.auth.enabled is False
    assert _auth_secrets(s) == {}
    data = s.object("ConfigMap")["data"]
    assert not [key for key in data if key.startswith("MLFLOW_AUTH_")]
    assert "AdminCredentialsCommand" not in s.templates["Mlflow"]["Outputs"]


def test_pods_get_the_secret_names_never_the_values(each_config: Synth) -> None:
    if not each_config.settings.auth.enabled:
        return
    data = each_config.object("ConfigMap")["data"]
    for key, logical_id in (
        ("MLFLOW_AUTH_ADMIN_SECRET_ID", "AuthAdminCredentials"),
        ("MLFLOW_AUTH_FLASK_SECRET_ID", "AuthFlaskSecretKey"),
        ("MLFLOW_AUTH_KEK_SECRET_ID", "AuthKekPassphrase"),
    ):
        assert data[key].startswith("${Output:") and logical_id in data[key], data[key]
    assert data["MLFLOW_AUTH_DEFAULT_PERMISSION"] == each_config.settings.auth.default_permission
    assert data["MLFLOW_AUTH_DB_NAME"] == "mlflow_auth"
    cache = each_config.settings.auth.sign_in_cache_seconds
    assert data["MLFLOW_AUTH_CACHE_SECONDS"] == str(cache)
    # The one Secret ever applied is the sign-in load balancer's, and it goes out empty
    # (sync-sso-secret fills it in the cluster).
    for secret in each_config.objects("Secret"):
        assert secret["metadata"]["name"] == "mlflow-sso-client"
        assert not {"data", "stringData"} & set(secret), secret


def test_workspaces_reach_every_pod_and_the_grant_the_auth_app(each_config: Synth) -> None:
    """Written only when on, so a deployment without workspaces keeps its ConfigMap (and its
    pods); the grant only where MLflow reads it (workspaces and sign-in on)."""
    settings = each_config.settings
    data = each_config.object("ConfigMap")["data"]
    assert data.get("MLFLOW_ENABLE_WORKSPACES") == ("true" if settings.server.workspaces else None)
    grant = data.get("MLFLOW_AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS")
    if settings.server.workspaces and settings.auth.enabled:
        assert grant == str(settings.auth.grant_default_workspace_access).lower()
    else:
        assert grant is None


def test_deploy_check_signs_in_as_admin_through_its_own_role(synth: SynthFn) -> None:
    s = synth("default")
    [job] = [j for j in s.objects("Job") if "-verify-" in j["metadata"]["name"]]
    spec = job["spec"]["template"]["spec"]
    # Not the server's account: its own, whose IRSA role may read the admin secret only
    # (tests/unit/test_deploy_check.py shows the role).
    assert spec["serviceAccountName"] == "mlflow-verify"
    account = s.object("ServiceAccount", "mlflow-verify")
    assert "DeployCheckRole" in account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    config = s.object("ConfigMap")["data"]
    assert env["MLFLOW_AUTH_ADMIN_SECRET_ID"] == config["MLFLOW_AUTH_ADMIN_SECRET_ID"]
    assert env["AWS_REGION"] == config["AWS_REGION"]
    assert not [k for k in env if "PASSWORD" in k or "USERNAME" in k]


def _check_chart(server, **props) -> list[dict]:
    chart = DeployCheckChart(
        cdk8s.Testing.app(),
        "Check",
        props=DeployCheckChartProps(
            server=server,
            job_name="mlflow-verify-x",
            load_balancer_hosts={"internal": "lb"},
            **props,
        ),
    )
    return chart.to_json()


def test_without_auth_the_check_runs_with_no_aws_identity() -> None:
    objects = _check_chart(replace(CHART_PROPS, auth=None))
    [job] = [o for o in objects if o["kind"] == "Job"]
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "mlflow-verify"  # for the Kubernetes API only
    [account] = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert "annotations" not in account["metadata"]  # no IRSA role
    env = {e["name"] for e in spec["containers"][0]["env"]}
    assert "MLFLOW_AUTH_ADMIN_SECRET_ID" not in env and "AWS_REGION" not in env


def test_with_auth_the_check_needs_its_role() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:{}-AbCdEf"
    secrets = AuthSecretIds(
        admin=arn.format("admin"),
        flask_secret_key=arn.format("flask"),
        kek_passphrase=arn.format("kek"),
    )
    server = replace(CHART_PROPS, auth=AuthProps(), auth_secrets=secrets)
    with pytest.raises(ValueError, match="role_arn is required with authentication on"):
        _check_chart(server)
    role = "arn:aws:iam::123456789012:role/mlflow-verify"
    [account] = [o for o in _check_chart(server, role_arn=role) if o["kind"] == "ServiceAccount"]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}


def test_admin_credentials_command_prints_the_login(synth: SynthFn) -> None:
    outputs = synth("default").templates["Mlflow"]["Outputs"]
    command = render_intrinsics(outputs["AdminCredentialsCommand"]["Value"])
    assert command.startswith(
        "aws secretsmanager get-secret-value --query SecretString --output text --secret-id "
    )
    assert "AuthAdminCredentials" in command


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"default_permission": "WRITE"}, "default_permission: Input should be 'READ'"),
        ({"admin_username": ""}, "admin_username: String should match pattern"),
        ({"admin_username": "a:b"}, "admin_username: String should match pattern"),
        ({"enabled": False, "allow_anonymous_through": ["cluster"], "admin_username": "a"}, None),
        ({"allow_anonymous_through": ["cluster"]}, "is set but enabled is true"),
    ],
)
def test_props_refuse_what_mlflow_cannot_use(options: dict, why: str | None) -> None:
    """The same model is the config's `auth` section: a library user gets the same refusal."""
    if why is None:
        with pytest.raises(ValueError, match="with sign-in off there are no secrets to make"):
            MlflowAuth(cdk.Stack(cdk.App(), "S"), "Auth", props=AuthProps(**options))
        return
    with pytest.raises(InvalidProps, match=why):
        AuthProps(**options)


def test_the_admin_secret_names_the_configured_admin() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    MlflowAuth(stack, "Auth", props=AuthProps(admin_username="platform-admin"))
    secrets = resources_of(
        cdk.assertions.Template.from_stack(stack).to_json(), "AWS::SecretsManager::Secret"
    )
    [admin] = [r for key, r in secrets.items() if key.startswith("AuthAdminCredentials")]
    template = admin["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
    assert json.loads(template) == {"username": "platform-admin"}
