"""NetworkPolicy building blocks shared by the charts' pods."""

from __future__ import annotations

from cdk8s_plus_27 import k8s
from constructs import Construct


def tcp(*ports: int) -> list[tuple[str, int]]:
    return [("TCP", port) for port in ports]


def egress(
    ports: list[tuple[str, int]], *, to_pods: dict[str, str] | None = None
) -> k8s.NetworkPolicyEgressRule:
    """Out to these (protocol, port)s; only to pods with these labels when given."""
    return k8s.NetworkPolicyEgressRule(
        ports=[
            k8s.NetworkPolicyPort(protocol=protocol, port=k8s.IntOrString.from_number(port))
            for protocol, port in ports
        ],
        to=[k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=to_pods))]
        if to_pods
        else None,
    )


def dns() -> k8s.NetworkPolicyEgressRule:
    return egress([("UDP", 53), ("TCP", 53)])


def egress_only(
    scope: Construct,
    id: str,
    *,
    name: str,
    pods: dict[str, str],
    rules: list[k8s.NetworkPolicyEgressRule],
) -> k8s.KubeNetworkPolicy:
    """A policy for pods nothing connects to: no ingress at all, egress by `rules` only."""
    return k8s.KubeNetworkPolicy(
        scope,
        id,
        metadata=k8s.ObjectMeta(name=name),
        spec=k8s.NetworkPolicySpec(
            pod_selector=k8s.LabelSelector(match_labels=pods),
            policy_types=["Ingress", "Egress"],
            egress=rules,
        ),
    )
