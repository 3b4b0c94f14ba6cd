"""The deployment's settings: one YAML file, validated into a frozen, typed model.

Everything below app.py takes these typed values; nothing else reads context or files.
Each field's description is the configuration reference (docs/configuration.md is generated
from it), so say the default and the why there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
)

from mlflow_on_eks.constructs_lib.artifact_store import ArtifactProps
from mlflow_on_eks.constructs_lib.database_props import DatabaseProps, endpoint_region
from mlflow_on_eks.constructs_lib.kubernetes import DEFAULT_VERSION, SUPPORTED_VERSIONS
from mlflow_on_eks.constructs_lib.monitoring import default_max_connections
from mlflow_on_eks.constructs_lib.monitoring_props import MonitoringProps
from mlflow_on_eks.k8s_charts import AuthProps, GcProps, JobsProps, WorkloadProps
from mlflow_on_eks.k8s_charts.auth import anonymous_problem
from mlflow_on_eks.k8s_charts.exposure import ExposureProps, LoadBalancerController, ways_in
from mlflow_on_eks.k8s_charts.model import SettingsModel
from mlflow_on_eks.k8s_charts.node_pool_chart import ephemeral_problem
from mlflow_on_eks.k8s_charts.rules import (
    PARTITION_PATTERN,
    REGION_PATTERN,
    Cidr,
    Rule,
    SecurityGroupId,
    arn_region_and_account,
)

# One list of versions, kept where the kubectl layers are.
SUPPORTED_KUBERNETES_VERSIONS = SUPPORTED_VERSIONS
DEFAULT_KUBERNETES_VERSION = DEFAULT_VERSION

# An EKS cluster's IAM OIDC provider: oidc.eks.<region>.amazonaws.com[.cn]/id/<32 hex digits>
# (what `aws eks describe-cluster --query cluster.identity.oidc.issuer` shows, without https://).
_OIDC_ISSUER = re.compile(
    rf"oidc\.eks\.({REGION_PATTERN})\.amazonaws\.com(?:\.cn)?/id/[0-9A-F]{{32}}"
)
OidcProviderArn = Annotated[
    str,
    StringConstraints(
        pattern=rf"^{PARTITION_PATTERN}:iam::\d{{12}}:oidc-provider/{_OIDC_ISSUER.pattern}$"
    ),
]
IamRoleArn = Annotated[
    str,
    StringConstraints(pattern=rf"^{PARTITION_PATTERN}:iam::\d{{12}}:role/[A-Za-z0-9_+=,.@/-]+$"),
]
SubnetId = Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
VpcId = Annotated[str, StringConstraints(pattern=r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
AvailabilityZone = Annotated[str, StringConstraints(pattern=rf"^{REGION_PATTERN}[a-z]$")]


def _account_as_text(value: object) -> object:
    """YAML reads an unquoted account ID as a number; twelve digits mean the same as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        if len(str(value)) == 12:
            return str(value)
        raise ValueError(
            f"YAML read {value} as a number and dropped what made it 12 digits (leading zeros); "
            "write the account ID in quotes"
        )
    return value


