"""The MLflow tracking server's Kubernetes workloads, as a cdk8s chart.

The chart knows nothing of CDK: every AWS name (image URI, role ARN, DB endpoint, secret ARN,
bucket) arrives as a plain string prop, which may be a CDK token resolved at deploy time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cdk8s
import cdk8s_plus_27 as kplus
from cdk8s_plus_27 import k8s
from constructs import Construct

from . import service_monitor
from .auth import AuthProps, AuthSecretIds, auth_environment, sign_in_sso
from .contract import (
    CONTAINER_PORT,
    METRICS_PORT,
    RDS_CA_BUNDLE_PATH,
    SERVICE_PORT,
    TLS_SERVICE_PORT,
    extras_environment,
    guard_environment,
    launcher_environment,
    migration_environment,
    progress_deadline_seconds,
    schema_wait_environment,
    sso_environment,
)
from .exposure import (
    AUTO_MODE_LOAD_BALANCER_CLASS,
    LB_ANNOTATION,
    ExposureProps,
    tls_annotations,
    ways_in,
)
from .gc_job import GcProps, add_gc_job
from .hardening import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    TMP_PATH,
    Placement,
    container_resources,
    harden,
)
from .job_runner import JobsProps, add_job_runner, jobs_environment
from .launcher_contract import launcher
from .migration_job import add_migration_job
from .policy import dns, egress, ingress, pods_in_namespaces, tcp
from .probes import answering_probe, startup_probe
from .rules import InvalidProps
from .sso import SsoProps
from .sso_chart import SsoNames, add_sso
from .workload import WorkloadProps

LOAD_BALANCERS_ANNOTATION = "mlflow-on-eks/load-balancers"
"""On the pod template: the load balancers' DNS names the server allows."""

METRICS_DIR = f"{TMP_PATH}/prometheus"
"""Where the uvicorn workers' Prometheus counters meet (multiprocess mode), on scratch space."""
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(METRICS_PORT),
    "prometheus.io/path": launcher.METRICS_PATH,
}
"""The common convention for annotation-driven scrapers (Prometheus' kubernetes_sd examples)."""

SHUTDOWN_SECONDS = 30
"""What a pod gets after its drain delay to finish in-flight requests before SIGKILL."""


