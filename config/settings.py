"""The deployment's settings: one YAML file, validated into a frozen, typed model.

Everything below app.py takes these typed values; nothing else reads context or files.
Each field's description is the configuration reference (docs/configuration.md is generated
from it), so say the default and the why there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Annotated, Literal

from mlflow_on_eks.constructs_lib.auth import PERMISSIONS
from mlflow_on_eks.constructs_lib.kubernetes import DEFAULT_VERSION, SUPPORTED_VERSIONS
from mlflow_on_eks.constructs_lib.monitoring import default_max_connections
from mlflow_on_eks.k8s_charts import GcProps, ResourceProps, WorkloadProps
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# One list of versions, kept where the kubectl layers are.
SUPPORTED_KUBERNETES_VERSIONS = SUPPORTED_VERSIONS
DEFAULT_KUBERNETES_VERSION = DEFAULT_VERSION

_PARTITION = r"arn:aws(?:-[a-z]+)*"
# An EKS cluster's IAM OIDC provider: oidc.eks.<region>.amazonaws.com[.cn]/id/<32 hex digits>
# (what `aws eks describe-cluster --query cluster.identity.oidc.issuer` shows, without https://).
OidcProviderArn = Annotated[
    str,
    StringConstraints(
        pattern=rf"^{_PARTITION}:iam::\d{{12}}:oidc-provider/"
        r"oidc\.eks\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?/id/[0-9A-F]{32}$"
    ),
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
# An SNS standard topic (CloudWatch alarm actions cannot publish to FIFO topics).
SnsTopicArn = Annotated[
    str,
    StringConstraints(
        pattern=rf"^{_PARTITION}:sns:[a-z]{{2}}(?:-[a-z]+)+-\d:\d{{12}}:[A-Za-z0-9_-]{{1,256}}$"
    ),
]
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
SubnetId = Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
SecurityGroupId = Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
VpcId = Annotated[str, StringConstraints(pattern=r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
AvailabilityZone = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(?:-[a-z]+)+-\d[a-z]$")]
# DNS-1123 label: what Kubernetes accepts as a namespace name.
Dns1123Label = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63)
]


def _check_host_pattern(value: str) -> str:
    """A Host header value or pattern as MLflow matches it (mlflow/server/security_utils.py).

    MLflow compares the whole header, port included: with fnmatch when the entry contains
    `*`, else for equality. `?` and `[...]` are refused: without a `*` MLflow would compare
    them literally, so they would silently match nothing.
    """
    if value == "*":
        raise ValueError("'*' alone turns off MLflow's Host check (DNS rebinding protection)")
    if "://" in value or "/" in value:
        raise ValueError("a host name, not a URL: drop the scheme and path")
    host, _, port = value.partition(":")
    if port and not re.fullmatch(r"\*|\d{1,5}", port):
        raise ValueError("the part after ':' must be a port number or '*'")
    if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9*.-]{0,251}[A-Za-z0-9*])?", host):
        raise ValueError("expected a DNS name such as mlflow.example.com, or *.example.com")
    return value


HostPattern = Annotated[str, AfterValidator(_check_host_pattern)]


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


_GC = GcProps()
# `mlflow gc --older-than`: #d#h#m#s, each part optional, decimals allowed.
_GC_DURATION = re.compile(r"(\d+(\.\d+)?d)?(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?")
_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def _check_duration(value: str) -> str:
    if not value or not _GC_DURATION.fullmatch(value):
        raise ValueError("expected a duration such as 30d, 12h or 1d12h (#d#h#m#s)")
    return value


def _check_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            "expected five cron fields (minute hour day month weekday), e.g. '17 3 * * *'"
        )
    return value


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
            if self.endpoint_access == "private" and "public_access_cidrs" in self.model_fields_set:
                raise invalid(
                    "public_access_cidrs",
                    "applies only with endpoint_access: public_and_private",
                )
            if self.endpoint_access == "public_and_private" and not self.public_access_cidrs:
                raise invalid(
                    "public_access_cidrs",
                    "is empty; list the ranges that may reach the public endpoint, or set "
                    "endpoint_access: private",
                )
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
        new_only = sorted(
            k
            for k in ("admin_role_arns", "endpoint_access", "public_access_cidrs", "network_policy")
            if k in self.model_fields_set
        )
        if new_only:
            raise invalid(
                new_only[0],
                f"{', '.join(new_only)} only apply with mode: new; an existing cluster keeps its "
                "own access, endpoint and network policy settings",
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
    read_replica: bool = Field(
        False,
        description="An RDS read replica of the same class: MLflow's reads (searches, UI pages) "
        "go there, its writes and sign-in checks to the primary. Doubles the database cost.",
    )
    snapshot_before_upgrade: bool = Field(
        True,
        description="Before a migration changes the schema of existing data, the migrate step "
        "makes sure of a manual snapshot from the last hour (yours, or one it takes and waits "
        "for) and does not migrate without one.",
    )
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


_WORKLOAD = WorkloadProps()
"""Where the server's defaults live (k8s_charts/workload.py); the fields below take them."""


