"""Cluster-wide objects a new EKS Auto Mode cluster needs for the server's pods.

Auto Mode's built-in node pools cannot be changed: they are amd64-only and their node class
leaves NetworkPolicy unenforced. So the server gets its own NodeClass (network policy on) and
NodePool (the image's architecture), and the network policy controller is switched on, as the
EKS user guide describes (automode/auto-net-pol, create-node-class, create-node-pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import cdk8s
from cdk8s_plus_27 import k8s
from constructs import Construct

AUTO_MODE_NODE_CLASS_API = "eks.amazonaws.com/v1"
KARPENTER_API = "karpenter.sh/v1"


@dataclass(frozen=True)
class NodePoolChartProps:
    """Strings may be CDK tokens (role name, subnet and security group IDs)."""

    name: str
    """Name of the NodeClass and the NodePool (cluster-scoped; not `default`)."""
    node_role_name: str
    """The cluster's Auto Mode node role: EKS created its access entry with the cluster."""
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    architecture: str = "amd64"
    network_policy: bool = True
    """Enforce NetworkPolicy on these nodes (DefaultAllow: only selected pods are fenced)."""


class NodePoolChart(cdk8s.Chart):
    """NodeClass + NodePool for the server's pods, and the network policy controller switch.

    Attributes: `node_class`, `node_pool`, `policy_controller` (None when network policy is off).
    """

    def __init__(self, scope: Construct, id: str, *, props: NodePoolChartProps) -> None:
        super().__init__(scope, id)
        node_class_spec: dict[str, object] = {
            "role": props.node_role_name,
            "subnetSelectorTerms": [{"id": subnet} for subnet in props.subnet_ids],
            "securityGroupSelectorTerms": [{"id": group} for group in props.security_group_ids],
        }
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
                    "spec": {
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
                    }
                },
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
