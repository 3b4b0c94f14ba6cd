"""What a user meets in the first hour after `cdk deploy`, pinned in the synthesized templates:
who can use kubectl, the API endpoint, metrics for the autoscaler, nodes of the image's
architecture with NetworkPolicy enforced, re-deploys over leftovers, and teardown guards."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Match

from config import ConfigError, parse_settings
from mlflow_on_eks.constructs_lib.kubernetes import (
    ADDON_VERSION,
    SUPPORTED_VERSIONS,
    KubernetesRelease,
    addon_versions_command,
    kubernetes_version,
    release,
)
from mlflow_on_eks.constructs_lib.review import render_intrinsics
from mlflow_on_eks.k8s_charts.node_pool_chart import node_pool_limits
from tests.conftest import CONFIGS, Synth, only_resource, resources_of, synthesize
from tests.unit.test_settings import EXISTING

SynthFn = Callable[[str], Synth]
ADMIN = "arn:aws:iam::111122223333:role/platform-admins"
# The settings a platform team would change first: Graviton, autoscaling, a private endpoint.
VARIANT = {
    "cluster": {"endpoint_access": "private", "admin_role_arns": [ADMIN]},
    "server": {"architecture": "arm64", "replicas": 2, "max_replicas": 5},
}


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("variant", parse_settings(VARIANT), tmp_path_factory.mktemp("variant"))


def _manifest_text(template: dict[str, Any], logical_id_part: str) -> str:
    """The manifest property as JSON text: with tokens inside it is an Fn::Join of escaped
    JSON fragments, so objects are matched as escaped fragments."""
    found = [
        r
        for key, r in resources_of(template, "Custom::AWSCDK-EKS-KubernetesResource").items()
        if logical_id_part in key
    ]
    assert len(found) == 1, f"expected one manifest {logical_id_part}"
    return json.dumps(found[0]["Properties"]["Manifest"])


def _access_principals(template: dict[str, Any]) -> list[Any]:
    return [
        r["Properties"]["PrincipalArn"]
        for r in resources_of(template, "AWS::EKS::AccessEntry").values()
    ]


def test_default_cluster_admits_the_cdk_deploy_role(synth: SynthFn) -> None:
    principals = _access_principals(synth("default").templates["Cluster"])
    assert {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/"
        "cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}"
    } in principals


def test_configured_admins_replace_the_default(variant: Synth) -> None:
    principals = _access_principals(variant.templates["Cluster"])
    assert ADMIN in principals
    assert not any("deploy-role" in json.dumps(p) for p in principals)


def test_kubeconfig_output_assumes_an_admin_role(synth: SynthFn, variant: Synth) -> None:
    default = synth("default").templates["Mlflow"]["Outputs"]["KubeconfigCommand"]["Value"]
    assert "--role-arn" in json.dumps(default) and "deploy-role" in json.dumps(default)
    chosen = variant.templates["Mlflow"]["Outputs"]["KubeconfigCommand"]["Value"]
    assert ADMIN in json.dumps(chosen)
    imported = synth("existing-cluster")
    existing = imported.templates["Mlflow"]["Outputs"]["KubeconfigCommand"]
    # The stack's region named: the CLI's default region may be another.
    assert render_intrinsics(existing["Value"]) == (
        f"aws eks update-kubeconfig --region {imported.settings.aws.region} --name platform-prod"
    )
    assert "--region ${Ref:AWS::Region} --name" in render_intrinsics(default)
    # The CLI reads the cluster with the caller's own credentials before any role is used.
    for output in (existing, synth("default").templates["Mlflow"]["Outputs"]["KubeconfigCommand"]):
        assert (
            "needs eks:DescribeCluster on this cluster for your own identity"
            in (output["Description"])
        )


def test_endpoint_access_follows_the_setting(synth: SynthFn, variant: Synth) -> None:
    _, default = only_resource(synth("default").templates["Cluster"], "AWS::EKS::Cluster")
    vpc_config = default["Properties"]["ResourcesVpcConfig"]
    assert vpc_config["EndpointPublicAccess"] is True
    assert vpc_config["EndpointPrivateAccess"] is True
    assert vpc_config["PublicAccessCidrs"] == ["0.0.0.0/0"]
    _, private = only_resource(variant.templates["Cluster"], "AWS::EKS::Cluster")
    assert private["Properties"]["ResourcesVpcConfig"]["EndpointPublicAccess"] is False
    assert private["Properties"]["ResourcesVpcConfig"]["EndpointPrivateAccess"] is True


def test_new_clusters_serve_metrics_to_the_autoscaler(synth: SynthFn) -> None:
    # The autoscaler always exists (pinned when max_replicas is unset); Auto Mode has no
    # metrics-server of its own. The build is the one listed beside the cluster's version, never
    # EKS's default of the day.
    seen = {}
    for name in CONFIGS:
        result = synth(name)
        if "Cluster" not in result.templates:  # an existing cluster: no add-on of ours
            continue
        _, addon = only_resource(result.templates["Cluster"], "AWS::EKS::Addon")
        assert addon["Properties"]["AddonName"] == "metrics-server"
        version = result.settings.cluster.kubernetes_version
        seen[version] = addon["Properties"]["AddonVersion"]
        assert seen[version] == release(version).metrics_server, name
    assert len(seen) >= 2, f"the configs exercise one Kubernetes version only: {seen}"


def test_every_supported_version_names_a_metrics_server_build() -> None:
    builds = {version: release(version).metrics_server for version in SUPPORTED_VERSIONS}
    assert all(ADDON_VERSION.fullmatch(build) for build in builds.values()), builds


@pytest.mark.parametrize("build", [None, "", "latest", "0.9.0", "v0.9.0-eksbuild"])
def test_a_version_without_an_add_on_build_is_refused_with_the_command(build: Any) -> None:
    with pytest.raises(ValueError) as error:
        KubernetesRelease("1.37", kubernetes_version("1.36"), lambda scope, id: None, build)  # type: ignore[arg-type, return-value]
    message = str(error.value)
    assert "Kubernetes 1.37 has no metrics-server add-on version" in message
    assert addon_versions_command("metrics-server", "1.37") in message


@pytest.mark.parametrize("config", ["default", "variant"])
def test_server_node_pool_has_the_images_arch_and_enforces_policy(
    config: str, synth: SynthFn, variant: Synth
) -> None:
    result = variant if config == "variant" else synth(config)
    arch = result.settings.server.architecture
    text = _manifest_text(result.templates["Cluster"], "WorkloadNodePool")
    for fragment in (
        '\\"kind\\":\\"NodeClass\\"',
        '\\"networkPolicy\\":\\"DefaultAllow\\"',
        '\\"kind\\":\\"NodePool\\"',
        f'\\"key\\":\\"kubernetes.io/arch\\",\\"operator\\":\\"In\\",\\"values\\":[\\"{arch}\\"]',
        '\\"name\\":\\"amazon-vpc-cni\\",\\"namespace\\":\\"kube-system\\"',
        '\\"enable-network-policy-controller\\":\\"true\\"',
    ):
        assert fragment in text, fragment
    deployment = result.object("Deployment", "mlflow")
    selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
    assert {k: selector[k] for k in ("kubernetes.io/arch", "karpenter.sh/nodepool")} == {
        "kubernetes.io/arch": arch,
        "karpenter.sh/nodepool": "mlflow",
    }


def test_image_is_built_for_the_configured_architecture(variant: Synth) -> None:
    assets = json.loads(next(variant.outdir.glob("*Mlflow*.assets.json")).read_text())
    [image] = assets["dockerImages"].values()
    assert image["source"]["platform"] == "linux/arm64"


def test_existing_cluster_pods_pin_only_the_architecture(synth: SynthFn) -> None:
    spec = synth("existing-cluster").object("Deployment", "mlflow")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "amd64"}


def test_manifests_apply_over_leftovers(each_config: Synth) -> None:
    template = each_config.template("Mlflow")
    template.has_resource_properties(
        "Custom::AWSCDK-EKS-KubernetesResource", {"Overwrite": True, "Manifest": Match.any_value()}
    )


def test_deleting_a_stack_under_another_is_refused_by_cloudformation(synth: SynthFn) -> None:
    """Weak cross-stack references would let the network or cluster stack go first; one strong
    export each, imported by the stacks that live on them, makes CloudFormation refuse."""
    default = synth("default")
    network_exports = {
        o["Export"]["Name"]
        for o in default.templates["Network"]["Outputs"].values()
        if "Export" in o
    }
    cluster_exports = {
        o["Export"]["Name"]
        for o in default.templates["Cluster"]["Outputs"].values()
        if "Export" in o
    }
    assert len(network_exports) == 1 and len(cluster_exports) == 1

    def imports(stack: str) -> set[str]:
        text = json.dumps(default.templates[stack])
        return {
            name
            for name in network_exports | cluster_exports
            if f'"Fn::ImportValue": "{name}"' in text
        }

    assert imports("Data") == network_exports
    assert imports("Cluster") == network_exports
    assert imports("Mlflow") == cluster_exports


def test_destroying_the_cluster_takes_the_server_stack_first(synth: SynthFn) -> None:
    """`cdk destroy <cluster stack>` also selects the stacks that depend on it."""
    manifest = json.loads((synth("default").outdir / "manifest.json").read_text())
    server = next(a for a in manifest["artifacts"].values() if a.get("displayName") == "Mlflow")
    assert any("Cluster" in dependency for dependency in server["dependencies"])


def _node_pool_objects(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The NodeClass and NodePool the cluster stack applies, by kind."""
    manifest = json.loads(_manifest_text(template, "WorkloadNodePool"))
    # With tokens inside string values, the manifest is an Fn::Join of JSON fragments.
    parts = manifest["Fn::Join"][1] if isinstance(manifest, dict) else [manifest]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return {o["kind"]: o for o in json.loads(text)}


