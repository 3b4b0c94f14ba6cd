"""Settings from the environment (the chart's ConfigMap), validated up front.

All problems are reported at once, each naming its variable, so a bad ConfigMap is fixed in one
round trip rather than one crash-loop per variable.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlflow_launcher import contract
from mlflow_launcher.errors import LauncherError

# The names, defaults and bounds are the contract's (the chart renders the same declarations).
DEFAULT_PORTS = contract.DB_DEFAULT_PORTS
DB_WAIT_ENV = contract.DB_WAIT_SECONDS.name
LOCK_TIMEOUT_ENV = contract.MIGRATION_LOCK_TIMEOUT_SECONDS.name
DEFAULT_MIGRATION_LOCK_TIMEOUT_SECONDS: float = contract.MIGRATION_LOCK_TIMEOUT_SECONDS.default


@dataclass(frozen=True)
class DbEnvironment:
    """Where the database is and how hard to try reaching it."""

    engine: str  # "mysql" | "postgres"
    host: str
    port: int
    name: str
    secret_id: str
    ca_bundle: str
    connect_attempts: int
    backoff_max_seconds: float
    region: str | None
    migration_lock_timeout_seconds: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_SECONDS
    wait_seconds: float = contract.DB_WAIT_SECONDS.default  # type: ignore[assignment]
    connect_timeout_seconds: int = contract.DB_CONNECT_TIMEOUT_SECONDS.default  # type: ignore[assignment]
    network_timeout_seconds: int = contract.DB_NETWORK_TIMEOUT_SECONDS.default  # type: ignore[assignment]
    statement_timeout_seconds: int = contract.DB_STATEMENT_TIMEOUT_SECONDS.default  # type: ignore[assignment]
    read_host: str | None = None
    """A read replica of this database (same login, name and TLS): MLflow sends reads there."""
    read_port: int | None = None

    def replica(self) -> DbEnvironment | None:
        """The read replica's settings, or None when there is none."""
        if self.read_host is None:
            return None
        return replace(self, host=self.read_host, port=self.read_port or self.port, read_host=None)


@dataclass(frozen=True)
class ServerEnvironment:
    """What ``mlflow server`` is started with (everything but the store URI goes to argv)."""

    host: str
    port: int
    workers: int
    artifacts_destination: str
    allowed_hosts: tuple[str, ...]
    cors_allowed_origins: tuple[str, ...] = ()
    """Origins (besides localhost) whose browser pages may send state-changing API requests."""
    log_level: str = "info"
    """MLflow's and uvicorn's log level (debug, info, warning, error)."""
    workspaces: bool = False
    """MLflow's workspaces (`--enable-workspaces`)."""
    extra_args: tuple[str, ...] = ()
    """Appended to `mlflow server`'s arguments (server.extra_args; checked by the contract)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """Added to its environment (server.extra_env); the launcher's own variables win."""
    job_role: str = "off"
    """This pod's part in MLflow's job execution (MLFLOW_JOB_ROLE): off, submit or run."""


AWS_KEY_URLS = {
    "aws": "https://public-keys.auth.elb.{region}.amazonaws.com/",
    "aws-us-gov": "https://s3-{region}.amazonaws.com/aws-elb-public-keys-prod-{region}/",
}
"""The ALB's public key endpoints by partition, as the ELB docs name them ("User claims encoding
and signature verification"): a regional one, and S3 buckets in AWS GovCloud (US). Other
partitions need MLFLOW_SSO_KEY_URL."""


@dataclass(frozen=True)
class SsoEnvironment:
    """Single sign-on through an ALB's OIDC action (mlflow_launcher.sso)."""

    alb_arn: str
    """The `signer` a token must name."""
    key_url: str
    """Where the ALB's public keys are, the key ID appended."""
    username_claim: str = "email"
    groups_claim: str = "groups"
    admin_group: str | None = None
    issuer: str | None = None
    client_id: str | None = None
    trusted_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def aws_keys(self) -> bool:
        """Whether the keys come from AWS's endpoint (not an MLFLOW_SSO_KEY_URL)."""
        return self.key_url == aws_key_url(self.alb_arn)


def aws_key_url(alb_arn: str) -> str | None:
    """AWS's key endpoint for the ALB's partition and Region, where the ELB docs name one."""
    _, partition, _, region, *_ = alb_arn.split(":")
    template = AWS_KEY_URLS.get(partition)
    return template.format(region=region) if template else None


def parse(env: Mapping[str, str], *variables: contract.Variable[Any]) -> dict[str, Any]:
    """The contract's values of `variables` by name; every problem in one LauncherError (exit
    code 2), each naming its variable."""
    problems = []
    try:
        values = contract.parse(env, variables)
    except contract.ContractError as error:
        problems.append(str(error))
    # The one check the chart cannot make: the file is the image's.
    bundle = env.get(contract.DB_CA_BUNDLE.name, "").strip()
    if contract.DB_CA_BUNDLE in variables and bundle and not _readable(bundle):
        problems.append(
            f"{contract.DB_CA_BUNDLE.name} must be a readable CA bundle file, got {bundle!r}"
        )
    if problems:
        raise LauncherError("invalid environment: " + "; ".join(problems))
    return values


def _readable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.R_OK)