@dataclass(frozen=True)
class MlflowChartProps:
    """Everything the chart needs; strings may be CDK tokens."""

    image: str
    """Server image URI (the ECR asset)."""
    role_arn: str
    """IAM role the pods assume through IRSA (annotated on the ServiceAccount)."""
    db_engine: str
    """`mysql` or `postgres`."""
    db_host: str
    db_port: int
    """Known at synth time (the database construct fixes it), as NetworkPolicy needs a number."""
    db_secret_id: str
    """ARN of the Secrets Manager secret holding the server's login (`username`, `password`):
    the server, gc and the init container connect with it."""
    artifacts_destination: str
    """Where the server proxies artifacts, e.g. `s3://bucket/artifacts`."""
    region: str
    workload: WorkloadProps = field(default_factory=WorkloadProps)
    """How the server runs (replicas, workers, resources, hosts, ...). Default: the defaults."""
    db_name: str = "mlflow"
    instance: str = "mlflow"
    """app.kubernetes.io/instance and the base of every object name. Default: `mlflow`."""
    service_account_name: str = "mlflow"
    """The ServiceAccount the IAM role trusts (IRSA). Default: `mlflow`."""
    mlflow_version: str = "3.17"
    """app.kubernetes.io/version label."""
    url_suffix: str = "amazonaws.com"
    """The partition's domain (`amazonaws.com.cn` in China); part of load balancer names."""
    node_pool: str | None = None
    """With a value, pods run only on nodes of this Karpenter/Auto Mode NodePool (and tolerate
    its NodePoolChart taint)."""
    node_labels: dict[str, str] = field(default_factory=dict)
    """The pods (server, gc, deploy check) run only on nodes with these labels as well:
    AutoModeCluster.node_labels names the database client group its pool's nodes carry, so a
    pod that opens the database never starts where the database does not admit it.
    Default: none."""
    exposure: ExposureProps = field(default_factory=ExposureProps)
    """The load balancers: an internal NLB reachable from the VPC (default: on) and an
    internet-facing one, when `external.enabled` (default: none)."""
    load_balancer_class: str = AUTO_MODE_LOAD_BALANCER_CLASS
    auth: AuthProps | None = None
    """MLflow's basic-auth app, when `auth.enabled` (then with `auth_secrets`). Default: none
    (anyone who reaches the server may do anything; MlflowTrackingServer makes its callers
    confirm that for each way in)."""
    auth_secrets: AuthSecretIds | None = None
    """The ARNs of the sign-in secrets (MlflowAuth's), needed with `auth.enabled`."""
    gc: GcProps | None = None
    """A CronJob that permanently removes deleted runs and experiments, when `gc.enabled`.
    Default: none."""
    jobs: JobsProps | None = None
    """MLflow's GenAI jobs, when `jobs.enabled`: the server pods record them and one job-runner
    Deployment runs them (k8s_charts/job_runner.py). Default: none (job execution off)."""
    jobs_role_arn: str | None = None
    """IAM role of the job runner (its own ServiceAccount, `<instance>-jobs`). Default: none
    (the runner runs as the server's ServiceAccount)."""
    db_read_host: str | None = None
    """A read replica of the database (same port, login and name): MLflow's reads go there,
    its writes and the sign-in checks to the primary. Default: none."""
    db_instance_id: str | None = None
    """The RDS instance identifier: the migration Job makes sure of a snapshot of it before it
    changes a schema that holds data (its role must be allowed to). Default: none (no
    snapshot, a warning in the log)."""
    db_admin_secret_id: str | None = None
    """ARN of the instance's master login, for the migration Job only: with it the Job makes
    the server's login (`db_secret_id`) and gives it MLflow's databases, then migrates as that
    login. Default: none (the Job migrates with the server's login, which must then be allowed
    to create the auth database)."""
    migrate_role_arn: str | None = None
    """IAM role of the migration Job (its own ServiceAccount, `<instance>-migrate`): the master
    login and snapshots. Default: none (the Job runs as the server's ServiceAccount)."""
    gc_role_arn: str | None = None
    """IAM role of the gc CronJob (its own ServiceAccount, `<instance>-gc`). Default: none (as
    the server's ServiceAccount)."""
    load_balancer_dns_names: Mapping[str, str] | None = None
    """Service kind (`internal`, `external`) -> the DNS name its load balancer got, as a
    deploy-time value (MlflowTrackingServer reads them back after applying
    `load_balancer_objects()`): the server allows exactly these as Host and browser origin.
    Default: none, which allows every NLB name of the region, any account's (a chart applied
    on its own, whose load balancers' names are not known when the ConfigMap is written)."""
    sso_signer_arn: str | None = None
    """The sign-in ALB's ARN, read back once its Ingress made it (a deploy-time value), with
    `auth.sso.enabled`: the server accepts the identity header signed by this ALB only.
    Default: none (no header accepted)."""
    sso_trusted_cidrs: str | None = None
    """The sign-in ALB's subnets' CIDR blocks, comma-separated (a deploy-time value): the only
    sources the server accepts the identity header from. Default: none (any source)."""
    sso_sync_role_arn: str | None = None
    """IAM role of the sign-in load balancer's secret sync (its own ServiceAccount,
    `<instance>-sso-sync`), with `auth.sso.enabled`: it may read the IdP client's secret.
    Default: none (the sync then has no AWS identity of its own and fails saying so)."""
    migration_revision: str = "0"
    """Part of the migration Job's name; a new value (a new image or database) runs a new Job.
    Default: "0"."""
    extra_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sign_in and self.auth_secrets is None:
            raise InvalidProps(
                "MlflowChartProps: auth_secrets is required with auth.enabled (the ARNs of "
                "MlflowAuth's secrets, which the launcher reads at start)"
            )

    @property
    def sign_in(self) -> bool:
        """Whether MLflow's basic-auth app runs (`auth` given and enabled)."""
        return self.auth is not None and self.auth.enabled

    @property
    def placement(self) -> Placement:
        """Where every pod of the chart runs (hardening.harden)."""
        return Placement(self.workload.architecture, self.node_pool, self.node_labels)

    @property
    def sso(self) -> SsoProps | None:
        """The sign-in load balancer's settings, when it is on (it needs sign-in)."""
        return sign_in_sso(self.auth)

    @property
    def service_names(self) -> dict[str, str]:
        """Service kind → metadata.name, for the outputs and the allowed Host list."""
        return {
            way: self.instance if way == "cluster" else f"{self.instance}-{way}"
            for way in ways_in(self.exposure)
        }

    @property
    def config_map_name(self) -> str:
        return f"{self.instance}-config"

    @property
    def migration_job_name(self) -> str:
        return f"{self.instance}-migrate-{self.migration_revision}"

    @property
    def namespace(self) -> str:
        return self.workload.namespace

    def load_balancer_host(self, kind: str) -> str:
        """The DNS name the load balancer of Service `kind` answers to: the one it got
        (`load_balancer_dns_names`), else every NLB name of the region."""
        names = self.load_balancer_dns_names or {}
        # NLB names are `<name>-<id>.elb.<region>.<url suffix>` (AWS docs for Network Load
        # Balancers; China regions end in amazonaws.com.cn).
        return names.get(kind) or f"*.elb.{self.region}.{self.url_suffix}"