def _pod_ephemeral_requests(deployment: dict[str, Any]) -> int:
    """GiB of ephemeral storage the server pod's (long-running) containers request."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    quantities = [c["resources"]["requests"]["ephemeral-storage"] for c in containers]
    assert all(q.endswith("Gi") for q in quantities), quantities
    return sum(int(q.removesuffix("Gi")) for q in quantities)


@pytest.mark.parametrize(
    ("server", "volume_gib"),
    [
        # The default pod (7 GiB) fits on Auto Mode's 80 GiB volume: the NodeClass names none.
        ({}, None),
        # 64 GiB x 2 transfers + 1 GiB of overhead: 131 GiB per pod, and the system's 30.
        ({"max_proxied_artifact_gib": 64}, 161),
    ],
)
def test_a_new_clusters_nodes_hold_the_pod_and_the_pool_has_a_ceiling(
    server: dict[str, Any], volume_gib: int | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = parse_settings({"server": {"max_replicas": 4, **server}})
    result = synthesize("sized", settings, tmp_path_factory.mktemp("sized"))
    pod_gib = _pod_ephemeral_requests(result.object("Deployment", "mlflow"))
    assert pod_gib == settings.server.pod_ephemeral_gib  # one formula for both
    objects = _node_pool_objects(result.templates["Cluster"])
    storage = objects["NodeClass"]["spec"].get("ephemeralStorage")
    if volume_gib is None:
        assert storage is None and pod_gib + 30 <= 80
    else:
        assert storage == {"size": f"{volume_gib}Gi"} and pod_gib + 30 == volume_gib
    # Four times the pods at the autoscaler's maximum (4 x 520m, 1152 MiB) and twice the job
    # runner (500m, 2048 MiB), at least 16 vCPU and 64 GiB.
    assert objects["NodePool"]["spec"]["limits"] == {"cpu": "16", "memory": "64Gi"}
    bigger = settings.server.replace(max_replicas=20)
    assert node_pool_limits(bigger, settings.jobs) == {"cpu": "43", "memory": "94Gi"}
    assert node_pool_limits(bigger, settings.jobs.replace(enabled=False)) == {
        "cpu": "42",
        "memory": "90Gi",
    }


def test_a_pod_no_node_volume_can_hold_fails_the_synth_with_the_key() -> None:
    # Memory for the 64 uploads' parts (rules.streamed_uploads_mib): the storage is what fails.
    raw = {
        "server": {
            "max_proxied_artifact_gib": 1024,
            "concurrent_artifact_transfers": 64,
            "resources": {"memory_mib": 36 * 1024},
        }
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    message = str(caught.value)
    assert "server.concurrent_artifact_transfers: max_proxied_artifact_gib x " in message
    assert "65539 GiB of ephemeral storage per pod" in message
    # An existing cluster's nodes are the user's: the rule is a new cluster's.
    existing = parse_settings({**raw, "cluster": EXISTING})
    assert existing.server.pod_ephemeral_gib == 65539