def _version_as_text(value: object) -> object:
    """`kubernetes_version: 1.35` unquoted is a number in YAML; 1.30 would read as 1.3."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        text = format(value, "g")
        if text in SUPPORTED_KUBERNETES_VERSIONS:
            return text
        raise ValueError(
            f"YAML read {value} as a number (1.30 would read as 1.3); write the version in "
            f"quotes, one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}"
        )
    return value


AccountId = Annotated[
    str, BeforeValidator(_account_as_text), StringConstraints(pattern=r"^\d{12}$")
]
KubernetesVersion = Annotated[
    Literal[SUPPORTED_KUBERNETES_VERSIONS],  # type: ignore[valid-type]
    BeforeValidator(_version_as_text),
]


# Frozen, unknown keys refused, every problem in one run: the library's settings base
# (k8s_charts/model.py), which the server's section (WorkloadProps) is made of too.
StrictModel = SettingsModel


class AwsSettings(StrictModel):
    """Where to deploy. Both unset: an environment-agnostic synth (the CLI's credentials decide)."""

    account: AccountId | None = Field(
        None,
        description="AWS account ID (12 digits). Default: the CLI's account at deploy time. "
        "Set with `region` for a new cluster, the synth looks the region's AZs up with your "
        "credentials unless `cluster.availability_zones` names them.",
    )
    region: Annotated[str, StringConstraints(pattern=rf"^{REGION_PATTERN}$")] | None = Field(
        None,
        description="AWS region, e.g. eu-west-1. Default: the CLI's region at deploy time. "
        "See `account` for the AZ lookup the two together cause.",
    )


_IMPORT_KEYS = (
    "name",
    "oidc_provider_arn",
    "security_group_id",
    "vpc_id",
    "private_subnet_ids",
)
_IMPORT_OPTIONAL_KEYS = ("kubectl_role_arn", "database_client_security_group_id")
_NEW_CLUSTER_KEYS = ("admin_role_arns", "endpoint_access", "public_access_cidrs", "network_policy")


def _only_with(mode: str, keys: tuple[str, ...], why: str) -> tuple[Rule, ...]:
    """Rules refusing each of `keys` when set in the other mode."""
    return tuple(
        Rule(
            key,
            ("mode", key),
            lambda c, key=key: (
                f"only applies with mode: {mode}; {why}"
                if c.mode != mode and c.given(key)
                else None
            ),
        )
        for key in keys
    )


def _subnets_problem(subnets: list[str]) -> str | None:
    if subnets and len(subnets) < 2:
        return "at least two subnets are needed (RDS spans two AZs)"
    if len(set(subnets)) != len(subnets):
        return "a subnet is listed twice"
    return None


def _zones_problem(mode: str, zones: list[str], subnets: list[str]) -> str | None:
    if not zones:
        return None
    if mode == "existing" and subnets and len(zones) != len(subnets):
        return (
            "must name the AZ of each private subnet, in the same order "
            f"({len(zones)} AZs for {len(subnets)} subnets)"
        )
    if mode == "new" and len(set(zones)) != len(zones):
        return "an AZ is listed twice"
    if mode == "new" and not 2 <= len(zones) <= 3:
        return "a new VPC spans two or three AZs"
    if len(set(zones)) < 2:
        return "the subnets must span at least two AZs"
    regions = sorted({zone[:-1] for zone in zones})
    if len(regions) > 1:
        return f"are in different regions ({', '.join(regions)}); a VPC is in one region"
    return None


class ClusterSettings(StrictModel):
    """The EKS cluster: a new Auto Mode cluster, or an existing one imported by attributes."""

    mode: Literal["new", "existing"] = Field(
        "new", description="`new` creates an EKS Auto Mode cluster and its VPC; `existing` imports."
    )
    kubernetes_version: KubernetesVersion = Field(
        DEFAULT_KUBERNETES_VERSION,
        description="Kubernetes minor version; picks the matching kubectl layer and schemas.",
    )
    name: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")] | None = (
        Field(None, description="existing: the EKS cluster name.")
    )
    oidc_provider_arn: OidcProviderArn | None = Field(
        None, description="existing: ARN of the cluster's IAM OIDC provider (for IRSA)."
    )
    security_group_id: SecurityGroupId | None = Field(
        None,
        description="existing: the cluster security group (every node and pod carries it); the "
        "kubectl handler runs with it, and the database admits it unless "
        "`database_client_security_group_id` is set.",
    )
    vpc_id: VpcId | None = Field(None, description="existing: the cluster's VPC.")
    private_subnet_ids: list[SubnetId] = Field(
        default_factory=list,
        description="existing: private subnets for the database and the kubectl handler "
        "(at least two, in different AZs).",
    )
    availability_zones: list[AvailabilityZone] = Field(
        default_factory=list,
        description="existing: the AZs of `private_subnet_ids`, same order. new, optional: the "
        "VPC's AZs (two or three); naming them keeps a synth with `aws.account` and `aws.region` "
        "offline, where CDK would otherwise look the region's AZs up with your credentials "
        "(and cache them in cdk.context.json).",
    )
    kubectl_role_arn: IamRoleArn | None = Field(
        None,
        description="existing, optional: a role that already has cluster-admin access for the "
        "kubectl handler. Default: a new role with an EKS access entry.",
    )
    database_client_security_group_id: SecurityGroupId | None = Field(
        None,
        description="existing, optional: a security group only MLflow's pods carry (security "
        "groups for pods: a SecurityGroupPolicy for them); the database then admits it alone, "
        "instead of `security_group_id`. Attach it to the pods before you set it. Default: "
        "none: the database admits the cluster security group, so every workload on the "
        "cluster can reach it, and synth warns (docs/operations.md, Who reaches the database).",
    )

    load_balancer_controller: LoadBalancerController = Field(
        "auto-mode",
        description="Which controller provisions the load balancers: EKS Auto Mode's own, or the "
        "AWS Load Balancer Controller (existing clusters without Auto Mode).",
    )
    admin_role_arns: list[IamRoleArn] = Field(
        default_factory=list,
        description="new: IAM roles granted cluster-admin through EKS access entries (use them "
        "with `aws eks update-kubeconfig --role-arn`). Default: the CDK bootstrap deploy role "
        "(`cdk-<qualifier>-deploy-role-<account>-<region>`), which whoever can `cdk deploy` may "
        "assume; with roles listed here, only those.",
    )
    endpoint_access: Literal["public_and_private", "private"] = Field(
        "public_and_private",
        description="new: the EKS API endpoint. `public_and_private` (default): reachable from "
        "`public_access_cidrs` (IAM-authenticated) and from the VPC; `private`: from the VPC "
        "only (kubectl then needs a VPN, peering or a bastion).",
    )
    public_access_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["0.0.0.0/0"],
        description="new, with public_and_private: source ranges of the public endpoint. "
        "Default: 0.0.0.0/0 (AWS's default; every call still needs IAM credentials).",
    )
    network_policy: bool = Field(
        True,
        description="new: enforce Kubernetes NetworkPolicy (the chart ships one): turns on the "
        "network policy controller and runs the server on a node pool whose node class enables "
        "it. Existing clusters: see the README for the precondition.",
    )

    RULES = (
        Rule(
            "public_access_cidrs",
            ("mode", "endpoint_access"),
            lambda c: (
                "applies only with endpoint_access: public_and_private"
                if c.mode == "new"
                and c.endpoint_access == "private"
                and c.given("public_access_cidrs")
                else None
            ),
        ),
        Rule(
            "public_access_cidrs",
            ("mode", "endpoint_access", "public_access_cidrs"),
            lambda c: (
                "is empty; list the ranges that may reach the public endpoint, or set "
                "endpoint_access: private"
                if c.mode == "new"
                and c.endpoint_access == "public_and_private"
                and not c.public_access_cidrs
                else None
            ),
        ),
        Rule(
            "load_balancer_controller",
            ("mode", "load_balancer_controller"),
            lambda c: (
                "a new cluster runs EKS Auto Mode, whose own controller provisions load "
                "balancers; only `auto-mode` applies"
                if c.mode == "new" and c.load_balancer_controller != "auto-mode"
                else None
            ),
        ),
        *_only_with(
            "existing",
            (*_IMPORT_KEYS, *_IMPORT_OPTIONAL_KEYS),
            "a new cluster creates its own VPC and identity",
        ),
        *_only_with(
            "new",
            _NEW_CLUSTER_KEYS,
            "an existing cluster keeps its own access, endpoint and network policy settings",
        ),
        *(
            Rule(
                key,
                ("mode", key),
                lambda c, key=key: (
                    "is needed with mode: existing, to import the cluster"
                    if c.mode == "existing" and not getattr(c, key)
                    else None
                ),
            )
            for key in (*_IMPORT_KEYS, "availability_zones")
        ),
        Rule(
            "database_client_security_group_id",
            ("security_group_id", "database_client_security_group_id"),
            lambda c: (
                "is the cluster security group itself, which every pod of the cluster carries; "
                "name a group only MLflow's pods carry, or leave it unset"
                if c.database_client_security_group_id
                and c.database_client_security_group_id == c.security_group_id
                else None
            ),
        ),
        Rule(
            "private_subnet_ids",
            ("mode", "private_subnet_ids"),
            lambda c: _subnets_problem(c.private_subnet_ids) if c.mode == "existing" else None,
        ),
        Rule(
            "availability_zones",
            ("mode", "private_subnet_ids", "availability_zones"),
            lambda c: _zones_problem(c.mode, c.availability_zones, c.private_subnet_ids),
        ),
    )


