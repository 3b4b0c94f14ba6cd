"""The backend store's settings in one typed model: the config file's `database` section and
MlflowDatabase's `props` (and, for `snapshot_before_upgrade`, what the server's migration does
with it). `existing` names an RDS instance this app uses but does not create."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..k8s_charts.model import Props
from ..k8s_charts.rules import (
    REGION_PATTERN,
    KmsKeyArn,
    Rule,
    SecretArn,
    SecurityGroupId,
    arn_region_and_account,
    refused_while,
)

Engine = Literal["mysql", "postgres"]

ENGINE_MAJOR_VERSIONS: dict[str, str] = {"mysql": "8.4", "postgres": "17"}
"""The engine's major version; RDS picks the minor and keeps it patched (the policy:
docs/operations.md, Database engine versions)."""


def _check_instance_type(value: str) -> str:
    if value.startswith("db."):
        raise ValueError(f"write the instance type without the 'db.' prefix: {value[3:]!r}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
        raise ValueError("expected an instance class and size such as 't4g.medium'")
    return value


InstanceType = Annotated[str, AfterValidator(_check_instance_type)]

ENGINE_PORTS: dict[str, int] = {"mysql": 3306, "postgres": 5432}
"""RDS's default port per engine (RDS API reference, CreateDBInstance, Port)."""
RDS_PORT_RANGE = (1150, 65535)
"""The ports an RDS instance may listen on ("Valid Values: 1150-65535", CreateDBInstance and
ModifyDBInstance, DBPortNumber: https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBInstance.html)."""

# An RDS instance's endpoint is `<instance identifier>.<hash>.<region>.rds.amazonaws.com`, e.g.
# mydb.123456789012.us-east-1.rds.amazonaws.com (RDS User Guide, "Finding the connection
# information for an Amazon RDS DB instance":
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_CommonTasks.Connect.EndpointAndPort.html);
# `.amazonaws.com.cn` in the China regions. The identifier is 1-63 letters, digits and hyphens,
# starting with a letter, without a trailing or doubled hyphen, stored lower case (CreateDBInstance,
# DBInstanceIdentifier). The hash is RDS's, per account and region.
_RDS_ENDPOINT = re.compile(
    rf"(?P<id>[a-z](?:-?[a-z0-9])*)\.[a-z0-9]+\.(?P<region>{REGION_PATTERN})"
    r"\.rds\.amazonaws\.com(?:\.cn)?"
)
# Endpoints of the same domain that are not an RDS instance's: an Aurora cluster's
# (`<name>.cluster-<hash>...`, `cluster-ro-`, `cluster-custom-`) and an RDS Proxy's
# (`<name>.proxy-<hash>...`).
_NOT_AN_INSTANCE = {
    "cluster-": "an Aurora cluster endpoint: the backend store is an RDS for MySQL or "
    "PostgreSQL instance (Aurora's engines are others, and its snapshots are of the cluster, "
    "which the pre-upgrade snapshot does not take)",
    "proxy-": "an RDS Proxy endpoint: give the instance's own endpoint. RDS Proxy serves "
    "certificates from AWS Certificate Manager, not from the RDS CA the server verifies the "
    "database against (RDS User Guide, Rotating your SSL/TLS certificate: "
    "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.SSL-certificate-rotation.html)",
}


def _check_endpoint(value: str) -> str:
    if ":" in value:
        raise ValueError("the host name alone: give the port as existing.port")
    labels = value.split(".")
    for start, why in _NOT_AN_INSTANCE.items():
        if len(labels) > 1 and labels[1].startswith(start):
            raise ValueError(why)
    match = _RDS_ENDPOINT.fullmatch(value)
    if not match or len(match["id"]) > 63:
        raise ValueError(
            "expected an RDS instance endpoint such as "
            "mydb.123456789012.us-east-1.rds.amazonaws.com, lower case (Endpoint.Address in "
            "`aws rds describe-db-instances`): the server verifies the database's certificate "
            "against that name, so a CNAME of it would fail"
        )
    return value


RdsEndpoint = Annotated[str, AfterValidator(_check_endpoint)]


def endpoint_region(endpoint: str) -> str:
    """The region of a valid RDS instance endpoint."""
    return _RDS_ENDPOINT.fullmatch(endpoint)["region"]  # type: ignore[index]


def instance_identifier(endpoint: str) -> str:
    """The DB instance identifier of a valid RDS instance endpoint (its first label)."""
    return endpoint.split(".", 1)[0]


def _secret_region_problem(existing: ExistingDatabase) -> str | None:
    if not (existing.endpoint and existing.secret_arn):
        return None
    region, secret_region = (
        endpoint_region(existing.endpoint),
        arn_region_and_account(existing.secret_arn)[0],
    )
    if region != secret_region:
        return (
            f"is in region {secret_region}, the instance (endpoint) in {region}: the migration "
            "Job reads the secret in the deployment's region"
        )
    return None


