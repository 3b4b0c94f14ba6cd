"""The kubelet's probes of a container running `mlflow-launcher serve` (the server pods and
the job runner): both answer /health on the container port once MLflow is up."""

from __future__ import annotations

import cdk8s
import cdk8s_plus_27 as kplus

from .contract import CONTAINER_PORT, STARTUP_PROBE_PERIOD_SECONDS, startup_probe_failures

HEALTH_PATH = "/health"


def startup_probe(*, workers: int, cpu_millis: int) -> kplus.Probe:
    """Long enough for the launcher's every bounded wait and the server's start
    (contract.start_budget): a start that fails ends with the launcher's own message, not with
    the kubelet's restart in the middle of a wait."""
    return kplus.Probe.from_http_get(
        HEALTH_PATH,
        port=CONTAINER_PORT,
        period_seconds=cdk8s.Duration.seconds(STARTUP_PROBE_PERIOD_SECONDS),
        failure_threshold=startup_probe_failures(workers=workers, cpu_millis=cpu_millis),
    )


def answering_probe(period_seconds: int) -> kplus.Probe:
    """Readiness or liveness: 5 s to answer, not the 1 s default (a worker busy with a large
    transfer or a slow search answers late, and a missed liveness probe restarts the pod);
    three misses in a row."""
    return kplus.Probe.from_http_get(
        HEALTH_PATH,
        port=CONTAINER_PORT,
        period_seconds=cdk8s.Duration.seconds(period_seconds),
        timeout_seconds=cdk8s.Duration.seconds(5),
        failure_threshold=3,
    )
