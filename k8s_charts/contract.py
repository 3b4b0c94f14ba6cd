"""The contract between the chart and the image: ports, paths and the launcher's environment.

Every variable written here is declared once, in the launcher's contract module
(image/launcher/src/mlflow_launcher/contract.py, loaded by launcher_contract): its name, type,
default and bounds. Values are rendered through those declarations, so the chart cannot write
one the launcher would refuse, and the defaults the budgets below count are the launcher's own.
"""

from __future__ import annotations

import math

from .launcher_contract import launcher
from .workload import WorkloadProps

CONTAINER_PORT: int = launcher.PORT.default
"""The server's port in the pod (MLFLOW_PORT): the launcher's default, written out all the same."""
METRICS_PORT = 9464
"""The pod's `metrics` container (Prometheus exporters' customary port range)."""
SERVICE_PORT = 80
TLS_SERVICE_PORT = 443
RDS_CA_BUNDLE_PATH = "/etc/ssl/certs/rds-global-bundle.pem"
"""Where image/Dockerfile puts the RDS CA bundle, fetched at build time."""
CONFIG_DIGEST_ANNOTATION = "mlflow-on-eks/config-digest"
"""On the server's pod template: a digest of its ConfigMap's data, so that a settings change
rolls the pods (they read it at start); the deploy check knows this deploy's template by it."""

# ---- Bounds on every wait, and the server's start budget built from them -------------------
# The chart gives the launcher its own defaults (the contract's), and counts them here.

DB_WAIT_SECONDS: float = launcher.DB_WAIT_SECONDS.default
"""How long the launcher waits for the database (and its read replica) in all, counted from its
own start (MLFLOW_DB_WAIT_SECONDS). A bit more than an RDS Multi-AZ failover usually takes
(60-120 s): a pod that starts during one waits it out, or restarts saying why and tries again."""
DB_CONNECT_TIMEOUT_SECONDS: int = launcher.DB_CONNECT_TIMEOUT_SECONDS.default
"""Each database connection attempt (the database is in the pod's VPC: milliseconds)."""
DB_NETWORK_TIMEOUT_SECONDS: int = launcher.DB_NETWORK_TIMEOUT_SECONDS.default
"""How long a database connection may stay silent (packets dropped, no reset: a failover, a
lost route) before it is given up: PostgreSQL's TCP keepalives and TCP_USER_TIMEOUT, and on MySQL
the launcher's own short checks. A live server answers keepalives, so long statements are not
cut by it."""
DB_STATEMENT_TIMEOUT_SECONDS: int = launcher.DB_STATEMENT_TIMEOUT_SECONDS.default
"""The server's bound on one statement: PostgreSQL's statement_timeout; on MySQL libmariadb's
read and write timeouts (under mysqlclient), which also bound a silent connection there. Far
above the slowest statement measured (a metric-filtered search of 10k runs: 50 ms of database
CPU on MySQL, docs/benchmarks.md) and below the MLflow client's own 120 s request timeout, so
the client gets the server's error and retries on a fresh connection. Migrations get no
statement bound."""
AWS_MAX_ATTEMPTS: int = launcher.AWS_MAX_ATTEMPTS.default
"""Tries per AWS call, for every client in the pod (botocore's AWS_MAX_ATTEMPTS): Secrets
Manager, STS (the IRSA credential provider's client), S3 (MLflow's), RDS (the snapshot guard)."""
AWS_CONNECT_TIMEOUT_SECONDS: int = launcher.AWS_CONNECT_TIMEOUT_SECONDS
"""The launcher's Secrets Manager and STS clients (mlflow_launcher.secret)."""
AWS_READ_TIMEOUT_SECONDS: int = launcher.AWS_READ_TIMEOUT_SECONDS
STARTUP_PROBE_PERIOD_SECONDS = 5
START_CPU_SECONDS = 4.5
"""CPU the server container spends to start besides its workers: Python, the launcher's checks,
the MLflow CLI and uvicorn's supervisor. Measured 4.0 s (process tree's user + system time at the
first /health 200, MLflow 3.17.2, both engines, sign-in on), rounded up."""
START_CPU_SECONDS_PER_WORKER = 2.5
"""Each uvicorn worker's import and app start: measured 2.2 s."""
START_MARGIN_SECONDS = 20


