"""Fine-grained promises of the synthesized templates, one test per promise."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match

from config import Settings, load_settings
from mlflow_on_eks.constructs_lib import MlflowTrackingServer
from mlflow_on_eks.constructs_lib.review import render_intrinsics
from mlflow_on_eks.constructs_lib.tracking_server import CONFIG_DIGEST_ANNOTATION
from mlflow_on_eks.k8s_charts.node_pool_chart import DATABASE_CLIENT_LABEL, DEDICATED_TAINT
from stacks import build_deployment
from tests.conftest import (
    CONFIGS,
    Synth,
    cdk_json_context,
    only_resource,
    primary_database,
    resources_of,
    synthesize,
)

SynthFn = Callable[[str], Synth]
NEW_CLUSTER_CONFIGS = sorted(
    name for name, path in CONFIGS.items() if load_settings(path).cluster.mode == "new"
)


def resources(synth: Synth, stack: str, type_: str) -> dict[str, dict[str, Any]]:
    return resources_of(synth.templates[stack], type_)


def only(synth: Synth, stack: str, type_: str) -> tuple[str, dict[str, Any]]:
    return only_resource(synth.templates[stack], type_)


def _database_secret(synth: Synth) -> dict[str, Any]:
    [secret] = [
        r
        for key, r in resources(synth, "Data", "AWS::SecretsManager::Secret").items()
        if key.startswith("DataDatabaseSecret")
    ]
    return secret


def _database_port(synth: Synth) -> int:
    """The port the configuration's database listens on: an existing instance's, or the
    engine's for one the app creates."""
    database = synth.settings.database
    return database.existing.port or {"mysql": 3306, "postgres": 5432}[database.engine]


# --- stacks and their wiring ----------------------------------------------------------------


def test_new_cluster_makes_four_stacks(synth: SynthFn) -> None:
    assert set(synth("default").templates) == {"Network", "Data", "Cluster", "Mlflow"}


def test_existing_cluster_makes_no_network_or_cluster(synth: SynthFn) -> None:
    assert set(synth("existing-cluster").templates) == {"Data", "Mlflow"}


def test_stack_names_carry_the_configured_prefix(synth: SynthFn) -> None:
    deployment = synth("postgres").deployment
    assert deployment.data.stack_name == "mlflow-pg-data"
    assert deployment.mlflow.stack_name == "mlflow-pg-server"


# --- network --------------------------------------------------------------------------------


def test_vpc_has_public_private_and_isolated_subnets(synth: SynthFn) -> None:
    template = synth("default").template("Network")
    for subnet_type in ("Public", "Private", "Isolated"):
        template.has_resource(
            "AWS::EC2::Subnet",
            {
                "Properties": Match.object_like(
                    {
                        "Tags": Match.array_with(
                            [{"Key": "aws-cdk:subnet-type", "Value": subnet_type}]
                        )
                    }
                )
            },
        )
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"VpcEndpointType": "Gateway", "ServiceName": Match.any_value()},
    )
    template.resource_count_is("AWS::EC2::FlowLog", 1)


# --- data -----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["default", "postgres"])
def test_database_is_encrypted_private_backed_up_and_protected(synth: SynthFn, config: str) -> None:
    s = synth(config)
    _, db = only(s, "Data", "AWS::RDS::DBInstance")
    props = db["Properties"]
    assert props["StorageEncrypted"] is True
    assert props["PubliclyAccessible"] is False
    assert props["DeletionProtection"] is True
    assert props["BackupRetentionPeriod"] == s.settings.database.backup_retention_days
    assert props["MultiAZ"] is s.settings.database.multi_az
    assert db["DeletionPolicy"] == "Snapshot"
    assert db["UpdateReplacePolicy"] == "Snapshot"


def test_database_lives_in_isolated_subnets(synth: SynthFn) -> None:
    s = synth("default")
    _, group = only(s, "Data", "AWS::RDS::DBSubnetGroup")
    network = s.templates["Network"]["Resources"]
    isolated = {
        logical_id
        for logical_id, r in network.items()
        if r["Type"] == "AWS::EC2::Subnet"
        and {"Key": "aws-cdk:subnet-type", "Value": "Isolated"} in r["Properties"]["Tags"]
    }
    referenced = set(
        re.findall(r"(IsolatedSubnet\d)", json.dumps(group["Properties"]["SubnetIds"]))
    )
    assert referenced and all(any(ref in i for i in isolated) for ref in referenced)
    assert not re.search(
        r"PrivateSubnet|PublicSubnet", json.dumps(group["Properties"]["SubnetIds"])
    )