def _as_props(model: BaseModel, props_type: type) -> object:
    """The dataclass of the same fields (nested models and lists converted), for the chart."""
    values = {}
    for item in dataclasses.fields(props_type):
        value = getattr(model, item.name)
        if isinstance(value, BaseModel):
            value = _as_props(value, type(getattr(_WORKLOAD, item.name)))
        values[item.name] = tuple(value) if isinstance(value, list) else value
    return props_type(**values)


class ResourceSettings(StrictModel):
    """Requests (and the memory limit) of the server container."""

    cpu: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?m?$")] = Field(
        ResourceProps.cpu, description="CPU request (Kubernetes quantity)."
    )
    memory_mib: int = Field(
        ResourceProps.memory_mib,
        ge=256,
        le=65536,
        description="Memory request and limit in MiB (limit = request).",
    )


class ServerSettings(StrictModel):
    """The MLflow tracking server workload."""

    namespace: Dns1123Label = Field(
        _WORKLOAD.namespace, description="Kubernetes namespace (created)."
    )
    replicas: int = Field(
        _WORKLOAD.replicas,
        ge=1,
        le=50,
        description="Server pods (>= 2 keeps it up through node drains).",
    )
    max_replicas: int | None = Field(
        _WORKLOAD.max_replicas,
        ge=1,
        le=100,
        description="Upper bound for CPU autoscaling; null (default) pins the pod count at "
        "replicas.",
    )
    workers: int = Field(_WORKLOAD.workers, ge=1, le=16, description="uvicorn workers per pod.")
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    allowed_hosts: list[HostPattern] = Field(
        default_factory=list,
        description="Extra Host names MLflow answers, e.g. your DNS name; `*` patterns as MLflow "
        "matches them (`*.example.com`, `name:*` for any port). Always allowed: the Service "
        "names, localhost (port-forward) and the load balancers' own DNS names "
        "(`*.elb.<region>.amazonaws.com`). Browser pages of these hosts may write (CORS).",
    )
    architecture: Literal["amd64", "arm64"] = Field(
        _WORKLOAD.architecture,  # type: ignore[arg-type]
        description="CPU architecture of the image and of the nodes the pods run on. `arm64` "
        "(Graviton) costs less; a new cluster gets a node pool for it, an existing one must "
        "offer arm64 nodes.",
    )
    max_proxied_artifact_gib: int = Field(
        _WORKLOAD.max_proxied_artifact_gib,
        ge=1,
        le=1024,
        description="Largest artifact (GiB) clients send or fetch through the server; MLflow "
        "spools each proxied transfer to the pod's scratch space. Clients >= 3.15 move files of "
        "500 MiB and more straight to S3 in parts, so this bounds smaller files and older clients.",
    )
    concurrent_artifact_transfers: int = Field(
        _WORKLOAD.concurrent_artifact_transfers,
        ge=1,
        le=64,
        description="Proxied transfers a pod holds at once; scratch space per pod = "
        "max_proxied_artifact_gib x this + 1 GiB (requested as ephemeral storage).",
    )
    drain_seconds: int = Field(
        _WORKLOAD.drain_seconds,
        ge=5,
        le=300,
        description="Load balancer deregistration delay; a terminating pod keeps serving this "
        "long (preStop) before it stops accepting, and then has 30 s to finish requests.",
    )

    def workload(self) -> WorkloadProps:
        """These settings as the chart takes them (the same fields, validated)."""
        return _as_props(self, WorkloadProps)  # type: ignore[return-value]

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
    """An internet-facing load balancer, off by default: the sign-in page and the API are then
    open to password guessing from every listed network."""

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
    allow_anonymous: bool = Field(
        False,
        description="Explicit opt-in needed to expose a server with auth.enabled: false.",
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
                "(a password is the only other barrier)",
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
                f"contains {', '.join(open_ranges)}, which opens MLflow's sign-in and API "
                "to the whole internet; set allow_internet: true to confirm",
            )
        return self


class ExposureSettings(StrictModel):
    """How clients reach the server besides the in-cluster ClusterIP service."""

    internal: bool = Field(True, description="An internal (VPC-only) network load balancer.")
    external: ExternalExposure = Field(default_factory=ExternalExposure)


