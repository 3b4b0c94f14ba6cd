"""Cluster-wide objects a new EKS Auto Mode cluster needs for the server's pods.

Auto Mode's built-in node pools cannot be changed: they are amd64-only and their node class
leaves NetworkPolicy unenforced. So the server gets its own NodeClass (network policy on) and
NodePool (the image's architecture), and the network policy controller is switched on, as the
EKS user guide describes (automode/auto-net-pol, create-node-class, create-node-pool).

The pool is MLflow's alone: a taint keeps every other workload off its nodes, because those nodes
carry the one security group the database admits (`database_client_security_group_id`; why a
group on the nodes rather than on the pods: docs/operations.md, Who reaches the database).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cdk8s
from cdk8s_plus_27 import k8s
from constructs import Construct

from .rules import cpu_millicores
from .workload import WorkloadProps, pod_ephemeral_gib

if TYPE_CHECKING:  # hardening, which job_runner imports, imports this module
    from .job_runner import JobsProps

AUTO_MODE_NODE_CLASS_API = "eks.amazonaws.com/v1"
KARPENTER_API = "karpenter.sh/v1"

DEDICATED_TAINT = "mlflow-on-eks/dedicated"
"""Taint key (value: the pool's name, effect NoSchedule) on the pool's nodes; `harden()` gives
the charts' pods the matching toleration, no other pod has it."""
DATABASE_CLIENT_LABEL = "mlflow-on-eks/database-client-group"
"""Node label whose value is the database client group the node carries: pods that open the
database require it, so none starts on a node the database does not admit (an older node of the
pool, before the group existed or changed)."""


AUTO_MODE_EPHEMERAL_GIB = 80
"""A NodeClass's ephemeral storage (the node's root volume) when it names none; the range it
takes is 1-59000Gi (EKS user guide, Create a Node Class for Amazon EKS, "Node Class
Specification")."""
MAX_EPHEMERAL_GIB = 59000
NODE_SYSTEM_GIB = 30
"""Room on a node's volume beside the server pod's requests: the OS, the images (MLflow's is
about 1.5 GiB compressed), the kubelet's and containers' logs, other pods' small requests."""
POOL_FLOOR = (16, 64)
"""(vCPU, GiB) the pool may always hold: a few nodes of the c, m and r families it draws from,
enough for a small server's pods, the migration, gc and check Jobs, and a node replacement."""


def ephemeral_problem(workload: WorkloadProps) -> str | None:
    """Whether one server pod's scratch space fits on the largest node volume Auto Mode gives
    (`workload`: any value with the fields pod_ephemeral_gib reads)."""
    pod = pod_ephemeral_gib(workload)
    if pod + NODE_SYSTEM_GIB <= MAX_EPHEMERAL_GIB:
        return None
    return (
        f"max_proxied_artifact_gib x concurrent_artifact_transfers asks for "
        f"{pod} GiB of ephemeral storage per pod; a node of a new cluster "
        f"holds at most {MAX_EPHEMERAL_GIB} GiB of ephemeral storage (EKS Auto Mode NodeClass), "
        f"{NODE_SYSTEM_GIB} GiB of it for the system: lower one of them (clients of MLflow "
        ">= 3.15 send large files straight to S3)"
    )


def node_ephemeral_gib(workload: WorkloadProps) -> int | None:
    """The NodeClass's volume when Auto Mode's default cannot hold one server pod beside the
    system; None keeps the default (and leaves a NodeClass of an earlier deploy unchanged,
    which would otherwise replace every node of the pool)."""
    need = workload.pod_ephemeral_gib + NODE_SYSTEM_GIB
    return need if need > AUTO_MODE_EPHEMERAL_GIB else None


def node_pool_limits(workload: WorkloadProps, jobs: JobsProps | None = None) -> dict[str, str]:
    """The pool's ceiling (Karpenter's `spec.limits`, on the nodes' summed capacity): four
    times what the server's pods request at the autoscaler's maximum, plus twice the job
    runner's (`jobs.enabled`), at least POOL_FLOOR. Four: the pods, a rollout's surge pod, a
    node replacement (drift, Auto Mode's node expiry: the new node comes up before the old one
    goes), and Karpenter's rounding to the instance sizes it picks; the runner has no surge
    (Recreate). A runaway scale-up stops there instead of buying a fleet."""
    pods = workload.max_replicas or workload.replicas
    # The server container and the metrics container (20m, 128 MiB: mlflow_chart).
    cpu = 4 * pods * (cpu_millicores(workload.resources.cpu) + 20)
    memory_mib = 4 * pods * (workload.resources.memory_mib + 128)
    if jobs is not None and jobs.enabled:
        cpu += 2 * cpu_millicores(jobs.cpu)
        memory_mib += 2 * jobs.memory_mib
    vcpu = max(POOL_FLOOR[0], math.ceil(cpu / 1000))
    gib = max(POOL_FLOOR[1], math.ceil(memory_mib / 1024))
    return {"cpu": str(vcpu), "memory": f"{gib}Gi"}


@dataclass(frozen=True)
class NodePoolChartProps:
    """Strings may be CDK tokens (role name, subnet and security group IDs)."""

    name: str
    """Name of the NodeClass and the NodePool (cluster-scoped; not `default`)."""
    node_role_name: str
    """The cluster's Auto Mode node role: EKS created its access entry with the cluster."""
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    """The nodes' security groups: the cluster security group, which lets them reach the control
    plane and the cluster's other nodes, and which the load balancer controller opens to the load
    balancers."""
    database_client_security_group_id: str | None = None
    """A further group on the nodes, whose only use is to be admitted by the database: added to
    the selector and set as the nodes' DATABASE_CLIENT_LABEL. Default: none."""
    architecture: str = "amd64"
    network_policy: bool = True
    """Enforce NetworkPolicy on these nodes (DefaultAllow: only selected pods are fenced)."""
    ephemeral_storage_gib: int | None = None
    """Each node's volume (node_ephemeral_gib). Default: Auto Mode's, 80 GiB."""
    limits: dict[str, str] | None = None
    """The pool's `spec.limits` (node_pool_limits). Default: none (no ceiling)."""


class NodePoolChart(cdk8s.Chart):
    """NodeClass + NodePool for the server's pods, and the network policy controller switch.

    Attributes: `node_class`, `node_pool`, `policy_controller` (None when network policy is off).
    """

    def __init__(self, scope: Construct, id: str, *, props: NodePoolChartProps) -> None:
        super().__init__(scope, id)
        groups = list(props.security_group_ids)
        labels: dict[str, str] = {}
        if props.database_client_security_group_id:
            groups.append(props.database_client_security_group_id)
            labels[DATABASE_CLIENT_LABEL] = props.database_client_security_group_id
        node_class_spec: dict[str, object] = {
            "role": props.node_role_name,
            "subnetSelectorTerms": [{"id": subnet} for subnet in props.subnet_ids],
            # Terms are ORed: a node gets every group selected (Karpenter's NodeClass semantics,
            # https://karpenter.sh/docs/concepts/nodeclasses/#specsecuritygroupselectorterms;
            # https://docs.aws.amazon.com/eks/latest/userguide/create-node-class.html).
            "securityGroupSelectorTerms": [{"id": group} for group in groups],
        }
        if props.ephemeral_storage_gib:
            node_class_spec["ephemeralStorage"] = {"size": f"{props.ephemeral_storage_gib}Gi"}
        self.policy_controller: k8s.KubeConfigMap | None = None
        if props.network_policy:
            node_class_spec["networkPolicy"] = "DefaultAllow"
            node_class_spec["networkPolicyEventLogs"] = "Disabled"
            self.policy_controller = k8s.KubeConfigMap(
                self,
                "NetworkPolicyController",
                metadata=k8s.ObjectMeta(name="amazon-vpc-cni", namespace="kube-system"),
                data={"enable-network-policy-controller": "true"},
            )
        self.node_class = _custom_object(
            self, "NodeClass", AUTO_MODE_NODE_CLASS_API, props.name, node_class_spec
        )
        self.node_pool = _custom_object(
            self,
            "NodePool",
            KARPENTER_API,
            props.name,
            {
                "template": {
                    **({"metadata": {"labels": labels}} if labels else {}),
                    "spec": {
                        # NoSchedule: no pod without the toleration is placed here (a running one
                        # stays). Taints and labels of the template go on every node the pool
                        # launches: https://karpenter.sh/docs/concepts/nodepools/
                        "taints": [
                            {"key": DEDICATED_TAINT, "value": props.name, "effect": "NoSchedule"}
                        ],
                        "nodeClassRef": {
                            "group": "eks.amazonaws.com",
                            "kind": "NodeClass",
                            "name": props.name,
                        },
                        # What the built-in general-purpose pool offers, in one architecture.
                        "requirements": [
                            _requirement("kubernetes.io/arch", "In", props.architecture),
                            _requirement("karpenter.sh/capacity-type", "In", "on-demand"),
                            _requirement(
                                "eks.amazonaws.com/instance-category", "In", "c", "m", "r"
                            ),
                            _requirement("eks.amazonaws.com/instance-generation", "Gt", "4"),
                        ],
                    },
                },
                **({"limits": props.limits} if props.limits else {}),
            },
        )


def _custom_object(
    scope: Construct, kind: str, api_version: str, name: str, spec: dict[str, object]
) -> cdk8s.ApiObject:
    """An object of a custom resource (no generated class): kind, name and a spec."""
    api_object = cdk8s.ApiObject(
        scope, kind, api_version=api_version, kind=kind, metadata=cdk8s.ApiObjectMetadata(name=name)
    )
    api_object.add_json_patch(cdk8s.JsonPatch.add("/spec", spec))
    return api_object


def _requirement(key: str, operator: str, *values: str) -> dict[str, object]:
    return {"key": key, "operator": operator, "values": list(values)}