@pytest.mark.parametrize(
    ("config", "family", "parameters"),
    [
        # RDS documents 0/1 for MySQL 8.4's instance parameter (mysql-ssl-connections); and
        # MLflow's migrations create triggers under RDS's binary logging, without SUPER.
        (
            "default",
            "mysql8.4",
            {"require_secure_transport": "1", "log_bin_trust_function_creators": "1"},
        ),
        ("postgres", "postgres17", {"rds.force_ssl": "1"}),
    ],
)
def test_parameter_group_requires_tls_and_allows_migrations(
    synth: SynthFn, config: str, family: str, parameters: dict[str, str]
) -> None:
    synth(config).template("Data").has_resource_properties(
        "AWS::RDS::DBParameterGroup", {"Family": family, "Parameters": parameters}
    )


def test_credentials_are_generated_into_secrets_manager(synth: SynthFn) -> None:
    s = synth("default")
    secret = _database_secret(s)
    generate = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generate["SecretStringTemplate"]) == {"username": "mlflow"}
    assert generate["GenerateStringKey"] == "password"
    _, db = only(s, "Data", "AWS::RDS::DBInstance")
    assert "resolve:secretsmanager" in json.dumps(db["Properties"]["MasterUserPassword"])


@pytest.fixture(params=NEW_CLUSTER_CONFIGS)
def new_cluster(request: pytest.FixtureRequest, synth: SynthFn) -> Synth:
    """Each configuration with a new cluster, synthesized."""
    return synth(request.param)


def _stack_output(s: Synth, value: Any) -> tuple[str, Any]:
    """What a weak cross-stack reference stands for: (stack id, the output's value)."""
    reference = value["Fn::GetStackOutput"]
    [stack] = [
        stack
        for stack in (s.deployment.network, s.deployment.data, s.deployment.cluster)
        if stack is not None and stack.stack_name == reference["StackName"]
    ]
    return stack.node.id, s.templates[stack.node.id]["Outputs"][reference["OutputName"]]["Value"]


