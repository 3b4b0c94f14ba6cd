"""NetworkPolicy building blocks shared by the charts' pods."""

from __future__ import annotations

from cdk8s_plus_27 import k8s
from constructs import Construct


def tcp(*ports: int) -> list[tuple[str, int]]:
    return [("TCP", port) for port in ports]


def _ports(ports: list[tuple[str, int]]) -> list[k8s.NetworkPolicyPort]:
    return [
        k8s.NetworkPolicyPort(protocol=protocol, port=k8s.IntOrString.from_number(port))
        for protocol, port in ports
    ]


def egress(
    ports: list[tuple[str, int]], *, to_pods: dict[str, str] | None = None
) -> k8s.NetworkPolicyEgressRule:
    """Out to these (protocol, port)s; only to pods with these labels when given."""
    return k8s.NetworkPolicyEgressRule(
        ports=_ports(ports),
        to=[k8s.NetworkPolicyPeer(pod_selector=k8s.LabelSelector(match_labels=to_pods))]
        if to_pods
        else None,
    )


def ingress(
    ports: list[tuple[str, int]], *, from_: list[k8s.NetworkPolicyPeer] | None = None
) -> k8s.NetworkPolicyIngressRule:
    """In on these (protocol, port)s; from anywhere, or only from `from_` when given."""
    return k8s.NetworkPolicyIngressRule(ports=_ports(ports), from_=from_)


def pods_in_namespaces(
    namespace_labels: dict[str, str], pod_labels: dict[str, str]
) -> k8s.NetworkPolicyPeer:
    """Pods with `pod_labels` in namespaces with `namespace_labels`; an empty map matches every
    namespace (every pod). Always a namespaceSelector: without one, a podSelector alone means
    the policy's own namespace only. Selectors match pods' addresses, so a VPC neighbour, a
    node or a load balancer is not admitted (Kubernetes docs, Network Policies: "Behavior of
    to and from selectors")."""
    return k8s.NetworkPolicyPeer(
        namespace_selector=k8s.LabelSelector(match_labels=namespace_labels or None),
        pod_selector=k8s.LabelSelector(match_labels=pod_labels) if pod_labels else None,
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