def aws_call_seconds() -> float:
    """The longest a Secrets Manager or STS call takes to give up: every attempt times out on
    connect and read, and botocore's standard mode waits at most 1, 2, 4, ... s between
    attempts (its backoff for throttling, capped at 20 s; other errors wait 50 ms x 2^i)."""
    attempts = AWS_MAX_ATTEMPTS * (AWS_CONNECT_TIMEOUT_SECONDS + AWS_READ_TIMEOUT_SECONDS)
    return attempts + sum(min(2**i, 20) for i in range(AWS_MAX_ATTEMPTS - 1))


def start_budget(*, workers: int, cpu_millis: int) -> dict[str, float]:
    """The longest the server container may take from its start to /health, or to the
    launcher's message saying why it cannot, term by term (seconds).

    The Secrets Manager reads come first and count against the database wait (its deadline is
    from the launcher's start), so they add nothing unless one failing read outlasts the whole
    wait; a connection attempt begun before the deadline may finish after it; after the wait
    come the schema checks (the store's, the replica's, the users'), each a new connection. CPU
    is counted at the container's CPU request, which is what it gets on a busy node.
    """
    attempt = DB_CONNECT_TIMEOUT_SECONDS + DB_NETWORK_TIMEOUT_SECONDS
    cpu = (START_CPU_SECONDS + START_CPU_SECONDS_PER_WORKER * workers) / (cpu_millis / 1000)
    return {
        "cpu at the request": cpu,
        "secret reads, then the database wait": max(DB_WAIT_SECONDS, aws_call_seconds()),
        "the last connection attempt": attempt,
        "schema checks": 3 * attempt,
        "margin": START_MARGIN_SECONDS,
    }


def startup_probe_failures(*, workers: int, cpu_millis: int) -> int:
    """The startup probe's failureThreshold: the kubelet restarts the container after that many
    failed probes, period seconds apart from its start, so (threshold - 1) periods must cover the
    budget."""
    budget = sum(start_budget(workers=workers, cpu_millis=cpu_millis).values())
    return math.ceil(budget / STARTUP_PROBE_PERIOD_SECONDS) + 1


# ---- One pod's way from nothing to Ready, and the rollout's ---------------------------------
# The Deployment's progressDeadlineSeconds is one pod's slowest way to Ready (no pod becomes
# available, or any other progress is made, for that long): the deploy check fails when the
# controller reports it exceeded (ProgressDeadlineExceeded). A deadline shorter than a real
# start would fail a healthy deploy, and the rollback that follows would prune the migration
# Job of this revision, mid-migration: every term is a bound, not a typical time.

NODE_LAUNCH_SECONDS = 300
"""A node for a pod that fits on none: on a new cluster, the first node of MLflow's NodePool
(its NodeClass resolved, an instance launched and registered). Auto Mode's Karpenter launches
and registers a node in about a minute; it deletes a NodeClaim not registered within 15
minutes and launches another (Karpenter docs, Concepts, NodeClaims, "Registered")."""
IMAGE_PULL_SECONDS = 300
"""The server image pulled from ECR in the cluster's Region: about 1.1 GB unpacked (the image's
venv measures 900 MB here, on python:3.11-slim), which a node pulls in well under a minute."""
MIGRATION_SECONDS = 600
"""MLflow's migrations themselves: 20 s to create the schema in an empty MariaDB (measured
here), longer for an upgrade that rewrites a large table. Past this, read docs/operations.md,
"Upgrading" (migrate ahead of the deploy)."""
SNAPSHOT_TIMEOUT_SECONDS: float = launcher.SNAPSHOT_TIMEOUT_SECONDS.default
"""How long `migrate` waits for the snapshot it takes before an upgrade (the launcher's
MLFLOW_SNAPSHOT_TIMEOUT_SECONDS default; it then stops, and the next attempt finds it)."""


MIGRATION_JOB_CPU_MILLIS = 250
"""The migration Job's CPU request: it starts Python and MLflow at this share."""


