"""Kubernetes versions we support: the one list of them, each with what must match it.

Each release names its kubectl Lambda layer (kubectl's skew policy: the client within one minor
of the cluster) and the `metrics-server` EKS add-on build the new cluster installs. The add-on is
pinned, not left to EKS's default of the day, so a deploy installs what was reviewed; a build EKS
does not offer for that version fails the cluster stack at the add-on, so each one here was
listed by `aws eks describe-addon-versions --addon-name metrics-server --kubernetes-version X`.
To add a version or move a build, run that command and take the build it marks
`defaultVersion: true` (docs/operations.md, "Kubernetes versions and add-ons").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_lambda as lambda_
from aws_cdk.lambda_layer_kubectl_v34 import KubectlV34Layer
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
from aws_cdk.lambda_layer_kubectl_v36 import KubectlV36Layer
from constructs import Construct

ADDON_VERSION = re.compile(r"v\d+\.\d+\.\d+-eksbuild\.\d+")
"""How EKS names an add-on build (DescribeAddonVersions `addonVersion`): v0.9.0-eksbuild.11."""


def addon_versions_command(addon: str, version: str) -> str:
    """The command that lists the builds of `addon` EKS offers for Kubernetes `version`."""
    return (
        f"aws eks describe-addon-versions --addon-name {addon} --kubernetes-version {version} "
        "--query 'addons[].addonVersions[].[addonVersion,compatibilities[0].defaultVersion]'"
    )


@dataclass(frozen=True)
class KubernetesRelease:
    version: str
    eks_version: eks.KubernetesVersion
    kubectl_layer: Callable[[Construct, str], lambda_.ILayerVersion]
    metrics_server: str
    """The metrics-server add-on build (`addonVersion`) for this version."""

    def __post_init__(self) -> None:
        if not ADDON_VERSION.fullmatch(self.metrics_server or ""):
            raise ValueError(
                f"Kubernetes {self.version} has no metrics-server add-on version "
                f"(got {self.metrics_server!r}); take the default build from: "
                f"{addon_versions_command('metrics-server', self.version)}"
            )


# The builds are the defaults `describe-addon-versions` reported for each version in autumn
# 2026, as recorded by teams running them (no AWS account here to re-run it): 1.36's default
# was v0.9.0-eksbuild.8 in September and v0.9.0-eksbuild.11 later; 1.34 and 1.35 list
# v0.9.0-eksbuild.5.
_RELEASES = {
    release.version: release
    for release in (
        KubernetesRelease(
            "1.34", eks.KubernetesVersion.V1_34, KubectlV34Layer, "v0.9.0-eksbuild.5"
        ),
        KubernetesRelease(
            "1.35", eks.KubernetesVersion.V1_35, KubectlV35Layer, "v0.9.0-eksbuild.5"
        ),
        KubernetesRelease(
            "1.36", eks.KubernetesVersion.V1_36, KubectlV36Layer, "v0.9.0-eksbuild.11"
        ),
    )
}
SUPPORTED_VERSIONS = tuple(_RELEASES)
"""Every version the constructs (and so the config file) accept."""
DEFAULT_VERSION = "1.36"
"""The newest: EKS ends standard support for 1.34 on 2026-12-02."""


def release(version: str) -> KubernetesRelease:
    """What goes with Kubernetes `version` ("1.35" and the like)."""
    try:
        return _RELEASES[version]
    except KeyError:
        raise ValueError(
            f"Kubernetes {version} is not supported; supported: {', '.join(SUPPORTED_VERSIONS)}"
        ) from None


def kubernetes_version(version: str) -> eks.KubernetesVersion:
    """The EKS version constant for "1.35" and the like."""
    return release(version).eks_version


def kubectl_layer(scope: Construct, id: str, version: str) -> lambda_.ILayerVersion:
    """A kubectl layer whose client matches the cluster's minor version (kubectl's skew policy)."""
    return release(version).kubectl_layer(scope, id)
