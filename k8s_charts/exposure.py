"""How clients reach the server besides the in-cluster Service: the load balancers' settings
(the config file's `exposure` section) and the Service annotations that ask a cluster's load
balancer controller for them.

Both load balancers are Network Load Balancers in IP mode. With a certificate, a listener on
443 terminates TLS at the load balancer and forwards plain HTTP to the pods' port inside the
VPC (the pods do not serve TLS themselves); without one (the internal load balancer only), a
listener on 80 forwards plain HTTP.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from .contract import TLS_SERVICE_PORT
from .model import Props
from .rules import (
    DEFAULT_TLS_POLICY,
    AcmCertificateArn,
    CaBundle,
    Cidr,
    DnsName,
    Rule,
    TlsPolicy,
    cidrs_needed_problem,
    internet_problem,
    ipv6_problem,
    set_while_off,
)

AUTO_MODE_LOAD_BALANCER_CLASS = "eks.amazonaws.com/nlb"
"""EKS Auto Mode's own load balancer controller claims Services of this class."""
LB_CONTROLLER_LOAD_BALANCER_CLASS = "service.k8s.aws/nlb"
"""The AWS Load Balancer Controller's class, for clusters that run it instead."""
LoadBalancerController = Literal["auto-mode", "aws-load-balancer-controller"]
"""Which controller provisions a cluster's load balancers (the config's and the attributes')."""
LOAD_BALANCER_CLASSES: dict[str, str] = {
    "auto-mode": AUTO_MODE_LOAD_BALANCER_CLASS,
    "aws-load-balancer-controller": LB_CONTROLLER_LOAD_BALANCER_CLASS,
}

LB_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-"
"""The prefix of the Service annotations both controllers read."""


def tls_annotations(
    certificate_arn: str, ssl_policy: str, load_balancer_class: str
) -> dict[str, str]:
    """A Service's annotations for a TLS listener on TLS_SERVICE_PORT, terminated at the load
    balancer, which forwards plain TCP to the pods.

    EKS Auto Mode lists `ssl-cert` and `ssl-ports` among the annotations it supports
    (https://docs.aws.amazon.com/eks/latest/userguide/auto-configure-nlb.html); the AWS Load
    Balancer Controller documents those two, `ssl-negotiation-policy` and `backend-protocol`
    (`tcp`, its default, or `ssl` to re-encrypt to the pods, which serve plain HTTP; its guide,
    docs/guide/service/annotations.md, "TLS"). The policy goes to both classes: Auto Mode's
    page lists "commonly used" annotations and says it may not support all; if it ignored this
    one, the listener would get the API's default, ELBSecurityPolicy-2016-08, which still
    accepts TLS 1.0 (NLB User Guide, "Security policies"), so docs/operations.md says how to
    read the policy a listener got. `backend-protocol` only where it is documented: `tcp` is
    what a TLS listener forwards with when it is absent."""
    annotations = {
        f"{LB_ANNOTATION}ssl-cert": certificate_arn,
        f"{LB_ANNOTATION}ssl-ports": str(TLS_SERVICE_PORT),
        f"{LB_ANNOTATION}ssl-negotiation-policy": ssl_policy,
    }
    if load_balancer_class == LB_CONTROLLER_LOAD_BALANCER_CLASS:
        annotations[f"{LB_ANNOTATION}backend-protocol"] = "tcp"
    return annotations


_SSL_POLICY_DESCRIPTION = (
    "Security policy of the TLS listener: one that requires TLS 1.2 or later (the NLB User "
    "Guide's list, TLS 1.0/1.1 policies refused). On EKS Auto Mode, whose documentation does "
    "not list this annotation, read the policy the listener got after a deploy "
    "(docs/operations.md, TLS on the load balancers)."
)


def _when_enabled(rule: Rule) -> Rule:
    return Rule(rule.key, ("enabled", *rule.reads), lambda e: rule.check(e) if e.enabled else None)


EXTERNAL_RULES = (
    set_while_off(
        ("allowed_cidrs", "certificate_arn"),
        "allowed_cidrs/certificate_arn are set; set enabled: true or remove them",
    ),
    Rule(
        "certificate_arn",
        ("enabled", "certificate_arn"),
        lambda e: (
            "is required with enabled: true; the external load balancer serves HTTPS only"
            if e.enabled and e.certificate_arn is None
            else None
        ),
    ),
    Rule(
        "ssl_policy",
        ("enabled", "ssl_policy"),
        lambda e: (
            "applies only with enabled: true"
            if not e.enabled and e.ssl_policy != DEFAULT_TLS_POLICY
            else None
        ),
    ),
    *map(
        _when_enabled,
        (
            Rule(
                "allowed_cidrs", ("allowed_cidrs",), lambda e: cidrs_needed_problem(e.allowed_cidrs)
            ),
            Rule("allowed_cidrs", ("allowed_cidrs",), lambda e: ipv6_problem(e.allowed_cidrs)),
            Rule(
                "allowed_cidrs",
                ("allowed_cidrs", "allow_internet"),
                lambda e: internet_problem(e.allowed_cidrs, e.allow_internet),
            ),
        ),
    ),
)
"""Rules between the external load balancer's fields."""


