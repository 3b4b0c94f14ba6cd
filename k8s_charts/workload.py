"""How the server runs: the settings a user tunes, in one typed model.

`WorkloadProps` is at once the config file's `server` section (config/settings.py uses it as
is), MlflowTrackingServer's `workload` and the chart's: each field's type, default, bounds and
description are here only. A new server setting touches this model, the code that uses it and
the generated docs.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field

from .launcher_contract import bounds, launcher
from .model import Props
from .rules import (
    Architecture,
    ArtifactGib,
    ConcurrentTransfers,
    CpuQuantity,
    DrainSeconds,
    EnvName,
    EnvValue,
    ExtraArg,
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
    set_while_off,
)

LogLevel = Literal[launcher.LOG_LEVEL.choices]  # type: ignore[valid-type]
"""The levels the launcher's contract admits (MLFLOW_LOG_LEVEL)."""

SCRATCH_OVERHEAD_GIB = 1
"""Scratch space beyond proxied transfers: caches, the UI's temp files, logs of a crash."""


def pod_ephemeral_gib(workload: WorkloadProps) -> int:
    """Ephemeral storage one server pod requests: the server container's scratch space (every
    proxied transfer at once, plus SCRATCH_OVERHEAD_GIB) and 1 GiB for its logs, and the
    metrics container's 1 GiB (hardening.container_resources); the init container's 1 GiB runs
    before them and adds nothing. `workload` may be any value with the two fields read (the
    config's rules pass the valid fields of an otherwise invalid section)."""
    transfers = workload.max_proxied_artifact_gib * workload.concurrent_artifact_transfers
    return transfers + SCRATCH_OVERHEAD_GIB + 1 + 1


class ResourceProps(Props):
    """Requests (and the memory limit) of the server container."""

    cpu: CpuQuantity = Field(
        "500m", description="CPU request (Kubernetes quantity: '500m', '1', '1.5')."
    )
    memory_mib: MemoryMib = Field(
        1024,
        description="Memory request and limit in MiB (256-65536, limit = request); at least "
        "what server.workers take under load.",
    )


class MetricsScrapersProps(Props):
    """Who may connect to the server pods' metrics port (9464), as NetworkPolicy selectors.
    Only pods of the cluster are ever admitted: no VPC address, node or load balancer."""

    namespace_labels: MatchLabels = Field(
        default_factory=dict,
        description="Labels (matchLabels) of the namespaces scrapers run in; empty (default): "
        "every namespace. Every namespace carries `kubernetes.io/metadata.name: <its name>`, so "
        "`{kubernetes.io/metadata.name: monitoring}` admits the `monitoring` namespace only. "
        "Keys and values as Kubernetes labels (values in quotes when YAML would read a number "
        "or a boolean).",
    )
    pod_labels: MatchLabels = Field(
        default_factory=dict,
        description="Labels (matchLabels) of the scraper pods in those namespaces, e.g. "
        "`{app.kubernetes.io/name: prometheus}`; empty (default): every pod there. With both "
        "empty, every pod of the cluster may scrape, and nothing outside it (the NetworkPolicy "
        "is enforced only where a network policy engine runs).",
    )


SCRAPE_TIMEOUT_SECONDS = math.ceil(
    launcher.METRICS_REQUEST_SECONDS + launcher.METRICS_RESPONSE_SECONDS
)
"""The ServiceMonitor's scrapeTimeout: the longest the `metrics` container holds a scrape (its
deadline for the request, then for the answer). A scraper that gave up sooner could drop an
answer still on its way; Prometheus wants the timeout no longer than the interval."""
MAX_SCRAPE_INTERVAL_SECONDS = 120
"""Prometheus looks 5 minutes back for a series' latest sample, and rate() over [5m] needs two
samples in the window: longer intervals show gaps."""
ScrapeIntervalSeconds = Annotated[
    int, Field(ge=SCRAPE_TIMEOUT_SECONDS, le=MAX_SCRAPE_INTERVAL_SECONDS)
]