def pod_start_budget(
    *, workers: int, cpu_millis: int, first: bool, snapshot: bool
) -> dict[str, float]:
    """The longest a new pod of the server takes from its creation to Ready, term by term
    (seconds). The `first` pod of a rollout that migrates waits in `wait-schema` for the
    migration Job, which starts beside it (on the same new node, as a rule) and snapshots first
    when the snapshot guard is on; later pods find the schemas at head after their own
    database wait. The lock wait is left out: only another revision's Job still migrating
    holds it."""
    attempt = DB_CONNECT_TIMEOUT_SECONDS + DB_NETWORK_TIMEOUT_SECONDS
    database_wait = max(DB_WAIT_SECONDS, aws_call_seconds()) + attempt
    budget = {
        "a node launched for it": float(NODE_LAUNCH_SECONDS),
        "the image pulled": float(IMAGE_PULL_SECONDS),
    }
    if first:
        budget |= {
            "the migration Job: Python and MLflow started": START_CPU_SECONDS
            / (MIGRATION_JOB_CPU_MILLIS / 1000),
            "the migration Job: secret reads, then the database wait": database_wait,
        }
        if snapshot:
            budget["the migration Job: the snapshot before the upgrade"] = float(
                SNAPSHOT_TIMEOUT_SECONDS
            )
        budget["the migration Job: the migration"] = float(MIGRATION_SECONDS)
    else:
        budget |= {
            "wait-schema: Python started": START_CPU_SECONDS / (cpu_millis / 1000),
            "wait-schema: secret reads, then the database wait": database_wait,
        }
    probe = startup_probe_failures(workers=workers, cpu_millis=cpu_millis)
    budget["server: the start the startup probe allows"] = float(
        (probe - 1) * STARTUP_PROBE_PERIOD_SECONDS
    )
    return budget


def progress_deadline_seconds(*, workers: int, cpu_millis: int, snapshot: bool) -> int:
    """The Deployment's progressDeadlineSeconds: the first pod's budget (the slowest)."""
    budget = pod_start_budget(workers=workers, cpu_millis=cpu_millis, first=True, snapshot=snapshot)
    return math.ceil(sum(budget.values()))


def launcher_environment(
    *,
    engine: str,
    host: str,
    port: int,
    name: str,
    secret_id: str,
    ca_bundle: str,
    artifacts_destination: str,
    workers: int,
    allowed_hosts: list[str],
    cors_allowed_origins: list[str],
    graceful_shutdown_seconds: int,
    log_level: str,
    region: str,
    metrics_dir: str,
    read_host: str | None = None,
    workspaces: bool = False,
) -> dict[str, str]:
    """The ConfigMap data the pods load with envFrom. Holds no secret: only its ARN."""
    v = launcher
    return v.render(
        {
            # A read replica shares the primary's port, login and name (RDS): its host suffices.
            v.DB_READ_HOST: read_host or None,
            v.DB_ENGINE: engine,
            v.DB_HOST: host,
            v.DB_PORT: port,
            v.DB_NAME: name,
            v.DB_SECRET_ID: secret_id,
            v.DB_CA_BUNDLE: ca_bundle,
            v.ARTIFACTS_DESTINATION: artifacts_destination,
            v.HOST: "0.0.0.0",  # noqa: S104 - the pod's port is the service's target
            v.PORT: CONTAINER_PORT,
            v.WORKERS: workers,
            v.LOG_LEVEL: log_level,
            v.ALLOWED_HOSTS: tuple(allowed_hosts),
            v.CORS_ALLOWED_ORIGINS: tuple(cors_allowed_origins),
            # uvicorn (started by `mlflow server`) reads its options from UVICORN_* variables.
            # By default it waits for in-flight requests without limit, and the kubelet's
            # SIGKILL would end them mid-transfer; with a bound it cancels them itself, logged.
            v.UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN: graceful_shutdown_seconds,
            v.AWS_REGION: region,
            v.AWS_DEFAULT_REGION: region,
            # botocore reads these for every client it makes, the STS client of IRSA's
            # credential provider and MLflow's S3 client included: standard mode retries
            # throttling and connection errors with backoff (AWS SDKs' "standard" behaviour).
            v.AWS_RETRY_MODE: "standard",
            v.AWS_MAX_ATTEMPTS: AWS_MAX_ATTEMPTS,
            v.DB_WAIT_SECONDS: DB_WAIT_SECONDS,
            v.DB_CONNECT_TIMEOUT_SECONDS: DB_CONNECT_TIMEOUT_SECONDS,
            v.DB_NETWORK_TIMEOUT_SECONDS: DB_NETWORK_TIMEOUT_SECONDS,
            v.DB_STATEMENT_TIMEOUT_SECONDS: DB_STATEMENT_TIMEOUT_SECONDS,
            # `mlflow server --expose-prometheus <dir>` (its click option's variable): the
            # workers write their counters here; the `metrics` container serves their sum.
            v.EXPOSE_PROMETHEUS: metrics_dir,
            v.METRICS_PORT: METRICS_PORT,
            # Written only when on: a ConfigMap that changes rolls the pods, and off is the
            # launcher's (and MLflow's) default. Every pod reads it: the server, the migration
            # Job, and gc, which must then clean every workspace.
            v.ENABLE_WORKSPACES: True if workspaces else None,
        }
    )


