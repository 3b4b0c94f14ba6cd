"""The deployment's settings: one YAML file, validated into a frozen, typed model.

Everything below app.py takes these typed values; nothing else reads context or files.
Each field's description is the configuration reference (docs/configuration.md is generated
from it), so say the default and the why there.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

SUPPORTED_KUBERNETES_VERSIONS = ("1.34", "1.35")
"""Versions with a matching kubectl Lambda layer pinned in requirements.txt."""

_PARTITION = r"arn:aws(?:-[a-z]+)*"
OidcProviderArn = Annotated[
    str,
    StringConstraints(pattern=rf"^{_PARTITION}:iam::\d{{12}}:oidc-provider/[A-Za-z0-9./_-]+$"),
]
IamRoleArn = Annotated[
    str, StringConstraints(pattern=rf"^{_PARTITION}:iam::\d{{12}}:role/[A-Za-z0-9_+=,.@/-]+$")
]
AcmCertificateArn = Annotated[
    str,
    StringConstraints(
        pattern=rf"^{_PARTITION}:acm:[a-z0-9-]+:\d{{12}}:certificate/[0-9a-f-]{{36}}$"
    ),
]
SubnetId = Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
SecurityGroupId = Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
VpcId = Annotated[str, StringConstraints(pattern=r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
AvailabilityZone = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(?:-[a-z]+)+-\d[a-z]$")]
# DNS-1123 label: what Kubernetes accepts as a namespace name.
Dns1123Label = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63)
]
HostPattern = Annotated[
    str, StringConstraints(pattern=r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
]


def _check_instance_type(value: str) -> str:
    if value.startswith("db."):
        raise ValueError(f"write the instance type without the 'db.' prefix: {value[3:]!r}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
        raise ValueError("expected an instance class and size such as 't4g.medium'")
    return value


def _check_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"not a CIDR block ({error})") from None
    return str(network)


InstanceType = Annotated[str, AfterValidator(_check_instance_type)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]


def invalid(key: str, why: str) -> ValueError:
    """An error about one key, raised from a model validator that checks several keys.

    pydantic reports model-level errors at the model's path; the loader moves the `@key`
    marker into the path so the user sees e.g. `exposure.external.allowed_cidrs`.
    """
    return ValueError(f"@{key}: {why}")


class StrictModel(BaseModel):
    """Frozen, and unknown keys are errors (a typo must not silently keep a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class AwsSettings(StrictModel):
    """Where to deploy. Both unset: an environment-agnostic synth (the CLI's credentials decide)."""

    account: Annotated[str, StringConstraints(pattern=r"^\d{12}$")] | None = Field(
        None, description="AWS account ID (12 digits). Default: the CLI's account at deploy time."
    )
    region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = Field(
        None, description="AWS region, e.g. eu-west-1. Default: the CLI's region at deploy time."
    )


class ClusterSettings(StrictModel):
    """The EKS cluster: a new Auto Mode cluster, or an existing one imported by attributes."""

    mode: Literal["new", "existing"] = Field(
        "new", description="`new` creates an EKS Auto Mode cluster and its VPC; `existing` imports."
    )
    kubernetes_version: Literal[SUPPORTED_KUBERNETES_VERSIONS] = Field(  # type: ignore[valid-type]
        "1.35",
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
        description="existing: the cluster security group (pods and nodes); the database admits "
        "it only.",
    )
    vpc_id: VpcId | None = Field(None, description="existing: the cluster's VPC.")
    private_subnet_ids: list[SubnetId] = Field(
        default_factory=list,
        description="existing: private subnets for the database and the kubectl handler "
        "(at least two, in different AZs).",
    )
    availability_zones: list[AvailabilityZone] = Field(
        default_factory=list, description="existing: the AZs of `private_subnet_ids`, same order."
    )
    kubectl_role_arn: IamRoleArn | None = Field(
        None,
        description="existing, optional: a role that already has cluster-admin access for the "
        "kubectl handler. Default: a new role with an EKS access entry.",
    )

    load_balancer_controller: Literal["auto-mode", "aws-load-balancer-controller"] = Field(
        "auto-mode",
        description="Which controller provisions the load balancers: EKS Auto Mode's own, or the "
        "AWS Load Balancer Controller (existing clusters without Auto Mode).",
    )
    admin_role_arns: list[IamRoleArn] = Field(
        default_factory=list,
        description="new: IAM roles granted cluster-admin (EKS access entries) besides the "
        "deploying principal.",
    )

    @model_validator(mode="after")
    def _mode_fields(self) -> ClusterSettings:
        imported = {
            "name": self.name,
            "oidc_provider_arn": self.oidc_provider_arn,
            "security_group_id": self.security_group_id,
            "vpc_id": self.vpc_id,
            "private_subnet_ids": self.private_subnet_ids,
            "availability_zones": self.availability_zones,
            "kubectl_role_arn": self.kubectl_role_arn,
        }
        if self.mode == "new":
            if self.load_balancer_controller != "auto-mode":
                raise invalid(
                    "load_balancer_controller",
                    "a new cluster runs EKS Auto Mode, whose own controller provisions load "
                    "balancers; only `auto-mode` applies",
                )
            given = sorted(k for k, v in imported.items() if v)
            if given:
                raise invalid(
                    given[0],
                    f"{', '.join(given)} only apply with mode: existing; a new cluster creates "
                    "its own VPC and identity",
                )
            return self
        if self.admin_role_arns:
            raise invalid(
                "admin_role_arns",
                "applies only with mode: new; manage access to an existing cluster there",
            )
        missing = sorted(k for k, v in imported.items() if not v and k != "kubectl_role_arn")
        if missing:
            raise invalid(
                missing[0], f"mode: existing needs {', '.join(missing)} to import the cluster"
            )
        if len(self.private_subnet_ids) < 2:
            raise invalid(
                "private_subnet_ids", "at least two subnets are needed (RDS spans two AZs)"
            )
        if len(set(self.private_subnet_ids)) != len(self.private_subnet_ids):
            raise invalid("private_subnet_ids", "a subnet is listed twice")
        if len(self.availability_zones) != len(self.private_subnet_ids):
            raise invalid(
                "availability_zones",
                "must name the AZ of each private subnet, in the same order "
                f"({len(self.availability_zones)} AZs for {len(self.private_subnet_ids)} subnets)",
            )
        if len(set(self.availability_zones)) < 2:
            raise invalid("availability_zones", "the subnets must span at least two AZs")
        return self


class DatabaseSettings(StrictModel):
    """The RDS backend store."""

    engine: Literal["mysql", "postgres"] = Field(
        "mysql", description="`mysql` (MySQL 8.4) or `postgres` (PostgreSQL 17)."
    )
    instance_type: InstanceType = Field(
        "t4g.medium", description="RDS instance class without the `db.` prefix."
    )
    allocated_storage_gib: int = Field(
        20, ge=20, le=65536, description="Initial storage (GiB, 20-65536); autoscaling doubles it."
    )
    multi_az: bool = Field(False, description="Standby in a second AZ (recommended in production).")
    backup_retention_days: int = Field(
        7, ge=1, le=35, description="Automated backups kept (1-35 days; 0 would disable them)."
    )
    removal_policy: Literal["snapshot", "destroy"] = Field(
        "snapshot",
        description="On stack deletion: keep a final snapshot (default), or `destroy`, which also "
        "needs `-c allow_data_destroy=true` (otherwise a warning and a snapshot).",
    )


class ArtifactSettings(StrictModel):
    """The S3 artifact store."""

    versioned: bool = Field(True, description="S3 versioning: an overwritten artifact is kept.")
    noncurrent_version_expiration_days: int | None = Field(
        90,
        ge=1,
        le=3650,
        description="Days an overwritten or deleted version is kept; null keeps them forever.",
    )
    removal_policy: Literal["retain", "destroy"] = Field(
        "retain",
        description="On stack deletion: keep the bucket (default), or `destroy` (empties it), "
        "which also needs `-c allow_data_destroy=true`.",
    )

    @model_validator(mode="after")
    def _expiry_needs_versions(self) -> ArtifactSettings:
        expiry_set = "noncurrent_version_expiration_days" in self.model_fields_set
        if not self.versioned and expiry_set and self.noncurrent_version_expiration_days:
            raise invalid("noncurrent_version_expiration_days", "applies only with versioned: true")
        return self


class ResourceSettings(StrictModel):
    """Requests (and the memory limit) of the server container."""

    cpu: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?m?$")] = Field(
        "500m", description="CPU request (Kubernetes quantity)."
    )
    memory_mib: int = Field(
        1024, ge=256, le=65536, description="Memory request and limit in MiB (limit = request)."
    )


