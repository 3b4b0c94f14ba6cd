"""One time budget for the server container's start: the launcher's bounds (the values the
chart's ConfigMap gives it, rendered from the same declarations the launcher parses, in
mlflow_launcher/contract.py) and the startup probe that the kubelet applies must agree, so that
a start that fails ends with the launcher's own message rather than with a restart in the middle
of a wait."""

from __future__ import annotations

import pytest

from mlflow_on_eks.k8s_charts import contract
from tests.conftest import Synth


def _server(synth: Synth) -> tuple[dict, dict]:
    """The server container and the environment its ConfigMap gives it."""
    [deployment] = [
        d
        for d in synth.objects("Deployment")
        if d["metadata"]["name"] == "mlflow"  # not the job runner's
    ]
    [server] = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server"
    ]
    [source] = server["envFrom"]
    return server, synth.object("ConfigMap", source["configMapRef"]["name"])["data"]


def _millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else round(float(quantity) * 1000)


def test_the_startup_probe_outlasts_every_bounded_wait(each_config: Synth):
    server, env = _server(each_config)
    probe = server["startupProbe"]
    # The kubelet restarts the container at the threshold-th failure; the first probe comes
    # right at the start, so (threshold - 1) periods pass before the restart.
    allowed = (probe["failureThreshold"] - 1) * probe["periodSeconds"]
    budget = contract.start_budget(
        workers=int(env["MLFLOW_WORKERS"]),
        cpu_millis=_millicores(server["resources"]["requests"]["cpu"]),
    )
    assert allowed >= sum(budget.values()), budget
    # The budget counts the waits the pod really has: the ConfigMap's values, which the
    # launcher reads.
    attempt = int(env["MLFLOW_DB_CONNECT_TIMEOUT_SECONDS"]) + int(
        env["MLFLOW_DB_NETWORK_TIMEOUT_SECONDS"]
    )
    assert budget["secret reads, then the database wait"] >= float(env["MLFLOW_DB_WAIT_SECONDS"])
    assert budget["the last connection attempt"] == attempt
    assert budget["schema checks"] == 3 * attempt  # the store's, the replica's, the users'
    assert budget["margin"] == contract.START_MARGIN_SECONDS > 0
    assert int(env["AWS_MAX_ATTEMPTS"]) == contract.AWS_MAX_ATTEMPTS


def test_a_failing_secret_read_gives_up_within_the_database_wait():
    """The reads come before the wait and count against its deadline: one that fails must not
    outlast it (every attempt timing out, botocore's longest backoff between them)."""
    assert contract.aws_call_seconds() < contract.DB_WAIT_SECONDS


@pytest.mark.parametrize(("workers", "cpu_millis"), [(1, 250), (2, 500), (8, 4000)])
def test_a_slower_start_gets_a_longer_probe(workers, cpu_millis):
    """The CPU part follows the pod's size: fewer cores for more workers means more time."""
    failures = contract.startup_probe_failures(workers=workers, cpu_millis=cpu_millis)
    budget = sum(contract.start_budget(workers=workers, cpu_millis=cpu_millis).values())
    assert (failures - 1) * contract.STARTUP_PROBE_PERIOD_SECONDS >= budget
    assert (failures - 2) * contract.STARTUP_PROBE_PERIOD_SECONDS < budget  # not more than needed