class MlflowChart(cdk8s.Chart):
    """Namespace, ServiceAccount (IRSA), ConfigMap, Deployment, Services, PDB, NetworkPolicy, HPA.

    Public attributes: `namespace_object`, `service_account`, `config_map`, `deployment`,
    `services` (by kind: cluster, internal, external), `gc` (the CronJob, or None),
    `job_runner` (the job runner's Deployment, with `jobs.enabled`, else None),
    `metrics_service` and `service_monitor` (with server.service_monitor, else None).
    """

    def __init__(self, scope: Construct, id: str, *, props: MlflowChartProps) -> None:
        super().__init__(scope, id, namespace=props.namespace, labels=_labels(props))
        self.props = props

        self.namespace_object = kplus.Namespace(
            self,
            "Namespace",
            metadata=cdk8s.ApiObjectMetadata(
                name=props.namespace,
                # Enforce the restricted Pod Security Standard: the pods below comply.
                labels={"pod-security.kubernetes.io/enforce": "restricted"},
            ),
        )
        # Noise cdk8s emits, dropped from what is applied (and reviewed): a Namespace is
        # cluster-scoped (the API server ignores metadata.namespace on it), and its empty spec
        # is the default.
        cdk8s.ApiObject.of(self.namespace_object).add_json_patch(
            cdk8s.JsonPatch.remove("/metadata/namespace"), cdk8s.JsonPatch.remove("/spec")
        )
        self.service_account = kplus.ServiceAccount(
            self,
            "ServiceAccount",
            metadata=cdk8s.ApiObjectMetadata(
                name=props.service_account_name,
                annotations={"eks.amazonaws.com/role-arn": props.role_arn},
            ),
            # IRSA projects its own web-identity token; MLflow never calls the Kubernetes API.
            automount_token=False,
        )
        self.migrate_service_account = self._workload_account(
            "MigrateServiceAccount", "migrate", props.migrate_role_arn
        )
        self.gc_service_account = self._workload_account(
            "GcServiceAccount", "gc", props.gc_role_arn
        )
        self.jobs_service_account = self._workload_account(
            "JobsServiceAccount", "jobs", props.jobs_role_arn
        )
        self.config_map = kplus.ConfigMap(
            self,
            "Config",
            metadata=cdk8s.ApiObjectMetadata(name=props.config_map_name),
            data=launcher_environment(
                engine=props.db_engine,
                host=props.db_host,
                port=props.db_port,
                name=props.db_name,
                secret_id=props.db_secret_id,
                ca_bundle=RDS_CA_BUNDLE_PATH,
                artifacts_destination=props.artifacts_destination,
                workers=props.workload.workers,
                log_level=props.workload.log_level,
                allowed_hosts=_allowed_hosts(props),
                cors_allowed_origins=_allowed_origins(props),
                # Finish before the grace period ends, with a margin for the process exit.
                graceful_shutdown_seconds=SHUTDOWN_SECONDS - 5,
                region=props.region,
                metrics_dir=METRICS_DIR,
                read_host=props.db_read_host,
                workspaces=props.workload.workspaces,
            )
            | guard_environment(props.workload)
            | extras_environment(props.workload)
            | (
                auth_environment(
                    props.auth, props.auth_secrets, workspaces=props.workload.workspaces
                )
                if props.auth and props.auth.enabled and props.auth_secrets
                else {}
            )
            | _sso_environment(props)
            | jobs_environment(props.jobs, props.artifacts_destination),
        )
        self.migration = add_migration_job(
            self,
            name=props.migration_job_name,
            image=props.image,
            instance=props.instance,
            config_map=self.config_map,
            service_account=self.migrate_service_account,
            environment=migration_environment(
                admin_secret_id=props.db_admin_secret_id, instance_id=props.db_instance_id
            ),
            db_port=props.db_port,
            placement=props.placement,
        )
        self.deployment = self._deployment()
        if props.load_balancer_dns_names:
            # The ConfigMap's digest (MlflowTrackingServer) sees these names only as deploy-time
            # placeholders; here, as the values they take, a new name rolls the pods, which
            # read the ConfigMap at start only.
            self.deployment.pod_metadata.add_annotation(
                LOAD_BALANCERS_ANNOTATION,
                ",".join(f"{k}={v}" for k, v in sorted(props.load_balancer_dns_names.items())),
            )
        self.gc = (
            add_gc_job(
                self,
                gc=props.gc,
                image=props.image,
                instance=props.instance,
                namespace=props.namespace,
                config_map=self.config_map,
                service_account=self.gc_service_account,
                server_labels=selector_labels(props),
                db_port=props.db_port,
                placement=props.placement,
            )
            if props.gc and props.gc.enabled
            else None
        )
        self.job_runner = (
            add_job_runner(
                self,
                jobs=props.jobs,
                image=props.image,
                instance=props.instance,
                config_map=self.config_map,
                service_account=self.jobs_service_account,
                migration_logs_command=self._migration_logs_command(),
                db_port=props.db_port,
                placement=props.placement,
            )
            if props.jobs and props.jobs.enabled
            else None
        )
        self.services = self._services()
        self._service_monitor()
        self.sso_names = SsoNames(props.instance)
        self.sso_objects = (
            add_sso(
                self,
                sso=props.sso,
                names=self.sso_names,
                namespace=props.namespace,
                load_balancer_class=props.load_balancer_class,
                backend_service=props.service_names["cluster"],
                backend_port=SERVICE_PORT,
                # The drain's delay only: connection_termination is an NLB-only attribute
                # (ELB API reference, TargetGroupAttribute), which an ALB target group refuses.
                target_group_attributes=(
                    f"deregistration_delay.timeout_seconds={props.workload.drain_seconds}"
                ),
                image=props.image,
                sync_role_arn=props.sso_sync_role_arn,
                revision=props.migration_revision,
                placement=props.placement,
            )
            if props.sso
            else []
        )
        self._disruption_budget()
        self._network_policy()
        # The autoscaler always exists and always owns the replica count, with min = max when
        # autoscaling is off. So turning autoscaling on never drops `replicas` from the
        # Deployment (kubectl apply would reset it to 1), and turning it off leaves no orphan
        # (kubectl's default prune list skips HPAs). Bounds hold even without metrics.
        self.autoscaler = kplus.HorizontalPodAutoscaler(
            self,
            "Autoscaler",
            metadata=cdk8s.ApiObjectMetadata(name=props.instance),
            target=self.deployment,
            min_replicas=props.workload.replicas,
            max_replicas=props.workload.max_replicas or props.workload.replicas,
            metrics=[kplus.Metric.resource_cpu(kplus.MetricTarget.average_utilization(70))],
        )

    def _deployment(self) -> kplus.Deployment:
        props = self.props
        workload = props.workload
        tmp = kplus.Volume.from_empty_dir(
            self, "TmpVolume", "tmp", size_limit=cdk8s.Size.gibibytes(workload.scratch_gib)
        )
        # What both containers share: the image (whose entrypoint is the launcher), settings
        # from the ConfigMap, a locked-down context and the only writable path.
        common: dict[str, Any] = {
            "image": props.image,
            # The asset's tag is its content hash: a present image is the right one.
            "image_pull_policy": kplus.ImagePullPolicy.IF_NOT_PRESENT,
            "env_from": [kplus.Env.from_config_map(self.config_map)],
            "security_context": CONTAINER_SECURITY,
            "volume_mounts": [kplus.VolumeMount(path=TMP_PATH, volume=tmp)],
            "resources": _resources(props, ephemeral_gib=1),
        }
        deployment = kplus.Deployment(
            self,
            "Deployment",
            metadata=cdk8s.ApiObjectMetadata(name=props.instance),
            replicas=None,  # owned by the autoscaler, see above
            service_account=self.service_account,
            automount_service_account_token=False,
            security_context=POD_SECURITY,
            # Select on the recommended labels, not cdk8s's path hash: a selector is immutable,
            # and it must survive a refactor of construct IDs.
            select=False,
            pod_metadata=cdk8s.ApiObjectMetadata(
                labels=_labels(props), annotations=SCRAPE_ANNOTATIONS
            ),
            strategy=kplus.DeploymentStrategy.rolling_update(
                max_surge=kplus.PercentOrAbsolute.absolute(1),
                max_unavailable=kplus.PercentOrAbsolute.absolute(0),
            ),
            # The deploy check fails on ProgressDeadlineExceeded: one pod's slowest way to
            # Ready (contract.pod_start_budget), not the 600 s default, which a first node, a
            # snapshot and a migration outlast.
            progress_deadline=cdk8s.Duration.seconds(
                progress_deadline_seconds(
                    workers=workload.workers,
                    cpu_millis=_millicores(workload.resources.cpu),
                    snapshot=props.db_instance_id is not None,
                )
            ),
            # Drain (preStop, while the load balancer deregisters the pod), then time to finish.
            termination_grace_period=cdk8s.Duration.seconds(
                workload.drain_seconds + SHUTDOWN_SECONDS
            ),
            init_containers=[
                kplus.ContainerProps(
                    name="wait-schema",
                    # The migration Job migrates (it alone reads the master login); the pod
                    # starts its server once both schemas are at head. The server container
                    # never migrates either.
                    args=["wait-schema"],
                    env_variables={
                        key: kplus.EnvValue.from_value(value)
                        for key, value in schema_wait_environment(
                            self._migration_logs_command()
                        ).items()
                    },
                    **common,
                )
            ],
            containers=[
                kplus.ContainerProps(
                    name="server",
                    args=["serve"],
                    port_number=CONTAINER_PORT,
                    # Scratch plus room for logs: the pod is evicted past the sum of limits.
                    **{
                        **common,
                        "resources": _resources(props, ephemeral_gib=workload.scratch_gib + 1),
                    },
                    # IP-target NLBs keep sending new connections to a terminating pod until
                    # its deregistration has propagated: keep serving that long before SIGTERM
                    # closes the listener. (exec: cdk8s-plus-27's schema predates the
                    # kubelet's own sleep action; the image's Debian base has sleep.)
                    lifecycle=kplus.ContainerLifecycle(
                        pre_stop=kplus.Handler.from_command(["sleep", str(workload.drain_seconds)])
                    ),
                    startup=startup_probe(
                        workers=workload.workers,
                        cpu_millis=_millicores(workload.resources.cpu),
                    ),
                    readiness=answering_probe(period_seconds=10),
                    liveness=answering_probe(period_seconds=20),
                ),
                # No probe here, on purpose. A pod is Ready only when every container is, so
                # a readiness probe on the exporter let a metrics problem (one idle connection
                # to the old exporter) take the server out of every Service's endpoints. A
                # liveness probe would too: the container is not ready while it restarts, and
                # failing again it waits in CrashLoopBackOff for minutes. A stuck exporter
                # shows where metrics are watched instead: its scrapes fail (Prometheus' `up`
                # is 0 for the pod). Without a probe a container is ready while it runs.
                # (`ports`, not `port_number`: with the latter cdk8s-plus adds a startup probe.)
                kplus.ContainerProps(
                    name="metrics",
                    # The workers' counters from the shared scratch space, summed, on a port
                    # of its own (see mlflow_launcher.metrics for why not MLflow's /metrics).
                    args=["metrics"],
                    ports=[kplus.ContainerPort(number=METRICS_PORT)],
                    **{
                        **common,
                        # 54 MiB measured (VmHWM of `mlflow-launcher metrics`, 55.5 under a
                        # flood of connections: bench/metrics_flood.py).
                        "resources": container_resources(cpu_millis=20, memory_mib=128),
                    },
                ),
            ],
        )
        deployment.select(kplus.LabelSelector.of(labels=selector_labels(props)))
        api = cdk8s.ApiObject.of(deployment)
        # Spread over zones and nodes so a drain or a zone loss never takes every replica;
        # "ScheduleAnyway" so a small or single-zone cluster still runs them all.
        api.add_json_patch(
            cdk8s.JsonPatch.add(
                "/spec/template/spec/topologySpreadConstraints",
                [
                    {
                        "maxSkew": 1,
                        "topologyKey": key,
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector_labels(props)},
                    }
                    for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                ],
            )
        )
        harden(
            deployment,
            placement=props.placement,
        )
        return deployment

    def _migration_logs_command(self) -> str:
        """What a pod waiting for the schema tells the operator to run."""
        return f"kubectl -n {self.props.namespace} logs job/{self.props.migration_job_name}"

    def _workload_account(
        self, id: str, workload: str, role_arn: str | None
    ) -> kplus.IServiceAccount:
        """A workload's own ServiceAccount for its own IAM role; the server's without one."""
        if role_arn is None:
            return self.service_account
        return kplus.ServiceAccount(
            self,
            id,
            metadata=cdk8s.ApiObjectMetadata(
                name=f"{self.props.instance}-{workload}",
                annotations={"eks.amazonaws.com/role-arn": role_arn},
            ),
            automount_token=False,
        )

    def load_balancer_objects(self) -> list[dict[str, Any]]:
        """The Namespace and the load balancer Services, as they are in `to_json()`: applied
        first (their own manifest), so their DNS names can be read back into the ConfigMap.
        Needs none of the rest: a load balancer with no ready pod yet has no healthy targets.
        With the sign-in load balancer, its objects too (k8s_charts/sso_chart.py), and the
        in-cluster Service the Ingress routes to."""
        kinds = list(_load_balancer_kinds(self.props))
        if self.sso_objects:
            kinds.append("cluster")
        wanted = {("Service", self.props.service_names[k]) for k in kinds}
        wanted |= {(o.kind, o.name) for o in self.sso_objects}
        return [
            obj
            for obj in self.to_json()
            if obj["kind"] == "Namespace" or (obj["kind"], obj["metadata"]["name"]) in wanted
        ]

    def _services(self) -> dict[str, kplus.Service]:
        props = self.props
        names = props.service_names
        services = {
            "cluster": self._service(
                "ClusterService", names["cluster"], kplus.ServiceType.CLUSTER_IP
            )
        }
        internal, external = props.exposure.internal, props.exposure.external
        if "internal" in names:
            services["internal"] = self._service(
                "InternalService",
                names["internal"],
                kplus.ServiceType.LOAD_BALANCER,
                # HTTPS only with a certificate: no plain listener beside it that a client
                # could send its password to.
                port=TLS_SERVICE_PORT if internal.tls else SERVICE_PORT,
                annotations=self._load_balancer_annotations(
                    "internal", internal.certificate_arn, internal.ssl_policy
                ),
            )
        if "external" in names:
            services["external"] = self._service(
                "ExternalService",
                names["external"],
                kplus.ServiceType.LOAD_BALANCER,
                port=TLS_SERVICE_PORT,
                annotations=self._load_balancer_annotations(
                    "internet-facing", external.certificate_arn, external.ssl_policy
                ),
                source_ranges=list(external.allowed_cidrs),
            )
        return services

    def _load_balancer_annotations(
        self, scheme: str, certificate_arn: str | None, ssl_policy: str
    ) -> dict[str, str]:
        """An NLB of `scheme` with pods as its targets; TLS terminated there with a certificate."""
        annotations = {
            f"{LB_ANNOTATION}scheme": scheme,
            f"{LB_ANNOTATION}nlb-target-type": "ip",
        }
        if certificate_arn is not None:
            annotations |= tls_annotations(
                certificate_arn, ssl_policy, self.props.load_balancer_class
            )
        return annotations | {
            f"{LB_ANNOTATION}target-group-attributes": self._target_group_attributes()
        }

    def _service_monitor(self) -> None:
        """With server.service_monitor: a headless Service for the pods' metrics port, and the
        ServiceMonitor that selects it (k8s_charts/service_monitor.py)."""
        props = self.props
        settings = props.workload.service_monitor
        if not settings.enabled:
            self.metrics_service = self.service_monitor = None
            return
        # Headless: Prometheus scrapes the pods behind it, never a virtual IP.
        self.metrics_service = self._service(
            "MetricsService",
            f"{props.instance}-metrics",
            kplus.ServiceType.CLUSTER_IP,
            port=METRICS_PORT,
            port_name=service_monitor.PORT_NAME,
            target_port=METRICS_PORT,
            labels=service_monitor.metrics_service_labels(selector_labels(props)),
            cluster_ip="None",
        )
        self.service_monitor = service_monitor.add_service_monitor(
            self, name=props.instance, selector=selector_labels(props), settings=settings
        )

    def _service(
        self,
        id: str,
        name: str,
        type: kplus.ServiceType,
        *,
        port: int = SERVICE_PORT,
        port_name: str | None = None,
        target_port: int = CONTAINER_PORT,
        labels: dict[str, str] | None = None,
        cluster_ip: str | None = None,
        annotations: dict[str, str] | None = None,
        source_ranges: list[str] | None = None,
    ) -> kplus.Service:
        service = kplus.Service(
            self,
            id,
            metadata=cdk8s.ApiObjectMetadata(name=name, annotations=annotations, labels=labels),
            type=type,
            cluster_ip=cluster_ip,
            ports=[
                kplus.ServicePort(
                    name=port_name or ("https" if port == TLS_SERVICE_PORT else "http"),
                    port=port,
                    target_port=target_port,
                )
            ],
            load_balancer_source_ranges=source_ranges,
        )
        # cdk8s-plus writes `externalIPs: []`, the same as none: noise in what is applied.
        cdk8s.ApiObject.of(service).add_json_patch(cdk8s.JsonPatch.remove("/spec/externalIPs"))
        for key, value in selector_labels(self.props).items():
            service.select_label(key, value)
        if type == kplus.ServiceType.LOAD_BALANCER:
            cdk8s.ApiObject.of(service).add_json_patch(
                cdk8s.JsonPatch.add("/spec/loadBalancerClass", self.props.load_balancer_class)
            )
        return service

    def _target_group_attributes(self) -> str:
        # NLB's default deregistration delay is 300 s; align it with the pod's drain, and close
        # connections still open when it ends (the pod is about to stop anyway).
        return (
            f"deregistration_delay.timeout_seconds={self.props.workload.drain_seconds},"
            "deregistration_delay.connection_termination.enabled=true"
        )

    def _disruption_budget(self) -> None:
        # Always present (maxUnavailable 1 never blocks a drain, even of one replica): an
        # object that comes and goes with a setting would be left behind by kubectl's prune.
        k8s.KubePodDisruptionBudget(
            self,
            "DisruptionBudget",
            metadata=k8s.ObjectMeta(name=self.props.instance),
            spec=k8s.PodDisruptionBudgetSpec(
                max_unavailable=k8s.IntOrString.from_number(1),
                selector=k8s.LabelSelector(match_labels=selector_labels(self.props)),
                # A pod that never got ready must not block a drain.
                unhealthy_pod_eviction_policy="AlwaysAllow",
            ),
        )

    def _network_policy(self) -> None:
        """Admit HTTP to the server port from anywhere and to the metrics port from the
        scrapers; let pods reach only DNS, the DB and HTTPS (AWS APIs)."""
        scrapers = self.props.workload.metrics_scrapers
        k8s.KubeNetworkPolicy(
            self,
            "NetworkPolicy",
            metadata=k8s.ObjectMeta(name=self.props.instance),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=selector_labels(self.props)),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    # Load balancers in IP mode and in-cluster clients come from many addresses.
                    ingress(tcp(CONTAINER_PORT)),
                    # The counters need no login: only the scrapers the operator names.
                    ingress(
                        tcp(METRICS_PORT),
                        from_=[pods_in_namespaces(scrapers.namespace_labels, scrapers.pod_labels)],
                    ),
                ],
                egress=[dns(), egress(tcp(self.props.db_port, 443))],
            ),
        )