class ServiceMonitorProps(Props):
    """A Prometheus Operator ServiceMonitor for the pods' metrics port, beside the scrape
    annotations (which stay). Off by default: it needs the operator's CRDs in the cluster."""

    RULES = (set_while_off(("labels",), "labels are set; set enabled: true or remove them"),)

    enabled: bool = Field(
        False,
        description="Create a ServiceMonitor (monitoring.coreos.com/v1) and a headless Service "
        "`<instance>-metrics` for port 9464. The cluster must have the Prometheus Operator's "
        "CRDs (without them the deploy fails), and its Prometheus must run in pods "
        "server.metrics_scrapers admits (the NetworkPolicy). Turned off later, the "
        "ServiceMonitor stays (kubectl's prune skips custom resources): delete it by hand.",
    )
    labels: MatchLabels = Field(
        default_factory=dict,
        description="Labels on the ServiceMonitor besides the chart's, for the Prometheus' "
        "serviceMonitorSelector, e.g. `{release: kube-prometheus-stack}` (that Helm chart's "
        "Prometheus selects its release's label by default).",
    )
    interval_seconds: ScrapeIntervalSeconds = Field(
        30,
        description=f"How often Prometheus scrapes each pod ({SCRAPE_TIMEOUT_SECONDS}-"
        f"{MAX_SCRAPE_INTERVAL_SECONDS}). The scrape timeout is {SCRAPE_TIMEOUT_SECONDS} s, as "
        "long as the metrics container holds a scrape; Prometheus' queries look 5 minutes back, "
        "so longer intervals show gaps.",
    )


WORKLOAD_RULES = (
    Rule(
        "max_replicas",
        ("replicas", "max_replicas"),
        lambda w: max_replicas_problem(w.replicas, w.max_replicas),
    ),
    Rule(
        "resources.memory_mib",
        (
            "workers",
            "resources",
            "concurrent_sign_in_checks",
            "max_request_body_mib",
            "concurrent_artifact_transfers",
            "max_proxied_artifact_gib",
        ),
        lambda w: memory_problem(
            w.resources.memory_mib,
            w.workers,
            w.concurrent_sign_in_checks,
            w.max_request_body_mib,
            w.concurrent_artifact_transfers,
            w.max_proxied_artifact_gib,
        ),
    ),
)
"""Rules between the workload's fields."""


