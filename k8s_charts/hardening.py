"""What every pod of these charts gets: the restricted Pod Security Standard, the image's user,
and nodes of the image's architecture (on a new cluster: of MLflow's tainted node pool, and only
those that carry the group the database admits).

One place, so the server and the deploy check cannot drift apart: the namespace enforces
`restricted`, and a pod that misses one field is refused at admission, not at synth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cdk8s
import cdk8s_plus_27 as kplus

from .node_pool_chart import DEDICATED_TAINT

UID = 10001
"""The image's non-root user (image/Dockerfile creates it with this UID and GID)."""

TMP_PATH = "/tmp"  # noqa: S108 - an emptyDir of the pod, not a shared host directory
"""The only writable path: the image keeps HOME, TMPDIR and caches there."""

POD_SECURITY = kplus.PodSecurityContextProps(
    user=UID, group=UID, fs_group=UID, ensure_non_root=True
)

CONTAINER_SECURITY = kplus.ContainerSecurityContextProps(
    user=UID,
    group=UID,
    ensure_non_root=True,
    read_only_root_filesystem=True,
    allow_privilege_escalation=False,
    privileged=False,
)


@dataclass(frozen=True)
class Placement:
    """Where a workload's pods may run: nodes of the image's `architecture`; with `node_pool`,
    that pool's only (tolerating its taint); with `node_labels`, nodes with these labels too."""

    architecture: str
    node_pool: str | None = None
    node_labels: Mapping[str, str] = field(default_factory=dict)


def harden(
    workload: kplus.AbstractPod | kplus.Workload,
    *,
    placement: Placement,
    pod_spec: str = "/spec/template/spec",
) -> None:
    """Add what cdk8s-plus cannot set: the seccomp profile and dropped capabilities the
    restricted standard requires, on every container the pod template has, and the node
    selector (the image is built for one architecture; elsewhere it would crash-loop with
    "exec format error").

    With `placement.node_pool`, the pods run on that pool only and tolerate its taint
    (NodePoolChart's DEDICATED_TAINT); `placement.node_labels` narrows them to nodes with these
    labels as well."""
    architecture, node_pool = placement.architecture, placement.node_pool
    api = cdk8s.ApiObject.of(workload)
    spec = pod_spec  # (a CronJob's is under its jobTemplate)
    api.add_json_patch(
        cdk8s.JsonPatch.add(f"{spec}/securityContext/seccompProfile", {"type": "RuntimeDefault"})
    )
    containers = [("initContainers", i) for i in range(len(workload.init_containers))]
    containers += [("containers", i) for i in range(len(workload.containers))]
    for kind, position in containers:
        api.add_json_patch(
            cdk8s.JsonPatch.add(
                f"{spec}/{kind}/{position}/securityContext/capabilities", {"drop": ["ALL"]}
            )
        )
    # Only the arch label: Auto Mode node pools do not support kubernetes.io/os.
    selector = {"kubernetes.io/arch": architecture}
    if node_pool:
        selector["karpenter.sh/nodepool"] = node_pool
        api.add_json_patch(
            cdk8s.JsonPatch.add(
                f"{spec}/tolerations",
                [
                    {
                        "key": DEDICATED_TAINT,
                        "operator": "Equal",
                        "value": node_pool,
                        "effect": "NoSchedule",
                    }
                ],
            )
        )
    selector.update(placement.node_labels)
    api.add_json_patch(cdk8s.JsonPatch.add(f"{spec}/nodeSelector", selector))


def launcher_container(
    *,
    name: str,
    image: str,
    config_map: kplus.ConfigMap | None,
    environment: Mapping[str, str],
    tmp: kplus.Volume,
    resources: kplus.ContainerResources,
) -> kplus.ContainerProps:
    """A Job's one container: the launcher command `name` of the server's image, with the
    server's ConfigMap (None: without it) and `environment` on top, hardened, /tmp its only
    writable path."""
    return kplus.ContainerProps(
        name=name,
        image=image,
        image_pull_policy=kplus.ImagePullPolicy.IF_NOT_PRESENT,
        args=[name],
        env_from=[kplus.Env.from_config_map(config_map)] if config_map else None,
        env_variables={k: kplus.EnvValue.from_value(v) for k, v in environment.items()},
        security_context=CONTAINER_SECURITY,
        volume_mounts=[kplus.VolumeMount(path=TMP_PATH, volume=tmp)],
        resources=resources,
    )


def api_job_pod(
    *,
    labels: Mapping[str, str],
    account: kplus.IServiceAccount,
    tmp: kplus.Volume,
    container: kplus.ContainerProps,
) -> dict[str, Any]:
    """The pod of a Job (or CronJob) that calls the Kubernetes API as its own ServiceAccount:
    the token mounted for it alone, never restarted in place, hardened, `tmp` its scratch."""
    return {
        "select": False,
        "pod_metadata": cdk8s.ApiObjectMetadata(labels=dict(labels)),
        "restart_policy": kplus.RestartPolicy.NEVER,
        "service_account": account,
        "automount_service_account_token": True,
        "security_context": POD_SECURITY,
        "volumes": [tmp],
        "containers": [container],
    }


def container_resources(
    cpu_millis: int, memory_mib: int, ephemeral_gib: int = 1
) -> kplus.ContainerResources:
    """Requests of a container (memory: limit = request, as an OOM kill is better than
    starving neighbours), with `ephemeral_gib` of scratch space, 1 GiB for a helper. The /tmp
    emptyDir counts against ephemeral storage: requested, so the scheduler places the pod
    where that much disk is free instead of evicting it (cdk8s-plus renders whole GiB)."""
    memory = cdk8s.Size.mebibytes(memory_mib)
    storage = cdk8s.Size.gibibytes(ephemeral_gib)
    return kplus.ContainerResources(
        cpu=kplus.CpuResources(request=kplus.Cpu.millis(cpu_millis)),
        memory=kplus.MemoryResources(request=memory, limit=memory),
        ephemeral_storage=kplus.EphemeralStorageResources(request=storage, limit=storage),
    )