class ServerSettings(StrictModel):
    """The MLflow tracking server workload."""

    namespace: Dns1123Label = Field("mlflow", description="Kubernetes namespace (created).")
    replicas: int = Field(
        2, ge=1, le=50, description="Server pods (>= 2 keeps it up through node drains)."
    )
    max_replicas: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Upper bound for CPU autoscaling; null (default) means no autoscaler.",
    )
    workers: int = Field(2, ge=1, le=16, description="uvicorn workers per pod.")
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    allowed_hosts: list[HostPattern] = Field(
        default_factory=list,
        description="Extra Host names MLflow answers (e.g. your DNS name); the service names, "
        "localhost and *.elb.amazonaws.com are always allowed.",
    )

    @model_validator(mode="after")
    def _autoscaling_bounds(self) -> ServerSettings:
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise invalid(
                "max_replicas", f"{self.max_replicas} is below replicas ({self.replicas})"
            )
        if self.namespace in {"default", "kube-system", "kube-public", "kube-node-lease"}:
            raise invalid("namespace", f"{self.namespace!r} is reserved; pick a dedicated one")
        return self


class ExternalExposure(StrictModel):
    """An internet-facing load balancer, off by default (MLflow has no authentication)."""

    enabled: bool = Field(False, description="Create an internet-facing load balancer.")
    allowed_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="Source ranges allowed to reach it (loadBalancerSourceRanges); required.",
    )
    certificate_arn: AcmCertificateArn | None = Field(
        None, description="ACM certificate for TLS on port 443; required when enabled."
    )
    allow_internet: bool = Field(
        False,
        description="Explicit opt-in needed to list 0.0.0.0/0 or ::/0 in allowed_cidrs.",
    )

    @model_validator(mode="after")
    def _safe_exposure(self) -> ExternalExposure:
        if not self.enabled:
            if self.allowed_cidrs or self.certificate_arn:
                raise invalid(
                    "enabled",
                    "is false but allowed_cidrs/certificate_arn are set; "
                    "set enabled: true or remove them",
                )
            return self
        if not self.allowed_cidrs:
            raise invalid(
                "allowed_cidrs",
                "is empty; list the networks that may reach the server "
                "(MLflow has no authentication of its own)",
            )
        if self.certificate_arn is None:
            raise invalid(
                "certificate_arn",
                "is required with enabled: true; the external load balancer serves HTTPS only",
            )
        open_ranges = [c for c in self.allowed_cidrs if ipaddress.ip_network(c).prefixlen == 0]
        if open_ranges and not self.allow_internet:
            raise invalid(
                "allowed_cidrs",
                f"contains {', '.join(open_ranges)}, which opens MLflow (no authentication) "
                "to the whole internet; set allow_internet: true to confirm",
            )
        return self


class ExposureSettings(StrictModel):
    """How clients reach the server besides the in-cluster ClusterIP service."""

    internal: bool = Field(True, description="An internal (VPC-only) network load balancer.")
    external: ExternalExposure = Field(default_factory=ExternalExposure)


class Settings(StrictModel):
    """The whole deployment. Every key has a default: an empty file is a complete deployment."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,23}$")] = Field(
        "mlflow", description="Prefix of the stack names (lower case, <= 24 characters)."
    )
    aws: AwsSettings = Field(default_factory=AwsSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    exposure: ExposureSettings = Field(default_factory=ExposureSettings)
