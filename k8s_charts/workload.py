"""How the server runs: the settings a user tunes, in one typed object.

The config file's `server` section is this object (config/settings.py declares the same fields,
takes its defaults from here and a test holds the two together), and MlflowTrackingServer hands
it to the chart unchanged: a new setting touches the settings model, this, the chart and the
generated docs, and nothing in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCRATCH_OVERHEAD_GIB = 1
"""Scratch space beyond proxied transfers: caches, the UI's temp files, logs of a crash."""


@dataclass(frozen=True)
class ResourceProps:
    """Requests of the server container (memory: limit = request)."""

    cpu: str = "500m"
    """CPU request, a Kubernetes quantity ("500m", "1.5")."""
    memory_mib: int = 1024
    """Memory request and limit in MiB: an OOM kill is better than starving neighbours."""


@dataclass(frozen=True)
class WorkloadProps:
    """The MLflow server workload. Every field has the default the config file documents."""

    namespace: str = "mlflow"
    """Created for the workloads (a DNS-1123 label)."""
    replicas: int = 2
    """Pods; >= 2 keeps the server up through node drains."""
    max_replicas: int | None = None
    """With a value, the autoscaler scales on CPU between replicas and this; else it pins."""
    workers: int = 2
    """uvicorn workers per pod."""
    resources: ResourceProps = field(default_factory=ResourceProps)
    allowed_hosts: tuple[str, ...] = ()
    """Host names (or `*` patterns) MLflow answers besides the Service names, localhost and
    the load balancers' DNS names; browser pages served under them may write (CORS)."""
    architecture: str = "amd64"
    """The image's architecture, and so the nodes' (`amd64` or `arm64`)."""
    max_proxied_artifact_gib: int = 2
    """Largest artifact proxied through a pod (MLflow spools it to scratch space)."""
    concurrent_artifact_transfers: int = 2
    """Proxied transfers a pod holds at once; with the above, sizes the scratch space."""
    drain_seconds: int = 30
    """Load balancer deregistration delay; a terminating pod serves this long (preStop)."""

    @property
    def scratch_gib(self) -> int:
        """The pod's scratch emptyDir: every proxied transfer at once, plus overhead."""
        return (
            self.max_proxied_artifact_gib * self.concurrent_artifact_transfers
            + SCRATCH_OVERHEAD_GIB
        )
