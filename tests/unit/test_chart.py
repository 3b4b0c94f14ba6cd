"""MlflowChart on its own: plain-string props in, Kubernetes objects out."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Any

import cdk8s
import pytest

from mlflow_on_eks.k8s_charts import (
    AUTO_MODE_LOAD_BALANCER_CLASS,
    LB_CONTROLLER_LOAD_BALANCER_CLASS,
    AuthProps,
    AuthSecretIds,
    ExposureProps,
    ExternalLoadBalancerProps,
    GcProps,
    InternalLoadBalancerProps,
    MetricsScrapersProps,
    MlflowChart,
    MlflowChartProps,
    ResourceProps,
    ServiceMonitorProps,
    WorkloadProps,
)
from mlflow_on_eks.k8s_charts.node_pool_chart import DATABASE_CLIENT_LABEL, DEDICATED_TAINT
from mlflow_on_eks.k8s_charts.rules import InvalidProps

PROPS = MlflowChartProps(
    workload=WorkloadProps(namespace="ml"),
    image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlflow:abc",
    role_arn="arn:aws:iam::123456789012:role/mlflow",
    db_engine="postgres",
    db_host="db.example.internal",
    db_port=5432,
    db_secret_id="arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
    artifacts_destination="s3://bucket/artifacts",
    region="eu-west-1",
    db_admin_secret_id="arn:aws:secretsmanager:eu-west-1:123456789012:secret:master-AbCdEf",
    migrate_role_arn="arn:aws:iam::123456789012:role/mlflow-migrate",
    migration_revision="0123456789",
)
EXTERNAL = ExternalLoadBalancerProps(
    enabled=True,
    allowed_cidrs=("203.0.113.0/24",),
    certificate_arn=(
        "arn:aws:acm:eu-west-1:123456789012:certificate/0f8e7d6c-5b4a-4321-9abc-def012345678"
    ),
)
HOSTNAME = "mlflow.internal.example.com"
INTERNAL_TLS = InternalLoadBalancerProps(
    certificate_arn=(
        "arn:aws:acm:eu-west-1:123456789012:certificate/6e5d4c3b-2a19-4807-8f6e-5d4c3b2a1908"
    ),
    hostname=HOSTNAME,
)
LB = "service.beta.kubernetes.io/aws-load-balancer-"
# DNS names in the formats AWS gives load balancers (Elastic Load Balancing user guides):
# NLB `<name>-<id>.elb.<region>.amazonaws.com`, ALB/CLB `<name>-<id>.<region>.elb.amazonaws.com`.
NLB_NAME = "k8s-ml-mlflowin-4f8a2b1c9d-0123456789abcdef.elb.eu-west-1.amazonaws.com"
NLB_NAME_CN = "k8s-ml-mlflowin-4f8a2b1c9d-0123456789abcdef.elb.cn-north-1.amazonaws.com.cn"
ALB_NAME = "k8s-ml-mlflow-4f8a2b1c9d-1234567890.eu-west-1.elb.amazonaws.com"
EXTERNAL_NLB_NAME = "k8s-ml-mlflowex-7e6d5c4b3a-89abcdef01234567.elb.eu-west-1.amazonaws.com"
OTHER_NLB_NAME = "k8s-tenant-web-0a1b2c3d4e-fedcba9876543210.elb.eu-west-1.amazonaws.com"
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


def pod_template(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return pod_template(objects)["spec"]


def with_workload(props: MlflowChartProps = PROPS, /, **changes: object) -> MlflowChartProps:
    """`props` with some workload settings changed."""
    return replace(props, workload=props.workload.replace(**changes))


def test_default_objects() -> None:
    kinds = [o["kind"] for o in render()]
    assert kinds[0] == "Namespace", "the namespace must be applied first"
    assert sorted(kinds) == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ServiceAccount",
            "ConfigMap",
            "Job",
            "NetworkPolicy",
            "Deployment",
            "Service",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "HorizontalPodAutoscaler",
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


def service_forms(name: str) -> list[str]:
    """How clients in the cluster name a Service of namespace `ml`."""
    return [name, f"{name}.ml", f"{name}.ml.svc", f"{name}.ml.svc.cluster.local"]


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
        "MLFLOW_LOG_LEVEL": "info",
        # Explicit, in the forms clients send (no comparison of the ConfigMap with itself).
        "MLFLOW_ALLOWED_HOSTS": ",".join(
            [
                *service_forms("mlflow"),
                *service_forms("mlflow-internal"),
                "localhost",
                "localhost:*",
                "127.0.0.1",
                "127.0.0.1:*",
                "*.elb.eu-west-1.amazonaws.com",
            ]
        ),
        "MLFLOW_CORS_ALLOWED_ORIGINS": ",".join(
            [
                *(f"http://{h}" for h in service_forms("mlflow")),
                *(f"http://{h}" for h in service_forms("mlflow-internal")),
                "http://*.elb.eu-west-1.amazonaws.com",
            ]
        ),
        "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "25",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        # Every AWS client in the pod retries with backoff, a bounded number of times.
        "AWS_RETRY_MODE": "standard",
        "AWS_MAX_ATTEMPTS": "5",
        # The launcher's bounds: its whole database wait, and each connection's timeouts.
        "MLFLOW_DB_WAIT_SECONDS": "90",
        "MLFLOW_DB_CONNECT_TIMEOUT_SECONDS": "5",
        "MLFLOW_DB_NETWORK_TIMEOUT_SECONDS": "10",
        "MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS": "60",
        # /metrics, the workers' counters shared in the pod's scratch space
        "MLFLOW_EXPOSE_PROMETHEUS": "/tmp/prometheus",
        "MLFLOW_METRICS_PORT": "9464",
        # The guard's limits (mlflow_launcher/guard/limits.py), from the workload's settings.
        "MLFLOW_MAX_REQUEST_BODY_MIB": "8",
        "MLFLOW_MAX_PROXIED_ARTIFACT_MIB": "2048",
        "MLFLOW_CONCURRENT_ARTIFACT_TRANSFERS": "2",
        "MLFLOW_CONCURRENT_SIGN_IN_CHECKS": "2",
        "MLFLOW_SIGN_IN_FAILURES_PER_MINUTE": "10",
    }


def test_auth_adds_only_names_and_arns_to_the_config_map() -> None:
    secrets = AuthSecretIds(
        admin="arn:aws:secretsmanager:eu-west-1:123456789012:secret:admin-AbCdEf",
        flask_secret_key="arn:aws:secretsmanager:eu-west-1:123456789012:secret:flask-AbCdEf",
        kek_passphrase="arn:aws:secretsmanager:eu-west-1:123456789012:secret:kek-AbCdEf",
    )
    auth = AuthProps(default_permission="EDIT")
    plain = one(render(), "ConfigMap", "mlflow-config")["data"]
    with_auth = replace(PROPS, auth=auth, auth_secrets=secrets)
    data = one(render(with_auth), "ConfigMap", "mlflow-config")["data"]
    # Sign-in turned off in the same model renders as none.
    off = replace(with_auth, auth=auth.replace(enabled=False))
    assert one(render(off), "ConfigMap", "mlflow-config")["data"] == plain
    with pytest.raises(InvalidProps, match=r"auth_secrets is required with auth\.enabled"):
        replace(PROPS, auth=auth)
    assert {k: v for k, v in data.items() if k not in plain} == {
        "MLFLOW_AUTH_ADMIN_SECRET_ID": secrets.admin,
        "MLFLOW_AUTH_FLASK_SECRET_ID": secrets.flask_secret_key,
        "MLFLOW_AUTH_KEK_SECRET_ID": secrets.kek_passphrase,
        "MLFLOW_AUTH_DEFAULT_PERMISSION": "EDIT",
        "MLFLOW_AUTH_DB_NAME": "mlflow_auth",
        "MLFLOW_AUTH_CACHE_SECONDS": "30",
    }


def test_pods_invite_annotation_driven_scrapers() -> None:
    template = one(render(), "Deployment")["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9464",
        "prometheus.io/path": "/metrics",
    }


def test_extras_reach_the_config_map_as_json_only_when_set() -> None:
    """The server's additions travel in the ConfigMap (its digest rolls the pods), as JSON the
    launcher parses; without any, the ConfigMap is as it was."""
    plain = one(render(), "ConfigMap", "mlflow-config")["data"]
    assert not {k for k in plain if k.startswith("MLFLOW_SERVER_EXTRA")}
    props = with_workload(
        extra_args=["--x-frame-options", "DENY", "a b"],
        extra_env={"MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS": "20", "EMPTY": ""},
    )
    data = one(render(props), "ConfigMap", "mlflow-config")["data"]
    assert {k: v for k, v in data.items() if k not in plain} == {
        "MLFLOW_SERVER_EXTRA_ARGS": '["--x-frame-options","DENY","a b"]',
        "MLFLOW_SERVER_EXTRA_ENV": '{"MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS":"20","EMPTY":""}',
    }
    # Only the server gets them, from the launcher: no container's own env carries them.
    for container in pod_spec(render(props))["containers"]:
        names = {item["name"] for item in container.get("env", [])}
        assert "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS" not in names


def test_the_library_refuses_what_the_launcher_owns_naming_the_item() -> None:
    with pytest.raises(InvalidProps) as caught:
        WorkloadProps(
            extra_args=["--enable-workspaces", "--port=80"],
            extra_env={"UVICORN_HTTP": "h11", "OK_NAME": "postgres://u:pw@db/x"},
        )
    lines = str(caught.value).splitlines()
    assert any(line.strip().startswith("extra_args[1]: --port is the launcher's") for line in lines)
    # Workspaces are a setting of their own: the launcher checks the database against it.
    assert any(
        line.strip().startswith("extra_args[0]: --enable-workspaces is the launcher's")
        and "server.workspaces" in line
        for line in lines
    )
    assert any(line.strip().startswith("extra_env.UVICORN_HTTP: is not yours") for line in lines)
    assert any(line.strip().startswith("extra_env.OK_NAME: looks like a secret") for line in lines)
    assert "pw@db" not in str(caught.value)


def test_no_service_monitor_unless_asked() -> None:
    objects = render()
    assert not by_kind(objects, "ServiceMonitor")
    assert [o["metadata"]["name"] for o in by_kind(objects, "Service")] == [
        "mlflow",
        "mlflow-internal",
    ]


def test_the_service_monitor_scrapes_the_metrics_port_of_the_server_pods_only() -> None:
    monitor = ServiceMonitorProps(enabled=True, labels={"release": "kube-prometheus-stack"})
    objects = render(with_workload(service_monitor=monitor))
    found = one(objects, "ServiceMonitor", "mlflow")
    assert found["apiVersion"] == "monitoring.coreos.com/v1"
    assert found["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert set(found["metadata"]["labels"]) >= RECOMMENDED_LABELS
    spec = found["spec"]
    selected = [
        o
        for o in by_kind(objects, "Service")
        if spec["selector"]["matchLabels"].items() <= o["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in selected] == ["mlflow-metrics"]
    [service] = selected
    assert service["spec"]["clusterIP"] == "None"  # the pods are the targets
    pod_labels = pod_template(objects)["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()  # the server's pods
    [endpoint] = spec["endpoints"]
    [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert port["targetPort"] == 9464 == port["port"]
    assert (
        endpoint["path"] == pod_template(objects)["metadata"]["annotations"]["prometheus.io/path"]
    )
    assert endpoint["scheme"] == "http"
    # The annotations stay, for annotation-driven scrapers.
    assert pod_template(objects)["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def _seconds(duration: str) -> int:
    assert duration.endswith("s") and duration[:-1].isdigit(), duration
    return int(duration[:-1])


@pytest.mark.parametrize("interval", [15, 30, 120])
def test_the_scrape_timeout_outlasts_the_exporters_deadlines(interval: int) -> None:
    """Prometheus must not give up on an answer the exporter is still allowed to give (its
    deadline for the request, then for the answer), and wants the timeout within the interval."""
    from mlflow_on_eks.k8s_charts.launcher_contract import launcher

    monitor = ServiceMonitorProps(enabled=True, interval_seconds=interval)
    [endpoint] = one(render(with_workload(service_monitor=monitor)), "ServiceMonitor")["spec"][
        "endpoints"
    ]
    timeout = _seconds(endpoint["scrapeTimeout"])
    assert timeout >= launcher.METRICS_REQUEST_SECONDS + launcher.METRICS_RESPONSE_SECONDS
    assert timeout <= _seconds(endpoint["interval"]) == interval


def test_the_service_monitors_scrapers_still_pass_the_network_policy() -> None:
    """The ServiceMonitor changes who is told to scrape, not who may: the metrics port still
    admits exactly server.metrics_scrapers."""
    scrapers = MetricsScrapersProps(namespace_labels={"kubernetes.io/metadata.name": "monitoring"})
    monitor = ServiceMonitorProps(enabled=True)
    with_monitor = render(with_workload(metrics_scrapers=scrapers, service_monitor=monitor))
    without = render(with_workload(metrics_scrapers=scrapers))
    assert one(with_monitor, "NetworkPolicy", "mlflow") == one(without, "NetworkPolicy", "mlflow")


def _matches(patterns: list[str], value: str) -> bool:
    """MLflow's own rule (mlflow/server/security_utils.py): fnmatch with `*`, else equality."""
    return any(fnmatch.fnmatch(value, p) if "*" in p else value == p for p in patterns)