class WorkloadProps(Props):
    """The MLflow tracking server workload: the config file's `server` section."""

    RULES = WORKLOAD_RULES

    namespace: Namespace = Field("mlflow", description="Kubernetes namespace (created).")
    replicas: Replicas = Field(
        2, description="Server pods (1-50; >= 2 keeps it up through node drains)."
    )
    max_replicas: MaxReplicas | None = Field(
        None,
        description="Upper bound for CPU autoscaling; null (default) pins the pod count at "
        "replicas.",
    )
    workers: Workers = Field(
        launcher.WORKERS.default,
        description=f"uvicorn workers per pod ({bounds(launcher.WORKERS)}).",
    )
    log_level: LogLevel = Field(
        launcher.LOG_LEVEL.default,
        description="How much the server logs, MLflow's loggers and uvicorn's alike: `info` "
        "has a line per request, `warning` keeps only what needs a look, `debug` adds MLflow's "
        "debug messages.",
    )
    resources: ResourceProps = Field(default_factory=ResourceProps)
    allowed_hosts: tuple[HostPattern, ...] = Field(
        (),
        description="Extra Host names MLflow answers, e.g. your DNS name; `*` patterns as MLflow "
        "matches them (`*.example.com`, `name:*` for any port). Always allowed: the Service "
        "names, localhost (port-forward) and the DNS names this deployment's load balancers "
        "got (read back at deploy time; no other load balancer's). Browser pages of these "
        "hosts may write (CORS).",
    )
    architecture: Architecture = Field(
        "amd64",
        description="CPU architecture of the image and of the nodes the pods run on. `arm64` "
        "(Graviton) costs less; a new cluster gets a node pool for it, an existing one must "
        "offer arm64 nodes.",
    )
    max_proxied_artifact_gib: ArtifactGib = Field(
        launcher.MAX_PROXIED_ARTIFACT_MIB.default // 1024,
        description="Largest artifact (GiB) clients send or fetch through the server, which "
        "streams a proxied upload on to S3 and an artifact API download from it, and spools "
        "the UI's downloads to the pod's scratch space. A larger one is refused (413) before "
        "any of it is spooled or kept, with how to send it straight to S3: clients >= 3.15 do "
        "so for files of 500 MiB and more (presigned multipart), and fetch downloads from S3 "
        "directly, so this bounds smaller files, the UI's downloads and older clients.",
    )
    concurrent_artifact_transfers: ConcurrentTransfers = Field(
        launcher.CONCURRENT_ARTIFACT_TRANSFERS.default,
        description="Proxied transfers a pod holds at once, over all its workers; one more is "
        "told to retry (503, Retry-After). Scratch space per pod = max_proxied_artifact_gib x "
        "this + 1 GiB (requested as ephemeral storage), so a pod is never evicted for it; a "
        "new cluster's nodes get a volume that holds it (Auto Mode's 80 GiB, or the pod's "
        "needs + 30 GiB, at most 59000 GiB).",
    )
    drain_seconds: DrainSeconds = Field(
        30,
        description="Load balancer deregistration delay; a terminating pod keeps serving this "
        "long (preStop) before it stops accepting, and then has 30 s to finish requests.",
    )
    metrics_scrapers: MetricsScrapersProps = Field(default_factory=MetricsScrapersProps)
    service_monitor: ServiceMonitorProps = Field(default_factory=ServiceMonitorProps)
    workspaces: bool = Field(
        launcher.ENABLE_WORKSPACES.default,
        description="MLflow's workspaces: experiments, models, prompts and datasets each belong "
        "to one, chosen per request by the `X-MLFLOW-WORKSPACE` header (absent: `default`, "
        "where everything made before lives); artifacts of workspace `<ws>` go under "
        "`<artifacts prefix>/workspaces/<ws>/`. Only admins create workspaces; with sign-in, "
        "users see a workspace through a role in it (auth.grant_default_workspace_access). A "
        "one-way door: once something lives outside `default`, turning this off stops the "
        "server from starting until `mlflow db migrate-to-default-workspace` has moved it "
        "back (docs/operations.md, Workspaces).",
    )
    max_request_body_mib: RequestBodyMib = Field(
        launcher.MAX_REQUEST_BODY_MIB.default,
        description=f"Largest request body (MiB, {bounds(launcher.MAX_REQUEST_BODY_MIB)}) the "
        "server reads, artifacts aside (they "
        "stream, bounded by max_proxied_artifact_gib); larger is refused (413) before it is "
        "read. MLflow's own requests stay far below 8 MiB (a log_batch at its limits is under "
        "2 MiB); raise it for large OTLP trace batches, and memory_mib with it. A request "
        "without a login may carry 64 KiB.",
    )
    concurrent_sign_in_checks: SignInChecks = Field(
        launcher.CONCURRENT_SIGN_IN_CHECKS.default,
        description="Password checks each server process runs at once "
        f"({bounds(launcher.CONCURRENT_SIGN_IN_CHECKS)}). MLflow checks a "
        "password with scrypt, 32 MiB and about 67 ms of CPU each; more requests wait for a "
        "free check (up to 10 s, then 503), so 64 wrong passwords at once cost no more memory "
        "than this many.",
    )
    sign_in_failures_per_minute: SignInFailures = Field(
        launcher.SIGN_IN_FAILURES_PER_MINUTE.default,
        description="Failed sign-ins one source address may make for one login in a minute, per "
        "server process, before it gets 429 with Retry-After (and five times this over all "
        "logins). Logins MLflow still remembers (auth.sign_in_cache_seconds) pass meanwhile.",
    )
    extra_args: tuple[ExtraArg, ...] = Field(
        (),
        description="Arguments appended to `mlflow server`'s, for an option MLflow has and "
        "these settings do not, e.g. `[--x-frame-options, DENY]`; each item one argument (no "
        "shell reads them). Refused: the options the launcher gives or that would undo them "
        "(--host, --port, --workers, --app-name, --allowed-hosts, --cors-allowed-origins, the "
        "store URIs, --serve-artifacts, --artifacts-destination, --default-artifact-root, "
        "--expose-prometheus, --static-prefix, --disable-security-middleware, "
        "--uvicorn-opts and the other servers' options, in every spelling), and anything that "
        "looks like a secret. An argument MLflow refuses stops the server at start (the "
        "deploy check reports the pod, its log MLflow's message).",
    )
    extra_env: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Variables added to `mlflow server`'s environment (name: value, values in "
        'quotes), e.g. `{MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS: "20"}`; through the ConfigMap, '
        "so a change rolls the pods. Refused: the variables the launcher, the chart, the image "
        "or the pod's AWS identity (IRSA) set, those of the refused options, KUBERNETES_* and "
        "MLflow's private _MLFLOW_*, names with PASSWORD, SECRET, TOKEN, KEY or CREDENTIAL in "
        "them, and values that look like a secret (a URL with a password, an AWS access key).",
    )

    @property
    def pod_ephemeral_gib(self) -> int:
        """Ephemeral storage one server pod requests (pod_ephemeral_gib)."""
        return pod_ephemeral_gib(self)

    @property
    def scratch_gib(self) -> int:
        """The pod's scratch emptyDir: every proxied transfer at once, plus overhead."""
        return (
            self.max_proxied_artifact_gib * self.concurrent_artifact_transfers
            + SCRATCH_OVERHEAD_GIB
        )