def migration_environment(
    *, admin_secret_id: str | None, instance_id: str | None
) -> dict[str, str]:
    """What the migration Job adds to the ConfigMap: the master login's ARN (only it may read
    the secret) and the RDS instance it snapshots before it changes a schema that holds data."""
    return launcher.render(
        {
            launcher.DB_ADMIN_SECRET_ID: admin_secret_id or None,
            launcher.DB_INSTANCE_ID: instance_id or None,
        }
    )


def schema_wait_environment(logs_command: str) -> dict[str, str]:
    """The server pod's init container (`wait-schema`): where the migration Job's log is."""
    return launcher.render({launcher.MIGRATION_LOGS_COMMAND: logs_command})


def guard_environment(workload: WorkloadProps) -> dict[str, str]:
    """The limits each server process enforces before MLflow reads a request (the launcher's
    guard: mlflow_launcher/guard/limits.py reads these variables)."""
    v = launcher
    return v.render(
        {
            v.MAX_REQUEST_BODY_MIB: workload.max_request_body_mib,
            v.MAX_PROXIED_ARTIFACT_MIB: workload.max_proxied_artifact_gib * 1024,
            v.CONCURRENT_ARTIFACT_TRANSFERS: workload.concurrent_artifact_transfers,
            v.CONCURRENT_SIGN_IN_CHECKS: workload.concurrent_sign_in_checks,
            v.SIGN_IN_FAILURES_PER_MINUTE: workload.sign_in_failures_per_minute,
        }
    )


def extras_environment(workload: WorkloadProps) -> dict[str, str]:
    """What the user adds to `mlflow server` (server.extra_args, extra_env), as JSON the
    launcher parses and checks again; nothing when there is nothing. In the ConfigMap, so its
    digest rolls the pods when they change."""
    v = launcher
    return v.render(
        {
            v.SERVER_EXTRA_ARGS: workload.extra_args or None,
            v.SERVER_EXTRA_ENV: dict(workload.extra_env) or None,
        }
    )


UNRESOLVED_MARK = "${Token["
"""How an unresolved CDK token looks inside a string (aws_cdk.Token's encoding)."""


def sso_environment(
    *,
    alb_arn: str,
    username_claim: str | None = None,
    groups_claim: str | None = None,
    admin_group: str | None = None,
    issuer: str | None = None,
    client_id: str | None = None,
    trusted_cidrs: list[str] | None = None,
) -> dict[str, str]:
    """Single sign-on for browsers through the ALB's OIDC action (the launcher's
    mlflow_launcher.sso): the ALB whose signed header signs people in, which claims name the
    user and their groups, the IdP group whose members are MLflow admins, the issuer and
    client the header must name, and the networks (the ALB's subnets) it may come from. None
    leaves the launcher's default (claims `email` and `groups`; no admin group, issuer or
    client check; any address).

    `alb_arn` may be a CDK token (the ARN read back once the Ingress made the ALB): written
    unchecked, the launcher checks it at start. Never a key URL: the launcher fetches keys
    from AWS's endpoint for the ALB's Region."""
    v = launcher
    # Deploy-time values (the ALB's subnets, read back with its ARN) are written unchecked too.
    cidrs_token = bool(trusted_cidrs) and any(UNRESOLVED_MARK in c for c in trusted_cidrs or ())
    checked_cidrs = tuple(trusted_cidrs) if trusted_cidrs and not cidrs_token else None
    env = v.render(
        {
            v.SSO_USERNAME_CLAIM: username_claim,
            v.SSO_GROUPS_CLAIM: groups_claim,
            v.SSO_ADMIN_GROUP: admin_group,
            v.SSO_ISSUER: issuer,
            v.SSO_CLIENT_ID: client_id,
            v.SSO_TRUSTED_CIDRS: checked_cidrs,
        }
    )
    if cidrs_token:
        env[v.SSO_TRUSTED_CIDRS.name] = ",".join(trusted_cidrs or ())
    if UNRESOLVED_MARK in alb_arn:
        return {v.SSO_ALB_ARN.name: alb_arn, **env}
    return {**v.render({v.SSO_ALB_ARN: alb_arn}), **env}


