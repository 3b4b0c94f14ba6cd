"""The constructs refuse, at synth time, what the config file refuses: same rules, one
definition (k8s_charts/rules.py). Used from another CDK app, bad props used to pass and fail
only at deploy (a namespace Kubernetes rejects) or never (0.0.0.0/0 without the opt-in)."""

from __future__ import annotations

import pytest

from mlflow_on_eks.k8s_charts import (
    ExternalLoadBalancerProps,
    GcProps,
    ResourceProps,
    WorkloadProps,
)
from mlflow_on_eks.k8s_charts.rules import InvalidProps
from tests.unit.test_settings import BAD, CERT


def test_bad_props_fail_with_every_problem_named() -> None:
    with pytest.raises(InvalidProps) as caught:
        WorkloadProps(namespace="Team_ML", replicas=0, max_replicas=0)
    message = str(caught.value)
    assert message.startswith("WorkloadProps: invalid props")
    assert "namespace: expected a DNS-1123 label" in message
    assert "replicas: Input should be greater than or equal to 1 (got 0)" in message
    assert "max_replicas: Input should be greater than or equal to 1 (got 0)" in message


def test_an_open_load_balancer_needs_the_opt_in_and_a_real_certificate() -> None:
    with pytest.raises(InvalidProps) as caught:
        ExternalLoadBalancerProps(
            enabled=True, allowed_cidrs=("0.0.0.0/0",), certificate_arn="not-an-arn"
        )
    message = str(caught.value)
    assert "certificate_arn: String should match pattern" in message
    assert "allowed_cidrs: 0.0.0.0/0 opens MLflow's sign-in and API" in message
    confirmed = ExternalLoadBalancerProps(
        enabled=True, allowed_cidrs=["0.0.0.0/0"], certificate_arn=CERT, allow_internet=True
    )
    # The section's own rules come along: addresses given to a load balancer left off.
    with pytest.raises(InvalidProps, match="enabled: is false but allowed_cidrs"):
        ExternalLoadBalancerProps(allowed_cidrs=["10.0.0.0/8"])
    assert confirmed.allowed_cidrs == ("0.0.0.0/0",)


def test_values_are_stored_in_their_normal_form() -> None:
    props = WorkloadProps(allowed_hosts=["mlflow.example.com"], resources=ResourceProps(cpu=1))
    assert props.allowed_hosts == ("mlflow.example.com",)
    assert props.resources.cpu == "1"
    assert props.replace(replicas=3).replicas == 3
    with pytest.raises(InvalidProps, match="replicas: Input should be greater"):
        props.replace(replicas=0)
    with pytest.raises(InvalidProps, match="schedule: expected five cron fields"):
        GcProps(schedule="daily")


def _server_cases() -> list[tuple[dict, str, str]]:
    """The config matrix's bad `server` values, unknown keys included: the section is the
    model the library takes."""
    return [
        (raw["server"], path.removeprefix("server."), why)
        for raw, path, why in BAD
        if list(raw) == ["server"]
    ]


@pytest.mark.parametrize(("server", "key", "why"), _server_cases(), ids=lambda v: str(v)[:40])
def test_workload_props_refuse_what_the_config_refuses(server: dict, key: str, why: str) -> None:
    values = dict(server)
    with pytest.raises(InvalidProps) as caught:
        if "resources" in values:
            values["resources"] = ResourceProps(**values["resources"])
        WorkloadProps(**values)
    lines = str(caught.value).splitlines()
    leaf = key.split(".")[-1]
    assert any(line.strip().startswith((f"{key}", f"{leaf}")) for line in lines), lines


def _external_cases() -> list[tuple[dict, str, str]]:
    """The config matrix's bad values of what the load balancer props hold."""
    names = set(ExternalLoadBalancerProps.model_fields)
    cases = []
    for raw, path, why in BAD:
        external = raw.get("exposure", {}).get("external", {}) if list(raw) == ["exposure"] else {}
        key = path.removeprefix("exposure.external.")
        if (
            external.get("enabled")
            and key.split("[")[0] in names
            and external.get("certificate_arn")
        ):
            cases.append((external, key, why))
    return cases


@pytest.mark.parametrize(("external", "key", "why"), _external_cases(), ids=lambda v: str(v)[:40])
def test_load_balancer_props_refuse_what_the_config_refuses(
    external: dict, key: str, why: str
) -> None:
    names = set(ExternalLoadBalancerProps.model_fields)
    with pytest.raises(InvalidProps) as caught:
        ExternalLoadBalancerProps(**{k: v for k, v in external.items() if k in names})
    assert any(line.strip().startswith(key) for line in str(caught.value).splitlines())


def test_the_matrices_reach_the_library() -> None:
    """The two cross-checks above run on real cases (an empty list would pass vacuously)."""
    assert len(_server_cases()) >= 15
    assert len(_external_cases()) >= 3