def test_allowed_hosts_cover_service_names_and_extras() -> None:
    props = with_workload(
        replace(PROPS, exposure=ExposureProps(external=EXTERNAL)),
        allowed_hosts=("mlflow.example.com",),
    )
    hosts = one(render(props), "ConfigMap")["data"]["MLFLOW_ALLOWED_HOSTS"].split(",")
    for name in ("mlflow", "mlflow-internal", "mlflow-external"):
        for host in (name, f"{name}.ml", f"{name}.ml.svc", f"{name}.ml.svc.cluster.local"):
            assert _matches(hosts, host), host
    for host in ("localhost", "localhost:5000", "127.0.0.1:5000", "mlflow.example.com"):
        assert _matches(hosts, host), host
    assert len(hosts) == len(set(hosts))


def test_with_the_names_read_back_exactly_those_are_allowed() -> None:
    names = {"internal": NLB_NAME, "external": EXTERNAL_NLB_NAME}
    props = replace(PROPS, exposure=ExposureProps(external=EXTERNAL), load_balancer_dns_names=names)
    objects = render(props)
    data = one(objects, "ConfigMap")["data"]
    hosts = data["MLFLOW_ALLOWED_HOSTS"].split(",")
    origins = data["MLFLOW_CORS_ALLOWED_ORIGINS"].split(",")
    assert _matches(hosts, NLB_NAME) and _matches(hosts, EXTERNAL_NLB_NAME)
    # Another load balancer of the same region (any account's) is neither a host nor an origin.
    assert not _matches(hosts, OTHER_NLB_NAME)
    assert not [h for h in hosts if "elb" in h and h not in names.values()], hosts
    assert _matches(origins, f"http://{NLB_NAME}")  # port 80
    assert _matches(origins, f"https://{EXTERNAL_NLB_NAME}")  # 443, TLS only
    for origin in (
        f"https://{NLB_NAME}",
        f"http://{EXTERNAL_NLB_NAME}",
        f"http://{OTHER_NLB_NAME}",
        f"https://{OTHER_NLB_NAME}",
    ):
        assert not _matches(origins, origin), origin
    # The pods read the ConfigMap at start only: the names on the pod template roll them.
    annotations = pod_template(objects)["metadata"]["annotations"]
    assert annotations["mlflow-on-eks/load-balancers"] == (
        f"external={EXTERNAL_NLB_NAME},internal={NLB_NAME}"
    )
    assert "mlflow-on-eks/load-balancers" not in pod_template(render())["metadata"].get(
        "annotations", {}
    )