def _database_ingress(s: Synth) -> list[dict[str, Any]]:
    """Every ingress rule of the database's security group, in whichever stack."""
    group_id, group = only(s, "Data", "AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in group["Properties"], "no inline rule"
    rules = []
    for template in s.templates.values():
        for rule in resources_of(template, "AWS::EC2::SecurityGroupIngress").values():
            target = rule["Properties"]["GroupId"]
            if "Fn::GetStackOutput" in target:
                target = _stack_output(s, target)[1]
            if target == {"Fn::GetAtt": [group_id, "GroupId"]}:
                rules.append(rule["Properties"])
    return rules


def _database_client_group(s: Synth) -> str:
    """Logical ID, in the cluster stack, of the one group the database admits."""
    [rule] = _database_ingress(s)
    stack, value = _stack_output(s, rule["SourceSecurityGroupId"])
    assert stack == "Cluster"
    logical_id, attribute = value["Fn::GetAtt"]
    assert attribute == "GroupId"
    return str(logical_id)


def test_database_admits_only_the_mlflow_node_pools_group_on_its_port(new_cluster: Synth) -> None:
    s = new_cluster
    [rule] = _database_ingress(s)
    port = {"mysql": 3306, "postgres": 5432}[s.settings.database.engine]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", port, port)
    assert not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(rule)
    group = s.templates["Cluster"]["Resources"][_database_client_group(s)]
    # A group of its own, not the cluster security group every pod carries; with no rules (CDK's
    # egress placeholder matches nothing), and without the tag that would make the load
    # balancer controller open it to the NLBs instead of the cluster group.
    assert group["Type"] == "AWS::EC2::SecurityGroup"
    assert "SecurityGroupIngress" not in group["Properties"]
    egress = group["Properties"]["SecurityGroupEgress"]
    assert [r["CidrIp"] for r in egress] == ["255.255.255.255/32"]
    tags = [t["Key"] for t in group["Properties"].get("Tags", [])]
    assert not [t for t in tags if t.startswith("kubernetes.io/cluster/")]


def test_only_the_tainted_mlflow_pool_carries_the_database_client_group(new_cluster: Synth) -> None:
    s = new_cluster
    client = _database_client_group(s)
    [text] = [
        render_intrinsics(r["Properties"]["Manifest"])
        for r in resources(s, "Cluster", "Custom::AWSCDK-EKS-KubernetesResource").values()
        if client in json.dumps(r["Properties"]["Manifest"])
    ]
    objects = {o["kind"]: o for o in json.loads(text)}
    eks_cluster, _ = only(s, "Cluster", "AWS::EKS::Cluster")
    group = f"${{GetAtt:{client}.GroupId}}"
    # Beside the cluster security group, which keeps the nodes in the cluster and open to the
    # load balancers.
    assert objects["NodeClass"]["spec"]["securityGroupSelectorTerms"] == [
        {"id": f"${{GetAtt:{eks_cluster}.ClusterSecurityGroupId}}"},
        {"id": group},
    ]
    template = objects["NodePool"]["spec"]["template"]
    assert template["metadata"]["labels"] == {DATABASE_CLIENT_LABEL: group}
    assert template["spec"]["taints"] == [
        {"key": DEDICATED_TAINT, "value": "mlflow", "effect": "NoSchedule"}
    ]


def _pod_specs(s: Synth) -> dict[str, dict[str, Any]]:
    """The pod spec of every workload the server stack applies, by kind/name."""
    specs = {}
    for obj in s.manifests:
        if obj["kind"] in ("Deployment", "Job", "CronJob"):
            spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
            specs[f"{obj['kind']}/{obj['metadata']['name']}"] = spec["template"]["spec"]
    return specs


def test_pods_that_open_the_database_start_only_where_it_admits_them(new_cluster: Synth) -> None:
    s = new_cluster
    [rule] = _database_ingress(s)
    group = render_intrinsics(rule["SourceSecurityGroupId"])
    specs = _pod_specs(s)
    # The server, the job runner and gc open the database; the deploy check does not, but
    # runs beside them.
    kinds = sorted(name.split("/")[0] for name in specs)
    gc, check = s.settings.gc.enabled, s.settings.deploy_check.enabled
    runner = s.settings.jobs.enabled
    sso = s.settings.auth.enabled and s.settings.auth.sso.enabled
    # The migration Job opens it too.
    # With the check, its on-demand CronJob (make verify) too; with the sign-in load
    # balancer, its secret sync's Job and CronJob.
    jobs = 1 + check + sso
    deployments = ["Deployment"] * (1 + runner)
    assert kinds == ["CronJob"] * (gc + check + sso) + deployments + ["Job"] * jobs
    for name, spec in specs.items():
        # MLflow's pool, whose taint they tolerate, on nodes that carry the very group the
        # database admits (never an older node of the pool).
        assert spec["nodeSelector"]["karpenter.sh/nodepool"] == "mlflow", name
        assert spec["nodeSelector"][DATABASE_CLIENT_LABEL] == group, name
        assert spec["tolerations"] == [
            {"key": DEDICATED_TAINT, "operator": "Equal", "value": "mlflow", "effect": "NoSchedule"}
        ], name


def test_existing_cluster_database_admits_only_the_given_client_group(synth: SynthFn) -> None:
    s = synth("existing-cluster")
    [rule] = _database_ingress(s)
    assert rule["SourceSecurityGroupId"] == s.settings.cluster.database_client_security_group_id
    assert rule["SourceSecurityGroupId"] != s.settings.cluster.security_group_id
    Annotations.from_stack(s.deployment.mlflow).has_no_warning("*", Match.any_value())


def test_existing_cluster_without_a_client_group_admits_the_cluster_and_says_so(
    tmp_path: Path,
) -> None:
    settings = load_settings(CONFIGS["existing-cluster"])
    cluster = settings.cluster.model_copy(update={"database_client_security_group_id": None})
    s = synthesize("shared", settings.model_copy(update={"cluster": cluster}), tmp_path)
    [rule] = _database_ingress(s)
    assert rule["SourceSecurityGroupId"] == settings.cluster.security_group_id
    # A warning (the synth succeeds) that says what is shared and how to narrow it.
    annotations = Annotations.from_stack(s.deployment.mlflow)
    [warning] = annotations.find_warning("*", Match.any_value())
    message = str(warning.entry.data)
    assert settings.cluster.security_group_id in message
    assert "every workload on the cluster can open the database port" in message
    assert "database_client_security_group_id" in message
    annotations.has_no_error("*", Match.any_value())


def _sign_in_over_plain_http(settings: Settings) -> bool:
    internal = settings.exposure.internal
    return settings.auth.enabled and internal.enabled and internal.certificate_arn is None


def _plain_http_warnings(stack: cdk.Stack) -> list[str]:
    warnings = Annotations.from_stack(stack).find_warning("*", Match.any_value())
    return [str(w.entry.data) for w in warnings if "plain HTTP" in str(w.entry.data)]


def test_sign_in_over_plain_http_is_said_at_synth(each_config: Synth) -> None:
    """Exactly where a password would cross the VPC in clear: sign-in on and the internal load
    balancer without a certificate (default, new-cluster, postgres); not with TLS on
    (existing-cluster, test-maximal), nor with sign-in off (test-private, test-minimal)."""
    found = _plain_http_warnings(each_config.deployment.mlflow)
    if not _sign_in_over_plain_http(each_config.settings):
        assert found == []
        return
    [message] = found
    assert "every request's basic-auth password crosses the VPC in clear" in message
    assert "Set exposure.internal.certificate_arn" in message
    assert "exposure.internal.hostname" in message
    assert message.endswith("[ack: mlflow:sign-in-over-plain-http]")
    [warning] = Annotations.from_stack(each_config.deployment.mlflow).find_warning(
        "*", Match.string_like_regexp("plain HTTP")
    )
    assert warning.id == "/Mlflow/TrackingServer"


def test_every_case_of_the_warning_is_among_the_configs() -> None:
    """The configurations above hold both outcomes, with each reason for no warning."""
    settings = {name: load_settings(path) for name, path in CONFIGS.items()}
    warned = {name for name, s in settings.items() if _sign_in_over_plain_http(s)}
    assert warned >= {"default"}
    quiet = [s for name, s in settings.items() if name not in warned]
    assert any(s.auth.enabled and s.exposure.internal.tls for s in quiet)
    assert any(not s.auth.enabled and s.exposure.internal.enabled for s in quiet)


def test_no_internal_load_balancer_no_plain_http_warning(tmp_path: Path) -> None:
    """Sign-in on, but no internal load balancer: nothing crosses the VPC through it."""
    settings = load_settings(None)
    exposure = settings.exposure.replace(internal=False)
    s = synthesize("no-internal", settings.model_copy(update={"exposure": exposure}), tmp_path)
    assert s.settings.auth.enabled
    assert _plain_http_warnings(s.deployment.mlflow) == []


def test_bucket_is_private_encrypted_versioned_and_retained(synth: SynthFn) -> None:
    s = synth("default")
    _, bucket = only(s, "Data", "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert (
        props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == "AES256"
    )
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain"


def test_bucket_policy_denies_requests_without_tls(synth: SynthFn) -> None:
    synth("default").template("Data").has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Principal": {"AWS": "*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_an_existing_instance_and_bucket_are_used_not_created(synth: SynthFn) -> None:
    """config/examples/existing-data.yaml: the data stack makes neither an RDS instance (nor
    its subnet group, parameter group or security group) nor a bucket, only the server's own
    database login and the sign-in secrets; the server stack opens the instance's own group
    on its port and hands the pods the given endpoint, secret and bucket prefix."""
    s = synth("existing-data")
    existing, bucket = s.settings.database.existing, s.settings.artifacts.existing
    data_types = {r["Type"] for r in s.templates["Data"]["Resources"].values()}
    assert data_types == {"AWS::SecretsManager::Secret"}
    [ingress] = resources(s, "Mlflow", "AWS::EC2::SecurityGroupIngress").values()
    rule = ingress["Properties"]
    assert rule["GroupId"] == existing.security_group_id
    assert (rule["FromPort"], rule["ToPort"]) == (existing.port, existing.port)
    assert rule["SourceSecurityGroupId"] == s.settings.cluster.database_client_security_group_id
    config = s.object("ConfigMap", "mlflow-config")["data"]
    assert (config["MLFLOW_DB_HOST"], config["MLFLOW_DB_PORT"]) == (
        existing.endpoint,
        str(existing.port),
    )
    assert config["MLFLOW_ARTIFACTS_DESTINATION"] == f"s3://{bucket.bucket_name}/{bucket.prefix}"
    [job] = [j for j in s.objects("Job") if "-migrate-" in j["metadata"]["name"]]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in migrate["env"]}
    assert env["MLFLOW_DB_ADMIN_SECRET_ID"] == existing.secret_arn
    outputs = s.templates["Mlflow"]["Outputs"]
    assert outputs["DatabaseEndpoint"]["Value"] == existing.endpoint
    assert outputs["DatabaseSecretArn"]["Value"] == existing.secret_arn
    assert outputs["ArtifactBucketName"]["Value"] == bucket.bucket_name
    # An existing instance's storage is its owner's to watch: no free storage alarm here.
    alarms = resources(s, "Mlflow", "AWS::CloudWatch::Alarm")
    assert not [k for k in alarms if "FreeStorage" in k]
    assert [k for k in alarms if "DatabaseConnections" in k]