class DeployCheckSettings(StrictModel):
    """What `cdk deploy` proves before it succeeds."""

    enabled: bool = Field(
        True,
        description=(
            "Run a Job that waits for the rollout, then uses MLflow through the cluster Service "
            "and the internal load balancer as a user would; the deploy fails with its reason "
            "otherwise. The Job needs HTTPS to S3 to report (NAT or an S3 gateway endpoint)."
        ),
    )


def _connections_problem(monitoring: MonitoringProps, database: DatabaseProps) -> str | None:
    if not monitoring.enabled or monitoring.max_database_connections is not None:
        return None
    if database.existing.endpoint:
        return (
            "is needed: database.existing.endpoint names an instance of unknown class, so the "
            "connections alarm cannot estimate max_connections (SHOW VARIABLES LIKE "
            "'max_connections' on MySQL, SHOW max_connections on PostgreSQL)"
        )
    if default_max_connections(database.engine, database.instance_type) is None:
        return (
            f"is needed: database.instance_type {database.instance_type!r} is not a t, m or r "
            "class, so the connections alarm cannot estimate max_connections"
        )
    return None


def _oidc_place(arn: str) -> tuple[str | None, str | None]:
    issuer = _OIDC_ISSUER.search(arn)
    return (issuer.group(1) if issuer else None, arn_region_and_account(arn)[1])


