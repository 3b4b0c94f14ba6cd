"""The contract between the chart and the image: ports, paths and the launcher's environment.

image/launcher reads exactly these variables (see its settings module); the integration
tests start the launcher from the ConfigMap this produces, so a rename here fails them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow_on_eks.k8s_charts.rules import SignInCacheSeconds, validate_props
from mlflow_on_eks.k8s_charts.workload import WorkloadProps

CONTAINER_PORT = 5000
METRICS_PORT = 9464
"""The pod's `metrics` container (Prometheus exporters' customary port range)."""
SERVICE_PORT = 80
TLS_SERVICE_PORT = 443
RDS_CA_BUNDLE_PATH = "/etc/ssl/certs/rds-global-bundle.pem"
"""Where image/Dockerfile puts the RDS CA bundle, fetched at build time."""


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
    region: str,
    metrics_dir: str,
    read_host: str | None = None,
    instance_id: str | None = None,
) -> dict[str, str]:
    """The ConfigMap data both containers load with envFrom. Holds no secret: only its ARN."""
    optional = {
        # A read replica shares the primary's port, login and name (RDS): its host suffices.
        "MLFLOW_DB_READ_HOST": read_host,
        # The RDS instance `migrate` snapshots before it changes a schema that holds data.
        "MLFLOW_DB_INSTANCE_ID": instance_id,
    }
    return {key: value for key, value in optional.items() if value} | {
        "MLFLOW_DB_ENGINE": engine,
        "MLFLOW_DB_HOST": host,
        "MLFLOW_DB_PORT": str(port),
        "MLFLOW_DB_NAME": name,
        "MLFLOW_DB_SECRET_ID": secret_id,
        "MLFLOW_DB_CA_BUNDLE": ca_bundle,
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts_destination,
        "MLFLOW_HOST": "0.0.0.0",  # noqa: S104 - the pod's port is the service's target
        "MLFLOW_PORT": str(CONTAINER_PORT),
        "MLFLOW_WORKERS": str(workers),
        "MLFLOW_ALLOWED_HOSTS": ",".join(allowed_hosts),
        "MLFLOW_CORS_ALLOWED_ORIGINS": ",".join(cors_allowed_origins),
        # uvicorn (started by `mlflow server`) reads its options from UVICORN_* variables. By
        # default it waits for in-flight requests without limit, and the kubelet's SIGKILL
        # would end them mid-transfer; with a bound it cancels them itself, logged.
        "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": str(graceful_shutdown_seconds),
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        # `mlflow server --expose-prometheus <dir>` (its click option's variable): the workers
        # write their counters here; the `metrics` container serves their sum.
        "MLFLOW_EXPOSE_PROMETHEUS": metrics_dir,
        "MLFLOW_METRICS_PORT": str(METRICS_PORT),
    }


def guard_environment(workload: WorkloadProps) -> dict[str, str]:
    """The limits each server process enforces before MLflow reads a request (the launcher's
    guard: mlflow_launcher/guard/limits.py reads these variables)."""
    return {
        "MLFLOW_MAX_REQUEST_BODY_MIB": str(workload.max_request_body_mib),
        "MLFLOW_MAX_PROXIED_ARTIFACT_MIB": str(workload.max_proxied_artifact_gib * 1024),
        "MLFLOW_CONCURRENT_ARTIFACT_TRANSFERS": str(workload.concurrent_artifact_transfers),
        "MLFLOW_CONCURRENT_SIGN_IN_CHECKS": str(workload.concurrent_sign_in_checks),
        "MLFLOW_SIGN_IN_FAILURES_PER_MINUTE": str(workload.sign_in_failures_per_minute),
    }


def verify_environment(
    *,
    targets: list[str],
    timeout_seconds: int,
    signal_url: str | None,
    logs_command: str,
    admin_secret_id: str | None = None,
    region: str | None = None,
) -> dict[str, str]:
    """The environment of `mlflow-launcher verify` (the deploy check's Job). No secret: the
    signal URL only lets its holder report this one check's outcome, and with authentication
    on, the check signs in with the admin login it reads from the secret named here."""
    env = {
        "MLFLOW_VERIFY_TARGETS": ",".join(targets),
        "MLFLOW_VERIFY_TIMEOUT_SECONDS": str(timeout_seconds),
        "MLFLOW_VERIFY_LOGS_COMMAND": logs_command,
    }
    if signal_url is not None:
        env["MLFLOW_VERIFY_SIGNAL_URL"] = signal_url
    if admin_secret_id is not None:
        if not region:
            raise ValueError("verify_environment: reading the admin secret needs the region")
        env["MLFLOW_AUTH_ADMIN_SECRET_ID"] = admin_secret_id
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    return env


@dataclass(frozen=True)
class AuthProps:
    """MLflow's basic-auth app. Secrets travel as ARNs; the launcher reads them at start."""

    admin_secret_id: str
    """Secret with JSON `username` and `password`: the admin MLflow creates on first start."""
    flask_secret_key_id: str
    """Secret holding MLFLOW_FLASK_SERVER_SECRET_KEY (the same on every replica)."""
    kek_passphrase_id: str
    """Secret holding MLFLOW_CRYPTO_KEK_PASSPHRASE."""
    default_permission: str = "READ"
    database_name: str = "mlflow_auth"
    """The users' database, on the backend store's instance."""
    sign_in_cache_seconds: SignInCacheSeconds = 30
    """How long each server process remembers a successful password check (MLflow's
    auth_cache_ttl_seconds; 0: never). MLflow checks passwords with scrypt, slow on purpose:
    measured here 67 ms of CPU and 32 MiB per check, every request, which made a tracking run
    (create, log_batch, end) cost about 0.7 s of server CPU against 0.05 s without sign-in
    (bench/server.py). The cost of remembering: a changed password, a deleted user or a removed
    admin flag takes up to this long to reach the other processes and pods."""

    def __post_init__(self) -> None:
        validate_props(self)


def auth_environment(auth: AuthProps) -> dict[str, str]:
    """What the launcher needs to run MLflow's basic-auth app: names and ARNs, no secret."""
    return {
        "MLFLOW_AUTH_ADMIN_SECRET_ID": auth.admin_secret_id,
        "MLFLOW_AUTH_FLASK_SECRET_ID": auth.flask_secret_key_id,
        "MLFLOW_AUTH_KEK_SECRET_ID": auth.kek_passphrase_id,
        "MLFLOW_AUTH_DEFAULT_PERMISSION": auth.default_permission,
        "MLFLOW_AUTH_DB_NAME": auth.database_name,
        "MLFLOW_AUTH_CACHE_SECONDS": str(auth.sign_in_cache_seconds),
    }


def gc_environment(*, older_than: str, tracking_uri: str) -> dict[str, str]:
    """What `mlflow-launcher gc` reads besides the server's ConfigMap."""
    return {"MLFLOW_GC_OLDER_THAN": older_than, "MLFLOW_GC_TRACKING_URI": tracking_uri}