def test_an_external_load_balancer_left_off_makes_no_service() -> None:
    """The config section and the prop are one model: `enabled: false` is no load balancer,
    wherever the model is handed over."""
    off = ExternalLoadBalancerProps()
    chart = MlflowChart(
        cdk8s.Testing.app(), "test", props=replace(PROPS, exposure=ExposureProps(external=off))
    )
    services = [o["metadata"]["name"] for o in chart.to_json() if o["kind"] == "Service"]
    assert "mlflow-external" not in services
    assert "external" not in replace(PROPS, exposure=ExposureProps(external=off)).service_names


def test_load_balancer_objects_are_the_namespace_and_the_load_balancer_services() -> None:
    chart = MlflowChart(
        cdk8s.Testing.app(), "test", props=replace(PROPS, exposure=ExposureProps(external=EXTERNAL))
    )
    objects = chart.load_balancer_objects()
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Namespace", "ml"),
        ("Service", "mlflow-internal"),
        ("Service", "mlflow-external"),
    ]
    # As the whole chart has them (labels, namespace), so either apply leaves the same objects.
    assert all(o in chart.to_json() for o in objects)
    alone = MlflowChart(
        cdk8s.Testing.app(), "test", props=replace(PROPS, exposure=ExposureProps(internal=False))
    )
    assert [o["kind"] for o in alone.load_balancer_objects()] == ["Namespace"]