# The settings that imply a region and/or an account, in the order they are trusted when
# aws.region/aws.account are not set: (key, (region, account) from its value).
_PLACED: tuple[tuple[str, Callable[[Any], tuple[str | None, str | None]]], ...] = (
    ("aws.region", lambda s: (s.aws.region, None)),
    ("aws.account", lambda s: (None, s.aws.account)),
    (
        "cluster.availability_zones",
        lambda s: (
            (s.cluster.availability_zones[0][:-1], None)
            if s.cluster.availability_zones
            else (None, None)
        ),
    ),
    (
        "cluster.oidc_provider_arn",
        lambda s: (
            _oidc_place(s.cluster.oidc_provider_arn)
            if s.cluster.oidc_provider_arn
            else (None, None)
        ),
    ),
    # The kubectl handler's Lambda execution role: Lambda takes roles of its own account.
    (
        "cluster.kubectl_role_arn",
        lambda s: (
            (None, arn_region_and_account(s.cluster.kubectl_role_arn)[1])
            if s.cluster.kubectl_role_arn
            else (None, None)
        ),
    ),
    # The pods read the instance's secret, and snapshot it, in the deployment's region (its
    # secret and key agree with it: database_props.ExistingDatabase's rules).
    (
        "database.existing.endpoint",
        lambda s: (
            (endpoint_region(s.database.existing.endpoint), None)
            if s.database.existing.endpoint
            else (None, None)
        ),
    ),
    # A load balancer serves ACM certificates of its own account and region only (ACM User
    # Guide, "Services integrated with ACM": Elastic Load Balancing).
    (
        "exposure.internal.certificate_arn",
        lambda s: (
            arn_region_and_account(s.exposure.internal.certificate_arn)
            if s.exposure.internal.certificate_arn
            else (None, None)
        ),
    ),
    (
        "exposure.external.certificate_arn",
        lambda s: (
            arn_region_and_account(s.exposure.external.certificate_arn)
            if s.exposure.external.certificate_arn
            else (None, None)
        ),
    ),
)