def _sso_environment(props: MlflowChartProps) -> dict[str, str]:
    """The launcher's single sign-on settings: whose identity header to accept (the sign-in
    ALB's, from its subnets) and which claims name the user and the admins. The issuer and
    client ID checks stay off: the signer is this deployment's ALB, which signs only what its
    own OIDC action produced, and the client ID lives in the secret, not the settings."""
    sso = props.sso
    if sso is None or not props.sso_signer_arn:
        return {}
    return sso_environment(
        alb_arn=props.sso_signer_arn,
        username_claim=sso.username_claim,
        groups_claim=sso.groups_claim,
        admin_group=sso.admin_group,
        trusted_cidrs=[props.sso_trusted_cidrs] if props.sso_trusted_cidrs else None,
    )


def _labels(props: MlflowChartProps) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "mlflow",
        "app.kubernetes.io/instance": props.instance,
        "app.kubernetes.io/version": props.mlflow_version,
        "app.kubernetes.io/component": "tracking-server",
        "app.kubernetes.io/part-of": "mlflow",
        "app.kubernetes.io/managed-by": "cdk8s",
        **props.extra_labels,
    }


def selector_labels(props: MlflowChartProps) -> dict[str, str]:
    return {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": props.instance}


def _resources(props: MlflowChartProps, *, ephemeral_gib: int) -> kplus.ContainerResources:
    resources = props.workload.resources
    return container_resources(_millicores(resources.cpu), resources.memory_mib, ephemeral_gib)


def _millicores(quantity: str) -> int:
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return round(float(quantity) * 1000)


def _service_hosts(props: MlflowChartProps) -> list[str]:
    """Every name a client in the cluster reaches a Service by."""
    hosts: list[str] = []
    for name in props.service_names.values():
        base = f"{name}.{props.namespace}"
        hosts += [name, base, f"{base}.svc", f"{base}.svc.cluster.local"]
    return hosts


def _load_balancer_kinds(props: MlflowChartProps) -> list[str]:
    return [kind for kind in props.service_names if kind != "cluster"]


def _internal_hostname(props: MlflowChartProps) -> list[str]:
    """The certificate's name clients reach the internal load balancer by, with TLS on."""
    internal = props.exposure.internal
    return [internal.hostname] if "internal" in props.service_names and internal.hostname else []


def _allowed_hosts(props: MlflowChartProps) -> list[str]:
    hosts = _service_hosts(props)
    # MLflow compares the whole Host header, port included: `kubectl port-forward` sends
    # `localhost:<local port>`, while the Services listen on 80/443 (no port in the header).
    hosts += ["localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]
    hosts += [props.load_balancer_host(kind) for kind in _load_balancer_kinds(props)]
    hosts += _internal_hostname(props)
    hosts += props.workload.allowed_hosts
    if props.sso:
        hosts.append(str(props.sso.hostname))
    return list(dict.fromkeys(hosts))


def _allowed_origins(props: MlflowChartProps) -> list[str]:
    """Origins whose pages may send MLflow state-changing requests: those of the served names.

    Browsers send `Origin` (scheme://host[:port], the port left out when it is the scheme's
    default: RFC 6454, 6.1) on every POST, and MLflow refuses one it does not list (equal
    strings: mlflow/server/security_utils.py, should_block_cors_request), unless it is
    localhost (port-forward needs nothing here). Plain HTTP for the in-cluster names, each load
    balancer's name with the scheme it serves (HTTPS for the external one, and for the internal
    one with a certificate, whose name is listed too); the user's own names both ways, as they
    may front either one.
    """
    origins = [f"http://{host}" for host in _service_hosts(props)]
    for kind in _load_balancer_kinds(props):
        origins.append(f"{props.exposure.scheme(kind)}://{props.load_balancer_host(kind)}")
    origins += [f"https://{host}" for host in _internal_hostname(props)]
    for host in props.workload.allowed_hosts:
        origins += [f"https://{host}", f"http://{host}"]
    if props.sso:  # HTTPS only: the ALB has no other listener
        origins.append(f"https://{props.sso.hostname}")
    return list(dict.fromkeys(origins))