def test_data_stack_has_termination_protection(each_config: Synth) -> None:
    assert each_config.deployment.data.termination_protection is True


# --- identity -------------------------------------------------------------------------------


# --- image and workloads ---------------------------------------------------------------------


def test_image_is_a_docker_asset_for_amd64(synth: SynthFn) -> None:
    s = synth("default")
    manifest = json.loads((s.outdir / "Mlflow.assets.json").read_text())
    [image] = manifest["dockerImages"].values()
    assert image["source"]["directory"].startswith("asset.")
    assert image["source"]["platform"] == "linux/amd64"
    built = s.outdir / image["source"]["directory"]
    assert (built / "Dockerfile").is_file()


def test_deployment_uses_service_account_and_asset_image(each_config: Synth) -> None:
    deployment = each_config.object("Deployment", "mlflow")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "mlflow"
    images = {c["image"] for c in spec["containers"] + spec["initContainers"]}
    assert len(images) == 1
    [image] = images
    assets = json.loads((each_config.outdir / "Mlflow.assets.json").read_text())
    [destination] = next(iter(assets["dockerImages"].values()))["destinations"].values()
    assert "container-assets" in destination["repositoryName"]
    assert image.endswith(f"/{destination['repositoryName']}:{destination['imageTag']}")
    sa = each_config.object("ServiceAccount", "mlflow")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("${GetAtt:")


