"""The contract between the chart and the image: ports, paths and the launcher's environment.

image/launcher reads exactly these variables (see its settings module); the integration
tests start the launcher from the ConfigMap this produces, so a rename here fails them.
"""

from __future__ import annotations

CONTAINER_PORT = 5000
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
) -> dict[str, str]:
    """The ConfigMap data both containers load with envFrom. Holds no secret: only its ARN."""
    return {
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
    }


def verify_environment(
    *,
    targets: list[str],
    timeout_seconds: int,
    signal_url: str | None,
    logs_command: str,
) -> dict[str, str]:
    """The environment of `mlflow-launcher verify` (the deploy check's Job). No secret: the
    signal URL only lets its holder report this one check's outcome."""
    env = {
        "MLFLOW_VERIFY_TARGETS": ",".join(targets),
        "MLFLOW_VERIFY_TIMEOUT_SECONDS": str(timeout_seconds),
        "MLFLOW_VERIFY_LOGS_COMMAND": logs_command,
    }
    if signal_url is not None:
        env["MLFLOW_VERIFY_SIGNAL_URL"] = signal_url
    return env
