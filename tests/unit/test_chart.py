"""MlflowChart on its own: plain-string props in, Kubernetes objects out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cdk8s
import pytest

from k8s_charts import (
    AUTO_MODE_LOAD_BALANCER_CLASS,
    LB_CONTROLLER_LOAD_BALANCER_CLASS,
    ExternalLoadBalancerProps,
    MlflowChart,
    MlflowChartProps,
)

PROPS = MlflowChartProps(
    namespace="ml",
    image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlflow:abc",
    role_arn="arn:aws:iam::123456789012:role/mlflow",
    db_engine="postgres",
    db_host="db.example.internal",
    db_port=5432,
    db_secret_id="arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
    artifacts_destination="s3://bucket/artifacts",
    region="eu-west-1",
)
EXTERNAL = ExternalLoadBalancerProps(
    allowed_cidrs=("203.0.113.0/24",),
    certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/x",
)
RECOMMENDED_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
}


def render(props: MlflowChartProps = PROPS) -> list[dict[str, Any]]:
    return cdk8s.Testing.synth(MlflowChart(cdk8s.Testing.app(), "test", props=props))


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]


def test_default_objects() -> None:
    kinds = [o["kind"] for o in render()]
    assert kinds[0] == "Namespace", "the namespace must be applied first"
    assert sorted(kinds) == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Deployment",
            "Service",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
        ]
    )


def test_every_object_is_namespaced_and_labelled() -> None:
    for obj in render():
        assert set(obj["metadata"]["labels"]) >= RECOMMENDED_LABELS, obj["kind"]
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "ml", obj["kind"]


def test_namespace_enforces_restricted_pod_security() -> None:
    labels = one(render(), "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_service_account_carries_the_role_and_no_token() -> None:
    sa = one(render(), "ServiceAccount", "mlflow")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": PROPS.role_arn}
    assert sa["automountServiceAccountToken"] is False


def test_config_map_is_the_launcher_contract() -> None:
    data = one(render(), "ConfigMap", "mlflow-config")["data"]
    assert data == {
        "MLFLOW_DB_ENGINE": "postgres",
        "MLFLOW_DB_HOST": "db.example.internal",
        "MLFLOW_DB_PORT": "5432",
        "MLFLOW_DB_NAME": "mlflow",
        "MLFLOW_DB_SECRET_ID": PROPS.db_secret_id,
        "MLFLOW_DB_CA_BUNDLE": "/etc/ssl/certs/rds-global-bundle.pem",
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/artifacts",
        "MLFLOW_HOST": "0.0.0.0",
        "MLFLOW_PORT": "5000",
        "MLFLOW_WORKERS": "2",
        "MLFLOW_ALLOWED_HOSTS": data["MLFLOW_ALLOWED_HOSTS"],
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }


def test_allowed_hosts_cover_service_names_and_extras() -> None:
    props = replace(PROPS, allowed_hosts=("mlflow.example.com",), external=EXTERNAL)
    hosts = one(render(props), "ConfigMap")["data"]["MLFLOW_ALLOWED_HOSTS"].split(",")
    for name in ("mlflow", "mlflow-internal", "mlflow-external"):
        assert {name, f"{name}.ml", f"{name}.ml.svc", f"{name}.ml.svc.cluster.local"} <= set(hosts)
    assert {"localhost", "localhost:*", "127.0.0.1:*", "*.elb.amazonaws.com"} <= set(hosts)
    assert "mlflow.example.com" in hosts
    assert len(hosts) == len(set(hosts))


def test_deployment_runs_migrate_then_serve_from_the_same_image() -> None:
    spec = pod_spec(render())
    [init] = spec["initContainers"]
    [server] = spec["containers"]
    assert (init["name"], init["args"]) == ("migrate", ["migrate"])
    assert (server["name"], server["args"]) == ("server", ["serve"])
    assert "command" not in init and "command" not in server, "the image's entrypoint runs"
    assert init["image"] == server["image"] == PROPS.image
    assert spec["serviceAccountName"] == "mlflow"
    for container in (init, server):
        assert container["envFrom"] == [{"configMapRef": {"name": "mlflow-config"}}]
        assert "env" not in container or not any("PASSWORD" in e["name"] for e in container["env"])


def test_containers_are_locked_down() -> None:
    spec = pod_spec(render())
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in spec["initContainers"] + spec["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 10001
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "1024Mi"}} in spec["volumes"]


def test_probes_use_health() -> None:
    [server] = pod_spec(render())["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] == "/health", probe
        assert server[probe]["httpGet"]["port"] == 5000, probe
    assert server["ports"] == [{"containerPort": 5000}]


def test_resources_and_rollout() -> None:
    objects = render(replace(PROPS, cpu="1.5", memory_mib=2048))
    [server] = pod_spec(objects)["containers"]
    assert server["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2048Mi"},
        "limits": {"memory": "2048Mi"},
    }
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "mlflow",
        "app.kubernetes.io/instance": "mlflow",
    }
    keys = [c["topologyKey"] for c in pod_spec(objects)["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]


def test_default_services_cluster_ip_and_internal_nlb() -> None:
    objects = render()
    cluster = one(objects, "Service", "mlflow")
    assert cluster["spec"]["type"] == "ClusterIP"
    assert cluster["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 5000}]
    internal = one(objects, "Service", "mlflow-internal")
    assert internal["spec"]["type"] == "LoadBalancer"
    assert internal["spec"]["loadBalancerClass"] == AUTO_MODE_LOAD_BALANCER_CLASS
    annotations = internal["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    for service in (cluster, internal):
        assert service["spec"]["selector"] == {
            "app.kubernetes.io/name": "mlflow",
            "app.kubernetes.io/instance": "mlflow",
        }


def test_no_internal_load_balancer_when_disabled() -> None:
    services = by_kind(render(replace(PROPS, internal_load_balancer=False)), "Service")
    assert [s["metadata"]["name"] for s in services] == ["mlflow"]


def test_external_service_is_tls_and_source_restricted() -> None:
    objects = render(
        replace(PROPS, external=EXTERNAL, load_balancer_class=LB_CONTROLLER_LOAD_BALANCER_CLASS)
    )
    external = one(objects, "Service", "mlflow-external")
    spec = external["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["loadBalancerClass"] == LB_CONTROLLER_LOAD_BALANCER_CLASS
    assert spec["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert spec["ports"] == [{"name": "https", "port": 443, "targetPort": 5000}]
    annotations = external["metadata"]["annotations"]
    prefix = "service.beta.kubernetes.io/aws-load-balancer-"
    assert annotations[f"{prefix}scheme"] == "internet-facing"
    assert annotations[f"{prefix}ssl-cert"] == EXTERNAL.certificate_arn
    assert annotations[f"{prefix}ssl-ports"] == "443"


def test_no_external_service_by_default() -> None:
    assert not [
        s for s in by_kind(render(), "Service") if s["metadata"]["name"].endswith("external")
    ]


def test_network_policy_limits_egress_to_dns_db_and_https() -> None:
    policy = one(render(), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"port": 5000, "protocol": "TCP"}]}]
    egress = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 443)}


@pytest.mark.parametrize(("replicas", "budget"), [(1, False), (2, True)])
def test_disruption_budget_only_with_several_replicas(replicas: int, budget: bool) -> None:
    objects = render(replace(PROPS, replicas=replicas))
    assert bool(by_kind(objects, "PodDisruptionBudget")) is budget
    if budget:
        assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_autoscaler_owns_replicas_when_enabled() -> None:
    objects = render(replace(PROPS, replicas=3, max_replicas=6))
    hpa = one(objects, "HorizontalPodAutoscaler", "mlflow")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "mlflow"
    assert "replicas" not in one(objects, "Deployment")["spec"]
    assert not by_kind(render(), "HorizontalPodAutoscaler")