def _key_region_problem(existing: ExistingDatabase) -> str | None:
    if not (existing.secret_arn and existing.secret_kms_key_arn):
        return None
    secret, key = (
        arn_region_and_account(a)[0] for a in (existing.secret_arn, existing.secret_kms_key_arn)
    )
    if secret != key:
        return (
            f"is in region {key}, the secret in {secret}: Secrets Manager encrypts with a key "
            "of its own region"
        )
    return None


_EXISTING_KEYS = ("port", "secret_arn", "secret_kms_key_arn", "security_group_id")


class ExistingDatabase(Props):
    """An RDS instance this app uses and does not create, manage or delete: the config file's
    `database.existing` section. Unset (no `endpoint`): the app creates the instance."""

    endpoint: RdsEndpoint | None = Field(
        None,
        description="An existing RDS for MySQL or PostgreSQL instance's endpoint "
        "(`<id>.<hash>.<region>.rds.amazonaws.com`, in `aws.region`, reachable from the "
        "cluster's VPC); `database.engine` must be its engine. MLflow gets databases `mlflow` "
        "and `mlflow_auth` and a login `mlflow_server` on it, made by the migration Job with "
        "`secret_arn` (docs/operations.md, An existing database). Default: none, a new "
        "instance.",
    )
    port: int | None = Field(
        None,
        ge=RDS_PORT_RANGE[0],
        le=RDS_PORT_RANGE[1],
        description="The instance's port (1150-65535). Default: the engine's "
        "(3306 for mysql, 5432 for postgres).",
    )
    secret_arn: SecretArn | None = Field(
        None,
        description="Needed with `endpoint`: the complete ARN of a Secrets Manager secret "
        "with a JSON object with `username` and `password` (other keys are ignored): the master "
        "login, or one allowed to create databases and logins. Only the migration Job reads "
        "it.",
    )
    secret_kms_key_arn: KmsKeyArn | None = Field(
        None,
        description="Optional: the customer-managed KMS key that encrypts the "
        "secret; the migration Job's role may then decrypt with it, through Secrets Manager "
        "only. Default: none (the AWS-managed `aws/secretsmanager` key needs no grant).",
    )
    security_group_id: SecurityGroupId | None = Field(
        None,
        description="Needed with `endpoint`: a security group of the instance; the server "
        "stack adds one ingress rule to it, from the cluster's database client group on the "
        "port.",
    )

    RULES = (
        *(
            Rule(
                key,
                ("endpoint", key),
                lambda e, key=key: (
                    "is needed with endpoint (an existing instance)"
                    if e.endpoint and not getattr(e, key)
                    else None
                ),
            )
            for key in ("secret_arn", "security_group_id")
        ),
        *(
            Rule(
                key,
                ("endpoint", key),
                lambda e, key=key: (
                    "applies only with endpoint (an existing instance)"
                    if not e.endpoint and getattr(e, key) is not None
                    else None
                ),
            )
            for key in _EXISTING_KEYS
        ),
        Rule("secret_arn", ("endpoint", "secret_arn"), _secret_region_problem),
        Rule("secret_kms_key_arn", ("secret_arn", "secret_kms_key_arn"), _key_region_problem),
    )


_CREATED_ONLY = (
    "instance_type",
    "allocated_storage_gib",
    "multi_az",
    "read_replica",
    "backup_retention_days",
    "removal_policy",
)
"""What only an instance this app creates has: refused with `existing.endpoint`."""


class DatabaseProps(Props):
    """The RDS backend store."""

    engine: Engine = Field(
        "mysql",
        description=f"`mysql` (MySQL {ENGINE_MAJOR_VERSIONS['mysql']}) or `postgres` "
        f"(PostgreSQL {ENGINE_MAJOR_VERSIONS['postgres']}); RDS picks the minor version and "
        "upgrades it in the maintenance window (the DatabaseEngineVersion output shows it). "
        "With `existing.endpoint`: that instance's engine (RDS for MySQL or PostgreSQL).",
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
        description="An RDS read replica of the same class: MLflow's searches (the UI's lists) "
        "go there, its writes and other reads to the primary. Doubles the database cost.",
    )
    snapshot_before_upgrade: bool = Field(
        True,
        description="Before a migration changes the schema of existing data, the migrate step "
        "makes sure of a manual snapshot (one taken before the same upgrade, however old; else "
        "yours from the last hour; else one it takes and waits for, at most 5 of its own "
        "`mlflow-before-*` at a time) and does not migrate without one. With "
        "`existing.endpoint`, of that instance: a snapshot holds every database on it.",
    )
    backup_retention_days: int = Field(
        7, ge=1, le=35, description="Automated backups kept (1-35 days; 0 would disable them)."
    )
    removal_policy: Literal["snapshot", "destroy"] = Field(
        "snapshot",
        description="On stack deletion: keep a final snapshot (default), or `destroy`. This app "
        "also needs `-c allow_data_destroy=true` for `destroy` (otherwise a warning and a "
        "snapshot).",
    )
    existing: ExistingDatabase = Field(default_factory=ExistingDatabase)

    RULES = refused_while(
        "existing.endpoint",
        _CREATED_ONLY,
        "applies only to an instance this app creates; existing.endpoint names one it does "
        "not manage (its owner sets this there)",
    )
