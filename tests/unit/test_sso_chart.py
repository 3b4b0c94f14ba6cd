"""The sign-in load balancer (auth.sso) in the chart: what the ALB controller is given, what
reaches the Secret and the server, and what is applied first."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import cdk8s
import pytest

from mlflow_on_eks.k8s_charts import (
    AUTO_MODE_LOAD_BALANCER_CLASS,
    LB_CONTROLLER_LOAD_BALANCER_CLASS,
    AuthProps,
    AuthSecretIds,
    MlflowChart,
    MlflowChartProps,
)
from mlflow_on_eks.k8s_charts.rules import InvalidProps
from mlflow_on_eks.k8s_charts.sso import SsoProps
from tests.unit.test_chart import PROPS, by_kind, env_of, one, render

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f8e7d6c-5b4a-4321-9abc-def012345678"
CLIENT_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow/oidc-AbC123"
# Okta's endpoints, as its discovery document names them (developer.okta.com, "OpenID Connect
# & OAuth 2.0 API", /.well-known/openid-configuration).
IDP = {
    "issuer": "https://example.okta.com/oauth2/default",
    "authorization_endpoint": "https://example.okta.com/oauth2/default/v1/authorize",
    "token_endpoint": "https://example.okta.com/oauth2/default/v1/token",
    "user_info_endpoint": "https://example.okta.com/oauth2/default/v1/userinfo",
}
SSO = {
    "enabled": True,
    "hostname": "mlflow.example.com",
    "certificate_arn": CERTIFICATE,
    "client_secret_arn": CLIENT_SECRET_ARN,
    "allowed_cidrs": ["203.0.113.0/24"],
    **IDP,
}
SECRETS = AuthSecretIds(
    admin="arn:aws:secretsmanager:eu-west-1:123456789012:secret:admin-AbCdEf",
    flask_secret_key="arn:aws:secretsmanager:eu-west-1:123456789012:secret:flask-AbCdEf",
    kek_passphrase="arn:aws:secretsmanager:eu-west-1:123456789012:secret:kek-AbCdEf",
)
SYNC_ROLE = "arn:aws:iam::123456789012:role/mlflow-sso-sync"


def sso_props(
    load_balancer_class: str = AUTO_MODE_LOAD_BALANCER_CLASS, **sso: Any
) -> MlflowChartProps:
    return replace(
        PROPS,
        auth=AuthProps(sso={**SSO, **sso}),
        auth_secrets=SECRETS,
        load_balancer_class=load_balancer_class,
        sso_sync_role_arn=SYNC_ROLE,
    )


def test_the_ingress_puts_the_idps_sign_in_in_front_of_every_path() -> None:
    objects = render(sso_props())
    ingress = one(objects, "Ingress", "mlflow-sso")
    notes = ingress["metadata"]["annotations"]
    alb = "alb.ingress.kubernetes.io/"
    assert notes[f"{alb}auth-type"] == "oidc"
    assert notes[f"{alb}auth-on-unauthenticated-request"] == "authenticate"
    assert json.loads(notes[f"{alb}auth-idp-oidc"]) == {
        "issuer": IDP["issuer"],
        "authorizationEndpoint": IDP["authorization_endpoint"],
        "tokenEndpoint": IDP["token_endpoint"],
        "userInfoEndpoint": IDP["user_info_endpoint"],
        "secretName": "mlflow-sso-client",
    }
    # HTTPS only (the OIDC action exists on HTTPS listeners only), the certificate, pods as
    # targets, and only the listed sources.
    assert notes[f"{alb}listen-ports"] == '[{"HTTPS":443}]'
    assert notes[f"{alb}certificate-arn"] == CERTIFICATE
    assert notes[f"{alb}ssl-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert notes[f"{alb}target-type"] == "ip"
    assert notes[f"{alb}inbound-cidrs"] == "203.0.113.0/24"
    assert notes[f"{alb}scheme"] == "internet-facing"
    assert notes[f"{alb}healthcheck-path"] == "/health"
    # The pods' drain, and no NLB-only attribute (an ALB target group refuses
    # deregistration_delay.connection_termination.enabled).
    drain = PROPS.workload.drain_seconds
    assert notes[f"{alb}target-group-attributes"] == (
        f"deregistration_delay.timeout_seconds={drain}"
    )
    assert ingress["spec"]["ingressClassName"] == "mlflow-sso"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "mlflow.example.com"
    [path] = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "mlflow", "port": {"number": 80}}


@pytest.mark.parametrize(
    ("load_balancer_class", "controller", "controller_role"),
    [
        (AUTO_MODE_LOAD_BALANCER_CLASS, "eks.amazonaws.com/alb", True),
        (LB_CONTROLLER_LOAD_BALANCER_CLASS, "ingress.k8s.aws/alb", False),
    ],
)
def test_the_cluster_controller_gets_the_class_and_may_read_the_one_secret(
    load_balancer_class: str, controller: str, controller_role: bool
) -> None:
    objects = render(sso_props(load_balancer_class))
    ingress_class = one(objects, "IngressClass", "mlflow-sso")
    assert ingress_class["spec"]["controller"] == controller
    assert "namespace" not in ingress_class["metadata"]  # cluster-scoped
    roles = {o["metadata"]["name"]: o for o in by_kind(objects, "Role")}
    if controller_role:  # Auto Mode's managed policy reads no Secret
        rule = roles["mlflow-sso-controller"]["rules"]
        assert rule == [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": ["mlflow-sso-client"],
                "verbs": ["get"],
            }
        ]
        binding = one(objects, "RoleBinding", "mlflow-sso-controller")
        assert binding["subjects"] == [
            {"kind": "Group", "name": "eks:managed", "apiGroup": "rbac.authorization.k8s.io"}
        ]
    else:  # the AWS Load Balancer Controller's ClusterRole reads Secrets already
        assert "mlflow-sso-controller" not in roles


def test_the_client_secret_is_applied_empty_and_filled_by_its_own_job() -> None:
    objects = render(sso_props())
    secret = one(objects, "Secret", "mlflow-sso-client")
    assert "data" not in secret and "stringData" not in secret
    assert one(objects, "Role", "mlflow-sso-sync")["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["mlflow-sso-client"],
            "verbs": ["patch"],
        }
    ]
    account = one(objects, "ServiceAccount", "mlflow-sso-sync")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": SYNC_ROLE}
    [job] = by_kind(objects, "Job")[-1:]
    cron = one(objects, "CronJob", "mlflow-sso-sync")
    for spec in (
        job["spec"]["template"]["spec"],
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ):
        assert spec["serviceAccountName"] == "mlflow-sso-sync"
        [container] = spec["containers"]
        assert container["args"] == ["sync-sso-secret"]
        assert env_of(container) == {
            "MLFLOW_SSO_CLIENT_SECRET_ID": CLIENT_SECRET_ARN,
            "MLFLOW_SSO_SECRET_NAME": "mlflow-sso-client",
            "MLFLOW_SSO_SECRET_NAMESPACE": "ml",
        }
        assert "envFrom" not in container  # it may run before the server's ConfigMap exists
    assert job["metadata"]["name"].startswith("mlflow-sso-sync-")
    policy = one(objects, "NetworkPolicy", "mlflow-sso-sync")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"]


def test_the_sign_in_objects_are_applied_first_with_their_backend() -> None:
    chart = MlflowChart(cdk8s.Testing.app(), "test", props=sso_props())
    first = {(o["kind"], o["metadata"]["name"]) for o in chart.load_balancer_objects()}
    assert {
        ("Ingress", "mlflow-sso"),
        ("IngressClass", "mlflow-sso"),
        ("Secret", "mlflow-sso-client"),
        ("Service", "mlflow"),  # the Ingress's backend
        ("CronJob", "mlflow-sso-sync"),
        ("ServiceAccount", "mlflow-sso-sync"),
    } <= first
    assert ("Deployment", "mlflow") not in first and ("ConfigMap", "mlflow-config") not in first


def test_the_server_allows_the_sign_in_name_over_https_only() -> None:
    env = one(render(sso_props()), "ConfigMap")["data"]
    assert "mlflow.example.com" in env["MLFLOW_ALLOWED_HOSTS"].split(",")
    origins = env["MLFLOW_CORS_ALLOWED_ORIGINS"].split(",")
    assert "https://mlflow.example.com" in origins
    assert "http://mlflow.example.com" not in origins


def test_without_sso_there_are_no_sign_in_objects() -> None:
    objects = render(replace(PROPS, auth=AuthProps(), auth_secrets=SECRETS))
    assert not by_kind(objects, "Ingress") and not by_kind(objects, "IngressClass")
    assert not [o for o in objects if "sso" in o["metadata"]["name"]]


@pytest.mark.parametrize(
    ("changes", "key", "why"),
    [
        ({"hostname": None}, "hostname", "is required with enabled: true"),
        ({"hostname": "*.example.com"}, "hostname", "no wildcard"),
        ({"hostname": "mlflow"}, "hostname", "fully qualified"),
        ({"issuer": "http://example.okta.com"}, "issuer", "https:// URL"),
        (
            {"client_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:oidc"},
            "client_secret_arn",
            "complete ARN",
        ),
        (
            {"certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/nope"},
            "certificate_arn",
            "pattern",
        ),
        ({"allowed_cidrs": []}, "allowed_cidrs", "is empty"),
        ({"allowed_cidrs": ["0.0.0.0/0"]}, "allowed_cidrs", "allow_internet: true"),
        ({"allowed_cidrs": ["2001:db8::/32"]}, "allowed_cidrs", "IPv4 addresses only"),
        ({"scope": "email profile"}, "scope", "pattern"),
        ({"session_timeout_seconds": 604801}, "session_timeout_seconds", "less than or equal"),
    ],
)
def test_each_bad_value_is_refused_naming_its_key(
    changes: dict[str, Any], key: str, why: str
) -> None:
    with pytest.raises(InvalidProps) as error:
        SsoProps(**{**SSO, **changes})
    assert any(
        line.strip().startswith(f"{key}:") and why in line for line in str(error.value).splitlines()
    ), str(error.value)


def test_sso_needs_sign_in_and_settings_while_off_are_refused() -> None:
    with pytest.raises(InvalidProps, match=r"sso\.enabled: needs auth\.enabled: true"):
        AuthProps(enabled=False, allow_anonymous_through=["cluster"], sso=SSO)
    with pytest.raises(InvalidProps, match=r"is false but other auth\.sso settings"):
        SsoProps(hostname="mlflow.example.com")
    assert SsoProps(**{**SSO, "allowed_cidrs": ["0.0.0.0/0"], "allow_internet": True}).enabled


ALB_ARN = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/"
    "k8s-ml-mlflowss-0a1b2c3d4e/50dc6c495c0c9188"
)


def test_the_server_accepts_the_header_of_this_alb_from_its_subnets_only() -> None:
    props = replace(
        sso_props(admin_group="mlflow-admins", username_claim="preferred_username"),
        sso_signer_arn=ALB_ARN,
        sso_trusted_cidrs="10.0.0.0/19,10.0.32.0/19",
    )
    data = one(render(props), "ConfigMap", "mlflow-config")["data"]
    assert data["MLFLOW_SSO_ALB_ARN"] == ALB_ARN
    assert data["MLFLOW_SSO_TRUSTED_CIDRS"] == "10.0.0.0/19,10.0.32.0/19"
    assert data["MLFLOW_SSO_USERNAME_CLAIM"] == "preferred_username"
    assert data["MLFLOW_SSO_GROUPS_CLAIM"] == "groups"
    assert data["MLFLOW_SSO_ADMIN_GROUP"] == "mlflow-admins"
    # No key URL ever: the launcher fetches keys from AWS's endpoint for the ALB's region.
    assert "MLFLOW_SSO_KEY_URL" not in data
    # Until the ALB's ARN is known there is no header to accept.
    assert not [k for k in one(render(sso_props()), "ConfigMap")["data"] if "SSO" in k]