def _keys_up_to(key: str) -> tuple[str, ...]:
    """What the rule about `key` reads: it and the settings trusted before it."""
    keys = [k for k, _ in _PLACED]
    return tuple(keys[: keys.index(key) + 1])


def _disagrees(settings: Any, key: str) -> str | None:
    """Whether `key` names another region or account than aws.region/aws.account or, without
    those, than the first setting before it that names one."""
    placed = []
    for other, place in _PLACED:
        placed.append((other, place(settings)))
        if other == key:
            break
    value_of = placed[-1][1]
    problems = []
    for index, kind in ((0, "region"), (1, "account")):
        value = value_of[index]
        reference = next(((k, p[index]) for k, p in placed if p[index]), None)
        if value and reference and reference[0] != key and reference[1] != value:
            problems.append(f"is in {kind} {value}, but {reference[0]} says {reference[1]}")
    return "; ".join(problems) + " (they must agree)" if problems else None


def _anonymous(s: Any) -> str | None:
    """Sign-in off is confirmed for each way in, so a load balancer turned on later is too."""
    return anonymous_problem(s.auth, ways_in(s.exposure))


def _workspace_grant(s: Any) -> str | None:
    """The grant's default (true) does nothing without workspaces and sign-in; a `false` set
    there says the user expects a restriction that is not in force."""
    if s.auth.grant_default_workspace_access:
        return None
    if not s.server.workspaces:
        return "is false but server.workspaces is off: there is only the default workspace"
    if not s.auth.enabled:
        return "is false but auth.enabled is false: without sign-in nothing is granted"
    return None


class Settings(StrictModel):
    """The whole deployment. Every key has a default: an empty file is a complete deployment."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,23}$")] = Field(
        "mlflow", description="Prefix of the stack names (lower case, <= 24 characters)."
    )
    aws: AwsSettings = Field(default_factory=AwsSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    database: DatabaseProps = Field(default_factory=DatabaseProps)
    artifacts: ArtifactProps = Field(default_factory=ArtifactProps)
    server: WorkloadProps = Field(default_factory=WorkloadProps)
    exposure: ExposureProps = Field(default_factory=ExposureProps)
    auth: AuthProps = Field(default_factory=AuthProps)
    gc: GcProps = Field(default_factory=GcProps)
    jobs: JobsProps = Field(default_factory=JobsProps)
    deploy_check: DeployCheckSettings = Field(default_factory=DeployCheckSettings)
    monitoring: MonitoringProps = Field(default_factory=MonitoringProps)

    RULES = (
        Rule(
            "auth.allow_anonymous_through",
            (
                "exposure.internal.enabled",
                "exposure.external.enabled",
                "auth.enabled",
                "auth.allow_anonymous_through",
            ),
            lambda s: _anonymous(s),
        ),
        Rule(
            "auth.grant_default_workspace_access",
            ("auth.grant_default_workspace_access", "auth.enabled", "server.workspaces"),
            lambda s: _workspace_grant(s),
        ),
        Rule(
            "server.concurrent_artifact_transfers",
            (
                "cluster.mode",
                "server.max_proxied_artifact_gib",
                "server.concurrent_artifact_transfers",
            ),
            lambda s: ephemeral_problem(s.server) if s.cluster.mode == "new" else None,
        ),
        Rule(
            "monitoring.max_database_connections",
            (
                "monitoring.enabled",
                "monitoring.max_database_connections",
                "database.engine",
                "database.instance_type",
                "database.existing.endpoint",
            ),
            lambda s: _connections_problem(s.monitoring, s.database),
        ),
        *(
            Rule(key, _keys_up_to(key), lambda s, key=key: _disagrees(s, key))
            for key, _ in _PLACED[2:]
        ),
    )
