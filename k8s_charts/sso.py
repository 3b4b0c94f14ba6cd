"""Single sign-on for people: an HTTPS Application Load Balancer whose listener signs users in
with the team's OpenID Connect IdP, in front of MLflow's own permissions.

`SsoProps` is the config file's `auth.sso` section (and `AuthProps.sso`). The chart turns it into
an Ingress on the cluster's ALB controller (`sso_objects`): EKS Auto Mode's
`eks.amazonaws.com/alb`, or the AWS Load Balancer Controller's `ingress.k8s.aws/alb` on an
existing cluster; both read the same `alb.ingress.kubernetes.io/*` annotations. The ALB
authenticates each browser with the IdP and passes the signed identity to MLflow in
`x-amzn-oidc-data`, which the launcher verifies (signature, expiry, signer = this ALB).

The IdP's client secret never passes through a template or a manifest: the chart applies an
empty Secret, and a Job of the server's image (`sync-sso-secret`, its own ServiceAccount and IAM
role, allowed to read that one Secrets Manager secret and to patch that one Secret) copies the
value across. The controller reads the Secret the `auth-idp-oidc` annotation names; EKS Auto
Mode's controller needs a Role for it (below), the AWS Load Balancer Controller's ClusterRole
already reads Secrets (aws/eks-charts, aws-load-balancer-controller templates/rbac.yaml).
"""

from __future__ import annotations

import json

from pydantic import Field

from .model import Props
from .rules import (
    AcmCertificateArn,
    Cidr,
    DnsName,
    HttpsUrl,
    Rule,
    SecretArn,
    internet_problem,
    ipv6_problem,
    set_while_off,
)