@pytest.mark.parametrize(
    ("region", "suffix", "name"),
    [("eu-west-1", "amazonaws.com", NLB_NAME), ("cn-north-1", "amazonaws.com.cn", NLB_NAME_CN)],
)
def test_without_names_every_nlb_name_of_the_region_is_allowed(
    region: str, suffix: str, name: str
) -> None:
    """A chart applied on its own (no names read back) cannot know its load balancers' names."""
    props = replace(PROPS, region=region, url_suffix=suffix)
    hosts = one(render(props), "ConfigMap")["data"]["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert _matches(hosts, name)
    # Not every name: another region's load balancers, an ALB form and a foreign host fail.
    assert not _matches(hosts, NLB_NAME.replace("eu-west-1", "us-east-1"))
    assert not _matches(hosts, ALB_NAME)
    assert not _matches(hosts, "attacker.example.com")


def test_no_load_balancer_names_without_load_balancers() -> None:
    hosts = one(render(replace(PROPS, exposure=ExposureProps(internal=False))), "ConfigMap")[
        "data"
    ]["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert not _matches(hosts, NLB_NAME)


def test_browser_origins_follow_the_served_names() -> None:
    props = with_workload(
        replace(PROPS, exposure=ExposureProps(external=EXTERNAL)),
        allowed_hosts=("mlflow.example.com",),
    )
    origins = one(render(props), "ConfigMap")["data"]["MLFLOW_CORS_ALLOWED_ORIGINS"].split(",")
    for origin in (
        "http://mlflow.ml.svc.cluster.local",
        "http://mlflow-internal.ml",
        f"http://{NLB_NAME}",  # the internal NLB listens on port 80
        f"https://{NLB_NAME}",  # the external one on 443 with TLS
        "https://mlflow.example.com",
        "http://mlflow.example.com",
    ):
        assert _matches(origins, origin), origin
    for origin in ("https://attacker.example.com", f"http://{ALB_NAME}", "null"):
        assert not _matches(origins, origin), origin


def test_internal_only_origins_are_plain_http() -> None:
    origins = one(render(), "ConfigMap")["data"]["MLFLOW_CORS_ALLOWED_ORIGINS"].split(",")
    assert _matches(origins, f"http://{NLB_NAME}")
    assert not _matches(origins, f"https://{NLB_NAME}")


def test_the_job_migrates_and_the_pods_wait_for_it_then_serve_from_the_same_image() -> None:
    objects = render()
    job = one(objects, "Job")
    assert job["metadata"]["name"] == "mlflow-migrate-0123456789"
    job_spec = job["spec"]["template"]["spec"]
    [migrate] = job_spec["containers"]
    spec = pod_spec(objects)
    [init] = spec["initContainers"]
    server, exporter = spec["containers"]
    assert migrate["args"] == ["migrate"]
    assert (init["name"], init["args"]) == ("wait-schema", ["wait-schema"])
    assert env_of(init) == {
        "MLFLOW_MIGRATION_LOGS_COMMAND": "kubectl -n ml logs job/mlflow-migrate-0123456789"
    }
    assert (server["name"], server["args"]) == ("server", ["serve"])
    assert (exporter["name"], exporter["args"]) == ("metrics", ["metrics"])
    assert exporter["ports"] == [{"containerPort": 9464}]
    for container in (migrate, init, server, exporter):
        assert "command" not in container, "the image's entrypoint runs"
        assert container["image"] == PROPS.image
        assert container["envFrom"] == [{"configMapRef": {"name": "mlflow-config"}}]
        assert not [e for e in container.get("env", []) if "PASSWORD" in e["name"]]
    # Each its own identity: only the Job's may read the master login.
    assert spec["serviceAccountName"] == "mlflow"
    assert job_spec["serviceAccountName"] == "mlflow-migrate"
    account = one(objects, "ServiceAccount", "mlflow-migrate")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": PROPS.migrate_role_arn
    }
    assert env_of(migrate) == {"MLFLOW_DB_ADMIN_SECRET_ID": PROPS.db_admin_secret_id}
    assert "MLFLOW_DB_ADMIN_SECRET_ID" not in one(objects, "ConfigMap")["data"]
    # Retried, bounded, kept until the next revision replaces it (its log, a re-run after a
    # password rotation); never selected by a Service.
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == (
        "mlflow-migrate"
    )


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


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
    # 2 GiB x 2 transfers + 1 GiB (defaults)
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "5120Mi"}} in spec["volumes"]


