"""Kubernetes versions we support, each with its matching kubectl Lambda layer."""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_lambda as lambda_
from aws_cdk.lambda_layer_kubectl_v34 import KubectlV34Layer
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
from aws_cdk.lambda_layer_kubectl_v36 import KubectlV36Layer
from constructs import Construct

_VERSIONS: dict[
    str, tuple[eks.KubernetesVersion, Callable[[Construct, str], lambda_.ILayerVersion]]
] = {
    "1.34": (eks.KubernetesVersion.V1_34, KubectlV34Layer),
    "1.35": (eks.KubernetesVersion.V1_35, KubectlV35Layer),
    "1.36": (eks.KubernetesVersion.V1_36, KubectlV36Layer),
}
SUPPORTED_VERSIONS = tuple(_VERSIONS)
"""Every version the constructs (and so the config file) accept; the one list of them."""
DEFAULT_VERSION = "1.36"
"""The newest: EKS ends standard support for 1.34 on 2026-12-02."""


def _entry(
    version: str,
) -> tuple[eks.KubernetesVersion, Callable[[Construct, str], lambda_.ILayerVersion]]:
    try:
        return _VERSIONS[version]
    except KeyError:
        raise ValueError(
            f"Kubernetes {version} is not supported; supported: {', '.join(SUPPORTED_VERSIONS)}"
        ) from None


def kubernetes_version(version: str) -> eks.KubernetesVersion:
    """The EKS version constant for "1.35" and the like."""
    return _entry(version)[0]


def kubectl_layer(scope: Construct, id: str, version: str) -> lambda_.ILayerVersion:
    """A kubectl layer whose client matches the cluster's minor version (kubectl's skew policy)."""
    return _entry(version)[1](scope, id)