def verify_environment(
    *,
    targets: list[str],
    timeout_seconds: int,
    signal_url: str | None,
    logs_command: str,
    deployment: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    pod_annotation: str | None = None,
    rollout_timeout_seconds: int | None = None,
    admin_secret_id: str | None = None,
    region: str | None = None,
    connect_to: dict[str, str] | None = None,
    ca_bundle: str | None = None,
) -> dict[str, str]:
    """The environment of `mlflow-launcher verify` (the deploy check's Job). No secret: the
    signal URL only lets its holder report this one check's outcome, and with authentication
    on, the check signs in with the admin login it reads from the secret named here.

    With `deployment`, it first waits until that Deployment (in `namespace`) has rolled out a
    pod template whose containers run `image` and which carries `pod_annotation`
    (`<name>=<value>`), for at most `rollout_timeout_seconds`. `connect_to`: target name ->
    the address it is reached at (its name kept for TLS and Host); `ca_bundle`: the CAs https
    targets must chain to (PEM), instead of the public roots."""
    v = launcher
    env = {
        v.VERIFY_TARGETS: tuple(targets),
        v.VERIFY_TIMEOUT_SECONDS: timeout_seconds,
        v.VERIFY_LOGS_COMMAND: logs_command,
        v.VERIFY_CONNECT_TO: (
            tuple(f"{name}={address}" for name, address in connect_to.items())
            if connect_to
            else None
        ),
        v.VERIFY_CA_BUNDLE: ca_bundle,
    }
    if deployment is not None:
        if not (namespace and image and rollout_timeout_seconds):
            raise ValueError(
                "verify_environment: waiting for a rollout needs its namespace, image and timeout"
            )
        env |= {
            v.VERIFY_DEPLOYMENT: deployment,
            v.VERIFY_NAMESPACE: namespace,
            v.VERIFY_IMAGE: image,
            v.VERIFY_ROLLOUT_TIMEOUT_SECONDS: rollout_timeout_seconds,
            v.VERIFY_POD_ANNOTATION: pod_annotation or None,
        }
    env[v.VERIFY_SIGNAL_URL] = signal_url
    if admin_secret_id is not None:
        if not region:
            raise ValueError("verify_environment: reading the admin secret needs the region")
        env |= {v.AUTH_ADMIN_SECRET_ID: admin_secret_id, v.AWS_REGION: region}
        env[v.AWS_DEFAULT_REGION] = region
    return v.render(env)


GC_TIMEOUT_SECONDS: int = launcher.GC_TIMEOUT_SECONDS.default
"""A gc run's time limit (MLFLOW_GC_TIMEOUT_SECONDS): the launcher stops it with a message
then. Work left over (a large backlog) is the next run's: each run's deletions are kept."""
GC_HTTP_TIMEOUT_SECONDS: int = launcher.HTTP_REQUEST_TIMEOUT.default
"""Each of gc's requests to the tracking server (artifact deletions), MLflow's client default,
made explicit; with GC_HTTP_RETRIES instead of MLflow's 7, one request that never gets an
answer costs a run minutes rather than a quarter of an hour."""
GC_HTTP_RETRIES: int = launcher.HTTP_REQUEST_MAX_RETRIES.default


def gc_environment(*, older_than: str, tracking_uri: str) -> dict[str, str]:
    """What `mlflow-launcher gc` reads besides the server's ConfigMap."""
    v = launcher
    return v.render(
        {
            v.GC_OLDER_THAN: older_than,
            v.GC_TRACKING_URI: tracking_uri,
            v.GC_TIMEOUT_SECONDS: GC_TIMEOUT_SECONDS,
            # The MLflow client's own variables (mlflow.environment_variables).
            v.HTTP_REQUEST_TIMEOUT: GC_HTTP_TIMEOUT_SECONDS,
            v.HTTP_REQUEST_MAX_RETRIES: GC_HTTP_RETRIES,
        }
    )