def test_scratch_space_is_sized_from_the_settings_and_requested() -> None:
    props = with_workload(max_proxied_artifact_gib=8, concurrent_artifact_transfers=3)
    spec = pod_spec(render(props))
    assert {"name": "tmp", "emptyDir": {"sizeLimit": f"{25 * 1024}Mi"}} in spec["volumes"]
    server = spec["containers"][0]
    # The emptyDir counts against the container's ephemeral storage: scratch + 1 GiB of logs.
    for kind in ("requests", "limits"):
        assert server["resources"][kind]["ephemeral-storage"] == "26Gi"


def test_probes_use_health() -> None:
    server = pod_spec(render())["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] == "/health", probe
        assert server[probe]["httpGet"]["port"] == 5000, probe
    assert server["ports"] == [{"containerPort": 5000}]
    # Kubernetes' 1 s default fails a probe on a worker busy with a large transfer.
    for probe in ("readinessProbe", "livenessProbe"):
        assert server[probe]["timeoutSeconds"] >= 5, probe


def test_drain_outlasts_the_load_balancers_deregistration() -> None:
    objects = render(
        with_workload(replace(PROPS, exposure=ExposureProps(external=EXTERNAL)), drain_seconds=45)
    )
    spec = pod_spec(objects)
    server = spec["containers"][0]
    assert server["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "45"]}}}
    assert spec["terminationGracePeriodSeconds"] == 45 + 30
    # uvicorn ends requests still running before the kubelet's SIGKILL would.
    shutdown = one(objects, "ConfigMap")["data"]["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"]
    assert int(shutdown) < spec["terminationGracePeriodSeconds"] - 45
    for name in ("mlflow-internal", "mlflow-external"):
        annotations = one(objects, "Service", name)["metadata"]["annotations"]
        attributes = annotations[
            "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
        ]
        assert dict(a.split("=") for a in attributes.split(",")) == {
            "deregistration_delay.timeout_seconds": "45",
            "deregistration_delay.connection_termination.enabled": "true",
        }


@pytest.mark.parametrize("architecture", ["amd64", "arm64"])
def test_pods_land_on_nodes_of_the_images_architecture(architecture: str) -> None:
    spec = pod_spec(render(with_workload(architecture=architecture)))
    assert spec["nodeSelector"] == {"kubernetes.io/arch": architecture}
    assert "tolerations" not in spec
    pinned = pod_spec(render(replace(PROPS, node_pool="mlflow")))
    assert pinned["nodeSelector"] == {
        "kubernetes.io/arch": "amd64",
        "karpenter.sh/nodepool": "mlflow",
    }


def test_pods_tolerate_their_pools_taint_and_require_its_labels() -> None:
    labels = {DATABASE_CLIENT_LABEL: "sg-0123456789abcdef0"}
    props = replace(PROPS, node_pool="mlflow", node_labels=labels, gc=GcProps(enabled=True))
    objects = render(props)
    gc = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for spec in (pod_spec(objects), gc):
        assert spec["nodeSelector"] == {
            "kubernetes.io/arch": "amd64",
            "karpenter.sh/nodepool": "mlflow",
            **labels,
        }
        assert spec["tolerations"] == [
            {"key": DEDICATED_TAINT, "operator": "Equal", "value": "mlflow", "effect": "NoSchedule"}
        ]


def test_resources_and_rollout() -> None:
    objects = render(with_workload(resources=ResourceProps(cpu="1.5", memory_mib=2048)))
    server = pod_spec(objects)["containers"][0]
    assert server["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2048Mi", "ephemeral-storage": "6Gi"},
        "limits": {"memory": "2048Mi", "ephemeral-storage": "6Gi"},
    }
    deployment = one(objects, "Deployment")
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
    services = by_kind(render(replace(PROPS, exposure=ExposureProps(internal=False))), "Service")
    assert [s["metadata"]["name"] for s in services] == ["mlflow"]


def test_external_service_is_tls_and_source_restricted() -> None:
    objects = render(
        replace(
            PROPS,
            exposure=ExposureProps(external=EXTERNAL),
            load_balancer_class=LB_CONTROLLER_LOAD_BALANCER_CLASS,
        )
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


def _tls_listener(certificate_arn: str, load_balancer_class: str) -> dict[str, str]:
    """What a TLS listener on 443 with the default policy is, as each controller documents its
    annotations: EKS Auto Mode (user guide, auto-configure-nlb: ssl-cert, ssl-ports) and the
    AWS Load Balancer Controller (its guide's "TLS" section: also the policy and
    backend-protocol, `tcp` being plain TCP to the pods)."""
    listener = {
        f"{LB}ssl-cert": certificate_arn,
        f"{LB}ssl-ports": "443",
        f"{LB}ssl-negotiation-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
    }
    if load_balancer_class == LB_CONTROLLER_LOAD_BALANCER_CLASS:
        listener[f"{LB}backend-protocol"] = "tcp"
    return listener


TARGET_GROUP = {
    f"{LB}nlb-target-type": "ip",
    f"{LB}target-group-attributes": "deregistration_delay.timeout_seconds=30,"
    "deregistration_delay.connection_termination.enabled=true",
}


@pytest.mark.parametrize(
    "load_balancer_class", [AUTO_MODE_LOAD_BALANCER_CLASS, LB_CONTROLLER_LOAD_BALANCER_CLASS]
)
def test_tls_services_per_controller(load_balancer_class: str) -> None:
    """With a certificate, each load balancer Service asks its controller for TLS on 443 only
    (no plain listener beside it), forwarding to the pods' plain HTTP port; the annotations
    exactly those the class's controller documents."""
    exposure = ExposureProps(internal=INTERNAL_TLS, external=EXTERNAL)
    props = replace(PROPS, exposure=exposure, load_balancer_class=load_balancer_class)
    objects = render(props)
    for name, scheme, section in (
        ("mlflow-internal", "internal", INTERNAL_TLS),
        ("mlflow-external", "internet-facing", EXTERNAL),
    ):
        service = one(objects, "Service", name)
        assert service["spec"]["loadBalancerClass"] == load_balancer_class
        assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": 5000}]
        assert service["metadata"]["annotations"] == {
            f"{LB}scheme": scheme,
            **TARGET_GROUP,
            **_tls_listener(section.certificate_arn, load_balancer_class),
        }, name


def test_a_plain_internal_load_balancer_has_no_tls_annotations() -> None:
    service = one(render(), "Service", "mlflow-internal")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 5000}]
    assert service["metadata"]["annotations"] == {f"{LB}scheme": "internal", **TARGET_GROUP}