class AuthSettings(StrictModel):
    """Who may use the server: MLflow's basic-auth app (users, passwords, permissions)."""

    enabled: bool = Field(
        True,
        description=(
            "Sign-in required for the UI and the API. Off, anyone who reaches a load balancer "
            "can read, change and delete every experiment and model."
        ),
    )
    default_permission: Literal[PERMISSIONS] = Field(  # type: ignore[valid-type]
        "READ",
        description="What a signed-in user may do on what others created, unless granted more.",
    )
    admin_username: Annotated[str, StringConstraints(pattern=r"^[^\s:]{1,64}$")] = Field(
        "admin",
        description="The admin MLflow creates on first start; its password is generated.",
    )


class GcSettings(StrictModel):
    """Permanent removal of what users deleted (MLflow only marks deleted runs)."""

    enabled: bool = Field(
        False,
        description=(
            "A CronJob runs `mlflow gc`: runs and experiments deleted longer ago than "
            "older_than go for good, with their artifacts. Off: deleted stays restorable."
        ),
    )
    schedule: Annotated[str, AfterValidator(_check_cron)] = Field(
        _GC.schedule, description="Five-field cron expression (UTC)."
    )
    older_than: Annotated[str, AfterValidator(_check_duration)] = Field(
        _GC.older_than,
        description="How long deleted things stay restorable (#d#h#m#s, e.g. 30d or 1d12h).",
    )

    def props(self) -> GcProps | None:
        return GcProps(schedule=self.schedule, older_than=self.older_than) if self.enabled else None


class DeployCheckSettings(StrictModel):
    """What `cdk deploy` proves before it succeeds."""

    enabled: bool = Field(
        True,
        description=(
            "Wait for the rollout, then run a Job that uses MLflow through the cluster Service "
            "and the internal load balancer as a user would; the deploy fails with its reason "
            "otherwise. The Job needs HTTPS to S3 to report (NAT or an S3 gateway endpoint)."
        ),
    )


class MonitoringSettings(StrictModel):
    """CloudWatch alarms and a dashboard: what should page a platform team."""

    enabled: bool = Field(
        True,
        description=(
            "Alarms on the database's CPU, connections, free storage and replica lag and on the "
            "load balancers' targets, and a dashboard with them."
        ),
    )
    alarm_email: EmailAddress | None = Field(
        None,
        description=(
            "Send alarms and recoveries to this address through a new SNS topic (AWS e-mails a "
            "confirmation link first). Default: none, the alarms show in the console only."
        ),
    )
    alarm_topic_arn: SnsTopicArn | None = Field(
        None, description="Or to this existing SNS standard topic (e.g. your pager's)."
    )
    max_database_connections: int | None = Field(
        None,
        ge=1,
        description=(
            "The database's max_connections, for the connections alarm. Default: estimated "
            "from database.instance_type (t, m and r classes); required for other classes."
        ),
    )

    @model_validator(mode="after")
    def _one_destination(self) -> MonitoringSettings:
        if self.alarm_email and self.alarm_topic_arn:
            raise invalid("alarm_topic_arn", "and alarm_email are both set: choose one")
        if not self.enabled and (self.alarm_email or self.alarm_topic_arn):
            raise invalid(
                "enabled", "is false but an alarm destination is set: there are no alarms to send"
            )
        return self


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
    auth: AuthSettings = Field(default_factory=AuthSettings)
    gc: GcSettings = Field(default_factory=GcSettings)
    deploy_check: DeployCheckSettings = Field(default_factory=DeployCheckSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @model_validator(mode="after")
    def _anonymous_exposure_confirmed(self) -> Settings:
        external = self.exposure.external
        if external.enabled and not self.auth.enabled and not external.allow_anonymous:
            raise invalid(
                "exposure.external.allow_anonymous",
                "is false while auth.enabled is false and the external load balancer is on: "
                "anyone in allowed_cidrs could read, change and delete everything. Turn auth "
                "on, or set allow_anonymous: true to confirm",
            )
        if external.allow_anonymous and self.auth.enabled:
            raise invalid(
                "exposure.external.allow_anonymous",
                "is true but auth.enabled is true: there is nothing anonymous to allow; remove it",
            )
        return self

    @model_validator(mode="after")
    def _connections_alarm_sized(self) -> Settings:
        monitoring, database = self.monitoring, self.database
        if (
            monitoring.enabled
            and monitoring.max_database_connections is None
            and default_max_connections(database.engine, database.instance_type) is None
        ):
            raise invalid(
                "monitoring.max_database_connections",
                f"is needed: database.instance_type {database.instance_type!r} is not a t, m or "
                "r class, so the connections alarm cannot estimate max_connections",
            )
        return self
