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
from mlflow_on_eks.k8s_charts import DeployCheckChart, DeployCheckChartProps

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
    assert not each_config.objects("Secret")


def test_deploy_check_signs_in_as_admin_through_the_servers_role(synth: SynthFn) -> None:
    s = synth("default")
    [job] = [j for j in s.objects("Job") if "-verify-" in j["metadata"]["name"]]
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "mlflow"  # IRSA: may read the admin secret
    assert spec["automountServiceAccountToken"] is False
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    config = s.object("ConfigMap")["data"]
    assert env["MLFLOW_AUTH_ADMIN_SECRET_ID"] == config["MLFLOW_AUTH_ADMIN_SECRET_ID"]
    assert env["AWS_REGION"] == config["AWS_REGION"]
    assert not [k for k in env if "PASSWORD" in k or "USERNAME" in k]


def test_without_auth_the_check_runs_with_no_identity() -> None:
    server = replace(CHART_PROPS, auth=None)
    chart = DeployCheckChart(
        cdk8s.Testing.app(),
        "Check",
        props=DeployCheckChartProps(
            server=server, job_name="mlflow-verify-x", load_balancer_hosts={"internal": "lb"}
        ),
    )
    [job] = [o for o in chart.to_json() if o["kind"] == "Job"]
    spec = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in spec  # the namespace's default account, no IRSA role
    env = {e["name"] for e in spec["containers"][0]["env"]}
    assert "MLFLOW_AUTH_ADMIN_SECRET_ID" not in env and "AWS_REGION" not in env


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
        ({"default_permission": "WRITE"}, "default_permission must be one of READ"),
        ({"admin_username": ""}, "admin_username"),
        ({"admin_username": "a:b"}, "admin_username"),
    ],
)
def test_construct_refuses_what_mlflow_cannot_use(options: dict, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        MlflowAuth(cdk.Stack(cdk.App(), "S"), "Auth", **options)