def test_manifest_is_applied_in_the_server_stack(each_config: Synth) -> None:
    manifests = resources(each_config, "Mlflow", "Custom::AWSCDK-EKS-KubernetesResource")
    # The load balancers (when there is one), the workload, and the deploy check's Job after it.
    exposure = each_config.settings.exposure
    expected = 1 + (exposure.internal.enabled or exposure.external.enabled)
    assert len(manifests) == expected + each_config.settings.deploy_check.enabled
    if "Cluster" in each_config.templates:
        cluster = each_config.templates["Cluster"]["Resources"]
        assert not [
            r
            for r in cluster.values()
            if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource"
            and "Deployment" in json.dumps(r)
        ]


def test_the_load_balancers_come_first_and_the_server_allows_their_names_only(
    each_config: Synth,
) -> None:
    exposure = each_config.settings.exposure
    kinds = ["internal"] * exposure.internal.enabled + ["external"] * exposure.external.enabled
    auth = each_config.settings.auth
    kinds += ["sso"] * (auth.enabled and auth.sso.enabled)
    template = each_config.templates["Mlflow"]["Resources"]
    found = {k: r for k, r in template.items() if k.startswith("TrackingServerLoadBalancers")}
    reads = {
        k: r
        for k, r in template.items()
        if r["Type"] == "Custom::AWSCDK-EKS-KubernetesObjectValue" and "LoadBalancerHost" in k
    }
    data = each_config.object("ConfigMap", "mlflow-config")["data"]
    hosts = data["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert not [h for h in hosts if ".elb." in h], "a pattern of names, not the names"
    named = sorted(h for h in hosts if h.startswith("${GetAtt:"))
    if not kinds:
        assert (found, reads, named) == ({}, {}, [])
        return
    [(manifest_id, manifest)] = found.items()
    # Retained: removing it in the rollback of the deploy that added it would delete the
    # namespace, with everything in it.
    assert manifest["DeletionPolicy"] == "Retain"
    applied = json.dumps(manifest["Properties"]["Manifest"])
    assert '\\"kind\\":\\"Namespace\\"' in applied
    assert "Deployment" not in applied and "ConfigMap" not in applied
    # Each name is read once its Service is applied, again whenever the Services change, and
    # the server's allowed names are those reads: none before, none other.
    assert sorted(
        k.removeprefix("TrackingServer").split("LoadBalancerHost")[0].lower() for k in reads
    ) == sorted(kinds)
    revision = {r["Properties"]["Revision"] for r in reads.values()}
    assert len(revision) == 1 and revision != {
        each_config.deployment.mlflow.tracking_server.revision
    }
    for read in reads.values():
        assert manifest_id in read["DependsOn"]
    # The sign-in ALB's name is read too (for its ARN and the DNS record), but the server
    # allows the name people use (auth.sso.hostname), which the certificate covers.
    nlb_reads = [k for k in reads if "SsoLoadBalancerHost" not in k]
    assert named == sorted(f"${{GetAtt:{k}.Value}}" for k in nlb_reads)
    # The workload manifest after it (its logical ID unchanged: a new one would replace it).
    assert manifest_id in template["TrackingServerManifest24C4B115"]["DependsOn"]


def test_new_cluster_is_auto_mode_with_a_matching_kubectl_layer(synth: SynthFn) -> None:
    s = synth("default")
    _, cluster = only(s, "Cluster", "AWS::EKS::Cluster")
    props = cluster["Properties"]
    assert props["Version"] == "1.36"
    assert props["ComputeConfig"]["Enabled"] is True
    assert props["EncryptionConfig"][0]["Resources"] == ["secrets"]
    layers = resources(s, "Cluster", "AWS::Lambda::LayerVersion")
    assert any("kubectl" in json.dumps(layer).lower() for layer in layers.values())
    s.template("Cluster").resource_count_is("AWS::IAM::OIDCProvider", 1)


def test_existing_cluster_gets_a_kubectl_provider_with_cluster_access(synth: SynthFn) -> None:
    s = synth("existing-cluster")
    _, entry = only(s, "Mlflow", "AWS::EKS::AccessEntry")
    assert entry["Properties"]["ClusterName"] == s.settings.cluster.name
    assert render_intrinsics(entry["Properties"]["AccessPolicies"][0]["PolicyArn"]).endswith(
        ":cluster-access-policy/AmazonEKSClusterAdminPolicy"
    )
    handlers = resources(s, "Mlflow", "AWS::Lambda::Function")
    assert any(
        h.get("DependsOn") and any("KubectlAccess" in d for d in h["DependsOn"])
        for h in handlers.values()
    )


def test_outputs_tell_how_to_connect_and_never_a_secret_value(each_config: Synth) -> None:
    outputs = each_config.templates["Mlflow"]["Outputs"]
    ns = each_config.settings.server.namespace
    for key in (
        "Namespace",
        "ClusterServiceUrl",
        "ArtifactBucketName",
        "DatabaseEndpoint",
        "DatabaseSecretArn",
        "PortForwardCommand",
        "ServerRoleArn",
    ):
        assert key in outputs, key
    assert outputs["PortForwardCommand"]["Value"] == (
        f"kubectl -n {ns} port-forward svc/mlflow 5000:80"
    )
    # A secret's value can reach a template only as a dynamic reference.
    assert "{{resolve:" not in json.dumps(outputs)
    # The way back before an upgrade: a snapshot of this instance, named by the revision.
    snapshot = render_intrinsics(outputs["SnapshotCommand"]["Value"])
    revision = each_config.deployment.mlflow.tracking_server.revision
    existing = each_config.settings.database.existing.endpoint
    instance = (
        re.escape(existing.split(".")[0])
        if existing
        else r"\$\{Output:[\w-]+-data\.PublishOutputRefDatabase\w+\}"
    )
    assert re.fullmatch(
        rf"aws rds create-db-snapshot --db-instance-identifier {instance} "
        rf"--db-snapshot-identifier mlflow-at-{revision}",
        snapshot,
    ), snapshot
    if each_config.settings.auth.enabled:
        command = render_intrinsics(outputs["AdminCredentialsCommand"]["Value"])
        assert command.startswith("aws secretsmanager get-secret-value ")
        assert "AuthAdminCredentials" in command


def test_the_engine_version_is_the_major_and_the_running_one_is_an_output(
    each_config: Synth,
) -> None:
    """The template names the major version only (a retired minor would fail fresh deploys);
    RDS's answer for the running instance is read at deploy time, re-read with each new
    server revision, by a role that may only describe this instance."""
    settings = each_config.settings
    existing = settings.database.existing.endpoint
    mlflow = each_config.templates["Mlflow"]
    [reading] = resources_of(mlflow, "Custom::AWS").values()
    if existing:
        # An existing instance's version is its owner's; the reading names it directly.
        assert not resources_of(each_config.templates["Data"], "AWS::RDS::DBInstance")
        identifier = existing.split(".")[0]
        create = json.loads(reading["Properties"]["Create"])
        assert create["parameters"] == {"DBInstanceIdentifier": identifier}
    else:
        engine = settings.database.engine
        key, resource = primary_database(each_config.templates["Data"])
        database = resource["Properties"]
        assert database["EngineVersion"] == {"mysql": "8.4", "postgres": "17"}[engine]
        assert database["AutoMinorVersionUpgrade"] is True
        # The call's JSON with the instance's identifier (a reference to the data stack's
        # output of the primary instance) in its place.
        parts = reading["Properties"]["Create"]["Fn::Join"][1]
        reference = json.dumps(parts[1])
        create = json.loads("".join(p if isinstance(p, str) else "ID" for p in parts))
        assert create["parameters"] == {"DBInstanceIdentifier": "ID"} and key in reference
    assert create["service"] == "RDS" and create["action"] == "describeDBInstances"
    revision = each_config.deployment.mlflow.tracking_server.revision
    assert create["physicalResourceId"] == {"id": revision}
    assert create["outputPaths"] == ["DBInstances.0.EngineVersion"]
    output = mlflow["Outputs"]["DatabaseEngineVersion"]["Value"]
    assert output["Fn::GetAtt"][1] == "DBInstances.0.EngineVersion"
    policies = resources_of(mlflow, "AWS::IAM::Policy")
    [policy] = [p for k, p in policies.items() if k.startswith("EngineVersion")]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "rds:DescribeDBInstances"
    if existing:
        assert statement["Resource"].endswith(f":db:{identifier}")
    else:
        arn = statement["Resource"]["Fn::Join"][1]
        assert ":db:" in arn[-2] and json.dumps(arn[-1]) == reference


def test_config_map_carries_endpoints_but_no_secret(each_config: Synth) -> None:
    data = each_config.object("ConfigMap")["data"]
    assert data["MLFLOW_DB_ENGINE"] == each_config.settings.database.engine
    assert data["MLFLOW_DB_SECRET_ID"].startswith("${")
    # The server's own login; the master's is the migration Job's alone.
    assert "DatabaseServerLogin" in data["MLFLOW_DB_SECRET_ID"]
    assert "MLFLOW_DB_ADMIN_SECRET_ID" not in data
    [job] = [j for j in each_config.objects("Job") if "-migrate-" in j["metadata"]["name"]]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    admin = {e["name"]: e["value"] for e in migrate["env"]}["MLFLOW_DB_ADMIN_SECRET_ID"]
    existing = each_config.settings.database.existing
    if existing.endpoint:
        assert admin == existing.secret_arn
        assert data["MLFLOW_DB_HOST"] == existing.endpoint
        assert data["MLFLOW_DB_PORT"] == str(_database_port(each_config))
    else:
        assert "DatabaseSecret" in admin and "ServerLogin" not in admin
    bucket = each_config.settings.artifacts.existing
    if bucket.bucket_name:
        destination = f"s3://{bucket.bucket_name}/{bucket.prefix}"
        assert data["MLFLOW_ARTIFACTS_DESTINATION"] == destination
    else:
        assert data["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://${")
    assert not any("password" in key.lower() for key in data)
    # The sign-in load balancer's client Secret is the only one, applied empty.
    assert all(not {"data", "stringData"} & set(o) for o in each_config.objects("Secret"))


def test_a_settings_change_rolls_the_pods(synth: SynthFn, tmp_path: Path) -> None:
    """The pod template carries a digest of the ConfigMap data, which pods read only at start."""

    def digest(result: Synth) -> str:
        template = result.object("Deployment", "mlflow")["spec"]["template"]
        return str(template["metadata"]["annotations"][CONFIG_DIGEST_ANNOTATION])

    default = synth("default")
    again = synthesize("again", default.settings, tmp_path / "again")
    more_workers = default.settings.model_copy(
        update={"server": default.settings.server.model_copy(update={"workers": 1})}
    )
    changed = synthesize("changed", more_workers, tmp_path / "changed")
    # server.extra_env travels in the ConfigMap too: a variable added rolls the pods.
    extra = default.settings.model_copy(
        update={
            "server": default.settings.server.replace(
                extra_env={"MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS": "20"}
            )
        }
    )
    extra_env = synthesize("extra-env", extra, tmp_path / "extra-env")
    assert re.fullmatch(r"[0-9a-f]{16}", digest(default))
    assert digest(again) == digest(default)
    assert digest(changed) != digest(default)
    assert len({digest(default), digest(changed), digest(extra_env)}) == 3


def test_missing_image_directory_is_a_clear_error(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path / "cdk.out"), context=cdk_json_context())
    deployment = build_deployment(app, Settings(), allow_destroy=False)
    assert deployment.cluster is not None
    cluster = deployment.cluster.cluster
    with pytest.raises(ValueError, match="has no Dockerfile"):
        MlflowTrackingServer(
            cdk.Stack(app, "ImageCheck"),
            "Server",
            cluster=cluster.handle,
            database=deployment.data.database,
            artifact_store=deployment.data.artifact_store,
            auth_secrets=deployment.data.auth,
            image_directory=tmp_path,
        )