class ExternalLoadBalancerProps(Props):
    """An internet-facing load balancer, off by default: the sign-in page and the API are then
    open to password guessing from every listed network. It terminates TLS and admits the
    listed sources only. The config file's `exposure.external` section."""

    RULES = EXTERNAL_RULES

    enabled: bool = Field(False, description="Create an internet-facing load balancer.")
    allowed_cidrs: tuple[Cidr, ...] = Field(
        (),
        description="Source ranges allowed to reach it (loadBalancerSourceRanges); required. "
        "IPv4 only: the load balancer has no IPv6 address.",
    )
    certificate_arn: AcmCertificateArn | None = Field(
        None, description="ACM certificate for TLS on port 443; required when enabled."
    )
    ssl_policy: TlsPolicy = Field(DEFAULT_TLS_POLICY, description=_SSL_POLICY_DESCRIPTION)
    allow_internet: bool = Field(
        False,
        description="Explicit opt-in needed for allowed_cidrs that admit every IPv4 or IPv6 "
        "address: 0.0.0.0/0, ::/0, or ranges that add up to them (0.0.0.0/1 + 128.0.0.0/1).",
    )


_TLS_ONLY = {"hostname": None, "ssl_policy": DEFAULT_TLS_POLICY, "ca_bundle": None}
"""The internal load balancer's TLS settings, with their defaults: set, they need a certificate."""


def _tls_only_problem(certificate_arn: str | None, value: object, default: object) -> str | None:
    if certificate_arn is None and value != default:
        return (
            "applies only with certificate_arn: without a certificate the internal load "
            "balancer serves plain HTTP"
        )
    return None


def _hostname_problem(certificate_arn: str | None, hostname: str | None) -> str | None:
    if certificate_arn is not None and hostname is None:
        return (
            "is required with certificate_arn: the DNS name clients use, which the certificate "
            "must cover (the load balancer's own DNS name is known only after the deploy, and "
            "no public certificate can name it)"
        )
    return None


INTERNAL_RULES = (
    set_while_off(("certificate_arn",), "certificate_arn is set; set enabled: true or remove it"),
    Rule(
        "hostname",
        ("certificate_arn", "hostname"),
        lambda i: _hostname_problem(i.certificate_arn, i.hostname),
    ),
    *(
        Rule(
            key,
            ("certificate_arn", key),
            lambda i, key=key, default=default: _tls_only_problem(
                i.certificate_arn, getattr(i, key), default
            ),
        )
        for key, default in _TLS_ONLY.items()
    ),
)
"""Rules between the internal load balancer's fields."""


class InternalLoadBalancerProps(Props):
    """A load balancer reachable from the VPC (and networks routed to it), on by default. Plain
    HTTP on port 80 unless `certificate_arn` is set, then HTTPS on port 443 only. The config
    file's `exposure.internal` section; `internal: true`/`false` is short for `enabled`."""

    RULES = INTERNAL_RULES

    enabled: bool = Field(
        True,
        description="An internal (VPC-only) network load balancer. `exposure.internal: false` "
        "is short for `{enabled: false}`.",
    )
    certificate_arn: AcmCertificateArn | None = Field(
        None,
        description="ACM certificate (public, or issued by AWS Private CA; the stack's account "
        "and region) for TLS on port 443 instead of plain HTTP on port 80. The load balancer "
        "terminates TLS and forwards plain HTTP to the pods inside the VPC. Default: none, "
        "plain HTTP: with sign-in on, every request's password then crosses the VPC in clear, "
        "and synth warns (docs/operations.md, TLS on the load balancers).",
    )
    hostname: DnsName | None = Field(
        None,
        description="With certificate_arn, required: the DNS name clients use, which the "
        "certificate covers; point it at the load balancer (output InternalLoadBalancerDnsName). "
        "The server allows it as Host and browser origin, InternalTrackingUri becomes "
        "https://<hostname>, and the deploy check connects to the load balancer under this name "
        "(TLS SNI and Host), verifying the certificate for it, without a DNS lookup of it.",
    )
    ssl_policy: TlsPolicy = Field(DEFAULT_TLS_POLICY, description=_SSL_POLICY_DESCRIPTION)
    ca_bundle: CaBundle | None = Field(
        None,
        description="PEM certificates of the CAs the deploy check trusts for the load "
        "balancer's certificate, instead of the public roots: for a certificate issued by AWS "
        "Private CA, its root CA's certificate (`aws acm-pca get-certificate-authority-"
        "certificate`). Certificates only, never a key. Default: the public roots (Mozilla's, "
        "as the MLflow client's requests trusts them).",
    )

    @property
    def tls(self) -> bool:
        """Whether the load balancer serves HTTPS (a certificate is set)."""
        return self.certificate_arn is not None


def _enabled_shorthand(value: object) -> object:
    """`internal: true`/`false`, the section's whole form before it had TLS settings, means the
    same as before: `{enabled: ...}`."""
    return {"enabled": value} if isinstance(value, bool) else value


class ExposureProps(Props):
    """How clients reach the server besides the in-cluster ClusterIP service: the config
    file's `exposure` section, and MlflowTrackingServer's and the chart's `exposure`."""

    internal: Annotated[InternalLoadBalancerProps, BeforeValidator(_enabled_shorthand)] = Field(
        default_factory=InternalLoadBalancerProps
    )
    external: ExternalLoadBalancerProps = Field(default_factory=ExternalLoadBalancerProps)

    def scheme(self, kind: str) -> str:
        """How clients speak to the Service of `kind` (`cluster`, `internal`, `external`)."""
        tls = {"internal": self.internal.tls, "external": True}.get(kind, False)
        return "https" if tls else "http"


def ways_in(exposure: Any) -> list[str]:
    """The Services clients come through: `cluster` always, `internal` and `external` as
    `exposure` asks. `exposure` may be any value with its fields (the config's rules pass
    the valid fields of an otherwise invalid section)."""
    ways = ["cluster"]
    if exposure.internal.enabled:
        ways.append("internal")
    if exposure.external.enabled:
        ways.append("external")
    return ways