_SERVER = (
    contract.HOST,
    contract.PORT,
    contract.WORKERS,
    contract.ARTIFACTS_DESTINATION,
    contract.ALLOWED_HOSTS,
    contract.CORS_ALLOWED_ORIGINS,
    contract.LOG_LEVEL,
    contract.ENABLE_WORKSPACES,
    contract.SERVER_EXTRA_ARGS,
    contract.SERVER_EXTRA_ENV,
    contract.JOB_ROLE,
    # MLflow reads it; parsed here so a bad value stops the pod naming it, not at a job's start.
    contract.ENABLE_CUSTOM_SCORERS,
)
_DB = (
    contract.DB_ENGINE,
    contract.DB_HOST,
    contract.DB_PORT,
    contract.DB_NAME,
    contract.DB_SECRET_ID,
    contract.DB_CA_BUNDLE,
    contract.DB_CONNECT_ATTEMPTS,
    contract.DB_CONNECT_BACKOFF_MAX_SECONDS,
    contract.MIGRATION_LOCK_TIMEOUT_SECONDS,
    contract.DB_WAIT_SECONDS,
    contract.DB_CONNECT_TIMEOUT_SECONDS,
    contract.DB_NETWORK_TIMEOUT_SECONDS,
    contract.DB_STATEMENT_TIMEOUT_SECONDS,
    contract.DB_READ_HOST,
    contract.DB_READ_PORT,
)


def _server(values: Mapping[str, Any]) -> ServerEnvironment:
    v = contract
    return ServerEnvironment(
        host=values[v.HOST.name],
        port=values[v.PORT.name],
        workers=values[v.WORKERS.name],
        artifacts_destination=values[v.ARTIFACTS_DESTINATION.name],
        allowed_hosts=values[v.ALLOWED_HOSTS.name],
        cors_allowed_origins=values[v.CORS_ALLOWED_ORIGINS.name],
        log_level=values[v.LOG_LEVEL.name],
        workspaces=values[v.ENABLE_WORKSPACES.name],
        extra_args=values[v.SERVER_EXTRA_ARGS.name],
        extra_env=values[v.SERVER_EXTRA_ENV.name] or {},
        job_role=values[v.JOB_ROLE.name],
    )


def _db(env: Mapping[str, str], values: Mapping[str, Any]) -> DbEnvironment:
    v = contract
    engine = values[v.DB_ENGINE.name]
    port = values[v.DB_PORT.name] or DEFAULT_PORTS[engine]
    # Optional: a read replica of the same instance (RDS replicas share its login and port).
    read_host = values[v.DB_READ_HOST.name]
    return DbEnvironment(
        engine=engine,
        host=values[v.DB_HOST.name],
        port=port,
        name=values[v.DB_NAME.name],
        secret_id=values[v.DB_SECRET_ID.name],
        ca_bundle=values[v.DB_CA_BUNDLE.name],
        connect_attempts=values[v.DB_CONNECT_ATTEMPTS.name],
        backoff_max_seconds=values[v.DB_CONNECT_BACKOFF_MAX_SECONDS.name],
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        migration_lock_timeout_seconds=values[v.MIGRATION_LOCK_TIMEOUT_SECONDS.name],
        wait_seconds=values[v.DB_WAIT_SECONDS.name],
        connect_timeout_seconds=values[v.DB_CONNECT_TIMEOUT_SECONDS.name],
        network_timeout_seconds=values[v.DB_NETWORK_TIMEOUT_SECONDS.name],
        statement_timeout_seconds=values[v.DB_STATEMENT_TIMEOUT_SECONDS.name],
        read_host=read_host,
        read_port=(values[v.DB_READ_PORT.name] or port) if read_host else None,
    )


def load_db(env: Mapping[str, str]) -> DbEnvironment:
    """Settings for ``migrate``."""
    return _db(env, parse(env, *_DB))


def load_db_and_server(env: Mapping[str, str]) -> tuple[DbEnvironment, ServerEnvironment]:
    """Settings for ``serve`` (validated together, so every problem shows in one message)."""
    values = parse(env, *_DB, *_SERVER)
    return _db(env, values), _server(values)


def load_local_server(env: Mapping[str, str], defaults: Mapping[str, str]) -> ServerEnvironment:
    """Settings for ``local``: the embedded defaults apply where the environment is silent."""
    given = {name: value for name, value in env.items() if value.strip()}
    return _server(parse({**defaults, **given}, *_SERVER))


def load_sso(env: Mapping[str, str]) -> SsoEnvironment | None:
    """None when single sign-on is off (MLFLOW_SSO_ALB_ARN unset, and every other
    MLFLOW_SSO_* with it)."""
    v = contract
    values = parse(env, *v.SSO)
    arn = values[v.SSO_ALB_ARN.name]
    if arn is None:
        stray = [x.name for x in v.SSO if env.get(x.name, "").strip()]
        if stray:
            raise LauncherError(
                f"invalid environment: {', '.join(stray)} set but {v.SSO_ALB_ARN.name} is not: "
                "single sign-on needs the load balancer's ARN (or unset them all)"
            )
        return None
    key_url = values[v.SSO_KEY_URL.name] or aws_key_url(arn)
    if key_url is None:
        raise LauncherError(
            f"invalid environment: AWS names no public key endpoint for the load balancer's "
            f"partition ({arn.split(':')[1]}); set {v.SSO_KEY_URL.name}"
        )
    return SsoEnvironment(
        alb_arn=arn,
        key_url=key_url,
        username_claim=values[v.SSO_USERNAME_CLAIM.name],
        groups_claim=values[v.SSO_GROUPS_CLAIM.name],
        admin_group=values[v.SSO_ADMIN_GROUP.name],
        issuer=values[v.SSO_ISSUER.name],
        client_id=values[v.SSO_CLIENT_ID.name],
        trusted_networks=tuple(
            ipaddress.ip_network(cidr) for cidr in values[v.SSO_TRUSTED_CIDRS.name] or ()
        ),
    )