ALB = "alb.ingress.kubernetes.io/"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 only, as on the external NLB (ELB docs, "Security policies for your
Application Load Balancer")."""
MAX_SESSION_SECONDS = 604800
"""The ALB's longest authentication session, 7 days (AuthenticateOidcActionConfig,
SessionTimeout: "The default is 604800 seconds (7 days)", also its maximum)."""

_REQUIRED = (
    "hostname",
    "certificate_arn",
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "user_info_endpoint",
    "client_secret_arn",
)


def _required(name: str) -> Rule:
    return Rule(
        name,
        ("enabled", name),
        lambda s: (
            "is required with enabled: true" if s.enabled and getattr(s, name) is None else None
        ),
    )


def _when_enabled(rule: Rule) -> Rule:
    return Rule(rule.key, ("enabled", *rule.reads), lambda s: rule.check(s) if s.enabled else None)


class SsoProps(Props):
    """Single sign-on through an HTTPS Application Load Balancer and the team's OpenID Connect
    IdP (Entra ID, Okta, Google, Cognito, ...). People sign in in the browser; each becomes an
    MLflow user on first sign-in, with auth.default_permission, and an admin when the IdP puts
    them in admin_group. Scripts and the MLflow client keep basic auth through the internal
    load balancer. Needs auth.enabled. The config file's `auth.sso` section."""

    RULES = (
        set_while_off(
            (*_REQUIRED, "admin_group", "allowed_cidrs"),
            "other auth.sso settings are set; set enabled: true or remove them",
        ),
        *map(_required, _REQUIRED),
        *map(
            _when_enabled,
            (
                Rule(
                    "allowed_cidrs",
                    ("allowed_cidrs",),
                    lambda s: (
                        "is empty; list the networks that may reach the sign-in page "
                        "(0.0.0.0/0 with allow_internet: true for anywhere: everyone must "
                        "still sign in with the IdP)"
                        if not s.allowed_cidrs
                        else None
                    ),
                ),
                Rule("allowed_cidrs", ("allowed_cidrs",), lambda s: ipv6_problem(s.allowed_cidrs)),
                Rule(
                    "allowed_cidrs",
                    ("allowed_cidrs", "allow_internet"),
                    lambda s: internet_problem(s.allowed_cidrs, s.allow_internet),
                ),
            ),
        ),
    )

    enabled: bool = Field(False, description="Create the sign-in load balancer.")
    hostname: DnsName | None = Field(
        None,
        description="The name people open in the browser (https://<hostname>); point it at the "
        "SsoLoadBalancerDnsName output (a CNAME or alias record). Required when enabled.",
    )
    certificate_arn: AcmCertificateArn | None = Field(
        None,
        description="ACM certificate for hostname, in the stack's account and region. "
        "Required when enabled.",
    )
    issuer: HttpsUrl | None = Field(
        None, description="The IdP's issuer (its discovery document's `issuer`). Required."
    )
    authorization_endpoint: HttpsUrl | None = Field(
        None, description="The IdP's `authorization_endpoint`. Required when enabled."
    )
    token_endpoint: HttpsUrl | None = Field(
        None, description="The IdP's `token_endpoint`. Required when enabled."
    )
    user_info_endpoint: HttpsUrl | None = Field(
        None, description="The IdP's `userinfo_endpoint`. Required when enabled."
    )
    client_secret_arn: SecretArn | None = Field(
        None,
        description="Secrets Manager secret holding the IdP application's credentials as JSON "
        '{"clientID": ..., "clientSecret": ...}; copied into the cluster by a Job, never into '
        "a template. Required when enabled.",
    )
    scope: str = Field(
        "openid email profile",
        pattern=r"^openid( [\x21\x23-\x5b\x5d-\x7e]+)*$",
        description="The claims asked of the IdP (space-separated; must start with openid). "
        "Add the scope that makes the IdP send groups_claim, if it needs one.",
    )
    username_claim: str = Field(
        "email",
        pattern=r"^[A-Za-z0-9_:.-]{1,64}$",
        description="The claim that names the MLflow user.",
    )
    groups_claim: str = Field(
        "groups",
        pattern=r"^[A-Za-z0-9_:.-]{1,64}$",
        description="The claim listing the user's groups, read for admin_group.",
    )
    admin_group: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Members of this IdP group are MLflow admins. Default: none (admins are "
        "made in MLflow).",
    )
    session_timeout_seconds: int = Field(
        28800,
        ge=60,
        le=MAX_SESSION_SECONDS,
        description="How long a browser stays signed in before the ALB asks the IdP again.",
    )
    internet_facing: bool = Field(
        True, description="An internet-facing load balancer; false: internal (VPC only)."
    )
    allowed_cidrs: tuple[Cidr, ...] = Field(
        (),
        description="Source ranges allowed to reach it; required. IPv4 only. Everyone must "
        "still sign in with the IdP.",
    )
    allow_internet: bool = Field(
        False,
        description="Explicit opt-in for allowed_cidrs that admit every address (0.0.0.0/0).",
    )


def oidc_annotation(sso: SsoProps, secret_name: str) -> str:
    """`auth-idp-oidc`: the IdP's endpoints and the Secret holding the client's credentials
    (AWS Load Balancer Controller docs, Ingress annotations, "auth-idp-oidc")."""
    return json.dumps(
        {
            "issuer": sso.issuer,
            "authorizationEndpoint": sso.authorization_endpoint,
            "tokenEndpoint": sso.token_endpoint,
            "userInfoEndpoint": sso.user_info_endpoint,
            "secretName": secret_name,
        },
        separators=(",", ":"),
    )


def ingress_annotations(
    sso: SsoProps, *, secret_name: str, target_group_attributes: str
) -> dict[str, str]:
    """The Ingress's `alb.ingress.kubernetes.io/*` annotations: HTTPS only, pods as targets,
    the OIDC action in front of every path."""
    return {
        f"{ALB}scheme": "internet-facing" if sso.internet_facing else "internal",
        f"{ALB}target-type": "ip",
        f"{ALB}listen-ports": '[{"HTTPS":443}]',
        f"{ALB}certificate-arn": str(sso.certificate_arn),
        f"{ALB}ssl-policy": TLS_POLICY,
        f"{ALB}inbound-cidrs": ",".join(sso.allowed_cidrs),
        f"{ALB}healthcheck-path": "/health",
        f"{ALB}target-group-attributes": target_group_attributes,
        f"{ALB}auth-type": "oidc",
        f"{ALB}auth-idp-oidc": oidc_annotation(sso, secret_name),
        f"{ALB}auth-on-unauthenticated-request": "authenticate",
        f"{ALB}auth-scope": sso.scope,
        f"{ALB}auth-session-timeout": str(sso.session_timeout_seconds),
    }