def test_the_chosen_policy_reaches_the_listener() -> None:
    internal = INTERNAL_TLS.replace(ssl_policy="ELBSecurityPolicy-TLS13-1-3-2021-06")
    service = one(
        render(replace(PROPS, exposure=ExposureProps(internal=internal))),
        "Service",
        "mlflow-internal",
    )
    annotations = service["metadata"]["annotations"]
    assert annotations[f"{LB}ssl-negotiation-policy"] == "ELBSecurityPolicy-TLS13-1-3-2021-06"


def test_with_tls_the_certificates_name_is_allowed_and_https_origins() -> None:
    """Clients use the certificate's name: MLflow must accept it as Host, and a browser page
    served from it (Origin `https://<name>`, no port: RFC 6454 leaves the default one out) may
    write. The load balancer's own name serves HTTPS only now: no `http://` origin for it."""
    props = replace(
        PROPS,
        exposure=ExposureProps(internal=INTERNAL_TLS),
        load_balancer_dns_names={"internal": NLB_NAME},
    )
    data = one(render(props), "ConfigMap")["data"]
    hosts = data["MLFLOW_ALLOWED_HOSTS"].split(",")
    origins = data["MLFLOW_CORS_ALLOWED_ORIGINS"].split(",")
    assert _matches(hosts, HOSTNAME) and _matches(hosts, NLB_NAME)
    assert _matches(origins, f"https://{HOSTNAME}") and _matches(origins, f"https://{NLB_NAME}")
    for origin in (
        f"http://{HOSTNAME}",
        f"https://{HOSTNAME}:443",
        f"http://{NLB_NAME}",
        "https://mlflow-internal.ml.svc.cluster.local",
    ):
        assert not _matches(origins, origin), origin
    # Without TLS, the name is not configured, and nothing of it is allowed.
    plain = one(render(), "ConfigMap")["data"]
    assert HOSTNAME not in plain["MLFLOW_ALLOWED_HOSTS"] + plain["MLFLOW_CORS_ALLOWED_ORIGINS"]


