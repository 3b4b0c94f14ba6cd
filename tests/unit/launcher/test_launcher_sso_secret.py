"""`mlflow-launcher sync-sso-secret`, end to end through the CLI: Secrets Manager (moto) to the
Kubernetes API (tests/fake_kubernetes.py, over HTTPS with the pod's token), values masked."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from moto import mock_aws

from mlflow_launcher import cli, contract
from tests.fake_kubernetes import NAMESPACE, State, fake_kubernetes, status_object

REGION = "eu-west-1"
SECRET_NAME = "mlflow-sso-client"
CLIENT_ID = "0oa1b2c3d4e5f6g7h8i9"
CLIENT_SECRET = "kJ8s-very-secret-Qw3e"


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",  # not the secret's: the ARN's region must be used
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def _secret(client, value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return client.create_secret(Name="mlflow/oidc", SecretString=text)["ARN"]


def _run(monkeypatch, capfd, env: dict[str, str], *, log_after: bool = False) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = cli.main(["sync-sso-secret"])
    if log_after:  # once the values were read, later logs are masked too
        cli.log.error("after the run: %s", CLIENT_SECRET)
    return code, capfd.readouterr().err


def _env(fake, arn: str) -> dict[str, str]:
    return {
        **fake.env(),
        contract.SSO_CLIENT_SECRET_ID.name: arn,
        contract.SSO_SECRET_NAME.name: SECRET_NAME,
        contract.SSO_SECRET_NAMESPACE.name: NAMESPACE,
    }


def _api(tmp_path):
    return fake_kubernetes([State(deployment=(404, status_object(404, "NotFound", "-")))], tmp_path)


def test_the_credentials_reach_the_secret_and_never_the_log(aws, monkeypatch, capfd, tmp_path):
    arn = _secret(aws, {"clientID": CLIENT_ID, "clientSecret": CLIENT_SECRET})
    with _api(tmp_path) as fake:
        fake.secrets[SECRET_NAME] = {"metadata": {"name": SECRET_NAME}}
        code, err = _run(monkeypatch, capfd, _env(fake, arn), log_after=True)
    assert code == 0, err
    data = fake.secrets[SECRET_NAME]["data"]
    assert base64.b64decode(data["clientID"]).decode() == CLIENT_ID
    assert base64.b64decode(data["clientSecret"]).decode() == CLIENT_SECRET
    [(path, content_type, _)] = fake.patches
    assert path == f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET_NAME}"
    assert content_type == "application/merge-patch+json"
    assert CLIENT_SECRET not in err and CLIENT_ID not in err
    assert f"Secret {NAMESPACE}/{SECRET_NAME} holds the IdP client's credentials" in err


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("not json", "is not valid JSON"),
        ({"clientID": CLIENT_ID}, "lacks non-empty string key(s): clientSecret"),
        (
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            "key(s): clientID, clientSecret; it must hold",
        ),
        (
            {"clientID": CLIENT_ID, "clientSecret": "  "},
            "lacks non-empty string key(s): clientSecret",
        ),
    ],
)
def test_a_malformed_secret_is_named_without_its_content(
    aws, monkeypatch, capfd, tmp_path, value, why
):
    arn = _secret(aws, value)
    with _api(tmp_path) as fake:
        fake.secrets[SECRET_NAME] = {"metadata": {"name": SECRET_NAME}}
        code, err = _run(monkeypatch, capfd, _env(fake, arn))
    assert code == 2
    assert why in err and arn in err
    assert CLIENT_SECRET not in err and CLIENT_ID not in err
    assert fake.patches == []


def test_a_missing_kubernetes_secret_says_who_applies_it(aws, monkeypatch, capfd, tmp_path):
    arn = _secret(aws, {"clientID": CLIENT_ID, "clientSecret": CLIENT_SECRET})
    with _api(tmp_path) as fake:
        code, err = _run(monkeypatch, capfd, _env(fake, arn))
    assert code == 2
    assert f"cannot write Secret {NAMESPACE}/{SECRET_NAME}: 404" in err
    assert "the chart applies it (empty) before this Job runs" in err
    assert CLIENT_SECRET not in err


def test_an_unset_variable_is_named(monkeypatch, capfd):
    for variable in (contract.SSO_CLIENT_SECRET_ID, contract.SSO_SECRET_NAME):
        monkeypatch.delenv(variable.name, raising=False)
    assert cli.main(["sync-sso-secret"]) == 2
    assert contract.SSO_CLIENT_SECRET_ID.name in capfd.readouterr().err
