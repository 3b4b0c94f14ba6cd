"""How the server runs: the settings a user tunes, in one typed object.

The config file's `server` section is this object (config/settings.py declares the same fields,
takes its defaults from here and a test holds the two together), and MlflowTrackingServer hands
it to the chart unchanged: a new setting touches the settings model, this, the chart and the
generated docs, and nothing in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow_on_eks.k8s_charts.launcher_contract import launcher
from mlflow_on_eks.k8s_charts.rules import (
    Architecture,
    ArtifactGib,
    ConcurrentTransfers,
    CpuQuantity,
    DrainSeconds,
    HostPattern,
    MatchLabels,
    MaxReplicas,
    MemoryMib,
    Namespace,
    Replicas,
    RequestBodyMib,
    Rule,
    SignInChecks,
    SignInFailures,
    Workers,
    max_replicas_problem,
    memory_problem,
    validate_props,
)

SCRATCH_OVERHEAD_GIB = 1
"""Scratch space beyond proxied transfers: caches, the UI's temp files, logs of a crash."""


@dataclass(frozen=True)
class ResourceProps:
    """Requests of the server container (memory: limit = request)."""

    cpu: CpuQuantity = "500m"
    """CPU request, a Kubernetes quantity ("500m", "1.5")."""
    memory_mib: MemoryMib = 1024
    """Memory request and limit in MiB: an OOM kill is better than starving neighbours."""

    def __post_init__(self) -> None:
        validate_props(self)


@dataclass(frozen=True)
class MetricsScrapersProps:
    """Who may connect to the pods' metrics port (9464): pods with `pod_labels` in namespaces
    with `namespace_labels` (the NetworkPolicy's selectors). Nothing from outside the cluster
    is admitted: no VPC address, node or load balancer. The server port is not affected.

    Default: every pod of the cluster, nothing else.
    """

    namespace_labels: MatchLabels = field(default_factory=dict)
    """Labels of the scrapers' namespaces; every namespace carries `kubernetes.io/metadata.name:
    <its name>`. Default: every namespace."""
    pod_labels: MatchLabels = field(default_factory=dict)
    """Labels of the scraper pods. Default: every pod of those namespaces."""

    def __post_init__(self) -> None:
        validate_props(self)


@dataclass(frozen=True)
class WorkloadProps:
    """The MLflow server workload. Every field has the default the config file documents."""

    namespace: Namespace = "mlflow"
    """Created for the workloads (a DNS-1123 label)."""
    replicas: Replicas = 2
    """Pods; >= 2 keeps the server up through node drains."""
    max_replicas: MaxReplicas | None = None
    """With a value, the autoscaler scales on CPU between replicas and this; else it pins."""
    workers: Workers = launcher.WORKERS.default
    """uvicorn workers per pod."""
    resources: ResourceProps = field(default_factory=ResourceProps)
    allowed_hosts: tuple[HostPattern, ...] = ()
    """Host names (or `*` patterns) MLflow answers besides the Service names, localhost and
    the load balancers' DNS names; browser pages served under them may write (CORS)."""
    architecture: Architecture = "amd64"
    """The image's architecture, and so the nodes' (`amd64` or `arm64`)."""
    max_proxied_artifact_gib: ArtifactGib = launcher.MAX_PROXIED_ARTIFACT_MIB.default // 1024
    """Largest artifact proxied through a pod (MLflow spools it to scratch space)."""
    concurrent_artifact_transfers: ConcurrentTransfers = (
        launcher.CONCURRENT_ARTIFACT_TRANSFERS.default
    )
    """Proxied transfers a pod holds at once; with the above, sizes the scratch space."""
    drain_seconds: DrainSeconds = 30
    """Load balancer deregistration delay; a terminating pod serves this long (preStop)."""
    metrics_scrapers: MetricsScrapersProps = field(default_factory=MetricsScrapersProps)
    """Who may scrape the pods' metrics port. Default: every pod of the cluster."""
    max_request_body_mib: RequestBodyMib = launcher.MAX_REQUEST_BODY_MIB.default
    """Largest request body MLflow reads, artifacts aside (they stream); a request without a
    login may carry 64 KiB."""
    concurrent_sign_in_checks: SignInChecks = launcher.CONCURRENT_SIGN_IN_CHECKS.default
    """Password checks each server process runs at once (32 MiB each); more wait, then 503."""
    sign_in_failures_per_minute: SignInFailures = launcher.SIGN_IN_FAILURES_PER_MINUTE.default
    """Failed sign-ins one source may make for one login per minute and process before 429."""

    def __post_init__(self) -> None:
        validate_props(self, WORKLOAD_RULES)

    @property
    def scratch_gib(self) -> int:
        """The pod's scratch emptyDir: every proxied transfer at once, plus overhead."""
        return (
            self.max_proxied_artifact_gib * self.concurrent_artifact_transfers
            + SCRATCH_OVERHEAD_GIB
        )


WORKLOAD_RULES = (
    Rule(
        "max_replicas",
        ("replicas", "max_replicas"),
        lambda w: max_replicas_problem(w.replicas, w.max_replicas),
    ),
    Rule(
        "resources.memory_mib",
        ("workers", "resources", "concurrent_sign_in_checks", "max_request_body_mib"),
        lambda w: memory_problem(
            w.resources.memory_mib, w.workers, w.concurrent_sign_in_checks, w.max_request_body_mib
        ),
    ),
)
"""Rules between the workload's fields (the config's `server` section checks the same)."""