def test_no_external_service_by_default() -> None:
    assert not [
        s for s in by_kind(render(), "Service") if s["metadata"]["name"].endswith("external")
    ]


def test_network_policy_limits_egress_to_dns_db_and_https() -> None:
    policy = one(render(), "NetworkPolicy", "mlflow")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    egress = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 443)}


def test_metrics_port_admits_pods_of_the_cluster_only_by_default() -> None:
    """The server port stays open to every address (IP-mode load balancers, in-cluster
    clients); the metrics port only to pods: an empty namespaceSelector is every namespace of
    the cluster, and a selector never matches a VPC address or a load balancer. It used to be
    one rule admitting both ports from anywhere."""
    policy = one(render(), "NetworkPolicy", "mlflow")["spec"]
    assert policy["ingress"] == [
        {"ports": [{"port": 5000, "protocol": "TCP"}]},
        {"ports": [{"port": 9464, "protocol": "TCP"}], "from": [{"namespaceSelector": {}}]},
    ]


def test_metrics_port_admits_the_named_scrapers() -> None:
    scrapers = MetricsScrapersProps(
        namespace_labels={"kubernetes.io/metadata.name": "monitoring"},
        pod_labels={"app.kubernetes.io/name": "prometheus"},
    )
    policy = one(render(with_workload(metrics_scrapers=scrapers)), "NetworkPolicy", "mlflow")[
        "spec"
    ]
    server, metrics = policy["ingress"]
    assert server == {"ports": [{"port": 5000, "protocol": "TCP"}]}
    # One peer with both selectors: those pods in those namespaces (two peers would admit
    # either).
    assert metrics["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    # Pod labels alone: those pods in any namespace, not only the server's own.
    alone = MetricsScrapersProps(pod_labels={"app": "prometheus"})
    policy = one(render(with_workload(metrics_scrapers=alone)), "NetworkPolicy", "mlflow")["spec"]
    assert policy["ingress"][1]["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "prometheus"}}}
    ]


def test_no_metrics_problem_can_take_the_pod_out_of_service() -> None:
    """A pod is Ready only when every container is: a probe on the exporter removed the
    server from the Services' endpoints when the exporter stalled."""
    server, exporter = pod_spec(render())["containers"]
    assert exporter["name"] == "metrics"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert probe not in exporter, probe
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(server)


@pytest.mark.parametrize("replicas", [1, 2])
def test_disruption_budget_never_blocks_a_drain(replicas: int) -> None:
    # Always rendered: kubectl's prune would leave one behind if it came and went.
    budget = one(render(with_workload(replicas=replicas)), "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1
    assert "minAvailable" not in budget


@pytest.mark.parametrize(("max_replicas", "bounds"), [(6, (3, 6)), (None, (3, 3))])
def test_autoscaler_always_owns_replicas(max_replicas: int | None, bounds: tuple) -> None:
    # Never `replicas` in the Deployment: kubectl apply would reset it to 1 on the switch to
    # autoscaling; min = max pins the count when autoscaling is off.
    objects = render(with_workload(replicas=3, max_replicas=max_replicas))
    hpa = one(objects, "HorizontalPodAutoscaler", "mlflow")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == bounds
    assert hpa["spec"]["scaleTargetRef"]["name"] == "mlflow"
    assert "replicas" not in one(objects, "Deployment")["spec"]


def test_the_migration_job_reaches_only_dns_the_database_and_https() -> None:
    policy = one(render(), "NetworkPolicy", "mlflow-migrate")["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "mlflow-migrate",
        "app.kubernetes.io/instance": "mlflow",
    }
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy
    ports = sorted((p["protocol"], p["port"]) for r in policy["egress"] for p in r["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 5432), ("UDP", 53)]
    assert not [r for r in policy["egress"] if r.get("to")]