# --- security properties a snapshot alone would let through (one assertion each) ------------


def test_network_policy_admits_each_configs_database_port(each_config: Synth) -> None:
    policy = each_config.object("NetworkPolicy", "mlflow")["spec"]
    egress = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    port = _database_port(each_config)
    assert ("TCP", port) in egress
    assert egress == {("UDP", 53), ("TCP", 53), ("TCP", port), ("TCP", 443)}


def test_metrics_port_admits_only_pods_in_each_config(each_config: Synth) -> None:
    """The server port is open as before; the unauthenticated metrics port never to an
    address outside the cluster (a rule with `from` selectors matches pods only)."""
    server, metrics = each_config.object("NetworkPolicy", "mlflow")["spec"]["ingress"]
    assert server == {"ports": [{"port": 5000, "protocol": "TCP"}]}
    assert metrics["ports"] == [{"port": 9464, "protocol": "TCP"}]
    [peer] = metrics["from"]
    assert set(peer) <= {"namespaceSelector", "podSelector"} and "namespaceSelector" in peer


def test_the_configured_scrapers_reach_the_network_policy(synth: SynthFn) -> None:
    _, metrics = synth("test-maximal").object("NetworkPolicy", "mlflow")["spec"]["ingress"]
    assert metrics["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]


def test_database_port_rule_matches_the_engine(each_config: Synth) -> None:
    port = _database_port(each_config)
    ingress = resources(each_config, "Mlflow", "AWS::EC2::SecurityGroupIngress")
    assert [(r["Properties"]["FromPort"], r["Properties"]["ToPort"]) for r in ingress.values()] == [
        (port, port)
    ]


def test_external_load_balancer_terminates_modern_tls(synth: SynthFn) -> None:
    service = synth("existing-cluster").object("Service", "mlflow-external")
    annotations = service["metadata"]["annotations"]
    prefix = "service.beta.kubernetes.io/aws-load-balancer-"
    # TLS 1.3 and 1.2 only (ELB security policies), TLS on the listener, plain TCP to the pod
    # inside the VPC (MLflow serves HTTP); and only on the TLS port.
    assert annotations[f"{prefix}ssl-negotiation-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert annotations[f"{prefix}backend-protocol"] == "tcp"
    assert annotations[f"{prefix}ssl-ports"] == "443"
    assert [p["port"] for p in service["spec"]["ports"]] == [443]
    assert service["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]


def test_generated_password_avoids_what_rds_refuses(each_config: Synth) -> None:
    if each_config.settings.database.existing.endpoint:
        # The existing instance's master login is its owner's: none generated here.
        assert not [
            key
            for key in resources(each_config, "Data", "AWS::SecretsManager::Secret")
            if key.startswith("DataDatabaseSecret")
        ]
        return
    generate = _database_secret(each_config)["Properties"]["GenerateSecretString"]
    # RDS master passwords may not contain /, @, " or a space (RDS user guide); ' and \ are
    # excluded too, for shells. Everything else, the launcher quotes.
    assert set(generate["ExcludeCharacters"]) == set("\"@/\\' ")
    assert generate.get("PasswordLength", 32) >= 30
