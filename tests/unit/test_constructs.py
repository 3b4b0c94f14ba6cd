"""Each construct alone on a bare Stack, as another CDK app would use it, including the
bring-your-own choices (subnets, security group, secret, bucket, kubectl role)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Annotations, Match, Template

from mlflow_on_eks.constructs_lib import (
    ArtifactProps,
    AutoModeCluster,
    DatabaseProps,
    ExistingBucket,
    ExistingClusterAttributes,
    ExistingDatabase,
    ExistingVpc,
    ImportedCluster,
    MlflowArtifactStore,
    MlflowAuth,
    MlflowDatabase,
    MlflowTrackingServer,
    MlflowVpc,
    ResourceProps,
    WorkloadProps,
)
from mlflow_on_eks.constructs_lib.tracking_server import IMAGE_DIRECTORY
from mlflow_on_eks.k8s_charts import AuthProps, ExposureProps, ExternalLoadBalancerProps
from mlflow_on_eks.k8s_charts.node_pool_chart import DATABASE_CLIENT_LABEL
from mlflow_on_eks.k8s_charts.rules import InvalidProps
from tests.conftest import resources_of

ENV = cdk.Environment(account="111122223333", region="eu-west-1")
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
NETWORK = ExistingVpc(
    vpc_id="vpc-0123456789abcdef0",
    availability_zones=("eu-west-1a", "eu-west-1b"),
    private_subnet_ids=SUBNETS,
)
ATTRIBUTES = ExistingClusterAttributes(
    cluster_name="platform",
    oidc_provider_arn=(
        "arn:aws:iam::111122223333:oidc-provider/"
        "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
    ),
    security_group_id="sg-0123456789abcdef0",
    kubernetes_version="1.36",
)
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:platform/mlflow-db-AbCdEf"


def bare_stack(outdir: Path) -> cdk.Stack:
    """A stack in an App of its own, whose assembly goes under `outdir` (a test's tmp_path, gone
    when it passes). Without an outdir, CDK stages into a new /tmp/cdk.out* that lives as long as
    the worker's jsii kernel: with a cluster in it, 57 MB of layers per App."""
    return cdk.Stack(cdk.App(outdir=tempfile.mkdtemp(dir=outdir)), "Bare", env=ENV)


def template(stack: cdk.Stack) -> dict[str, Any]:
    return Template.from_stack(stack).to_json()


def test_vpc_alone(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    MlflowVpc(stack, "Network")
    result = Template.from_stack(stack)
    result.resource_count_is("AWS::EC2::Subnet", 6)  # public, private, isolated x 2 AZs
    result.resource_count_is("AWS::EC2::NatGateway", 2)
    result.resource_count_is("AWS::EC2::FlowLog", 1)


def test_existing_vpc_is_imported_without_lookups(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    vpc = NETWORK.import_into(stack)
    assert [s.subnet_id for s in vpc.private_subnets] == list(SUBNETS)
    assert template(stack).get("Resources", {}) == {}


def test_database_alone_in_a_new_vpc_uses_isolated_subnets(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    vpc = MlflowVpc(stack, "Network").vpc
    MlflowDatabase(stack, "Database", vpc=vpc)
    [group] = resources_of(template(stack), "AWS::RDS::DBSubnetGroup").values()
    refs = json.dumps(group["Properties"]["SubnetIds"])
    assert "Isolated" in refs and "Private" not in refs


def test_database_on_an_imported_vpc_uses_its_private_subnets(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    MlflowDatabase(stack, "Database", vpc=NETWORK.import_into(stack))
    [group] = resources_of(template(stack), "AWS::RDS::DBSubnetGroup").values()
    assert group["Properties"]["SubnetIds"] == list(SUBNETS)


def template_id(stack: cdk.Stack, construct: Any) -> str:
    return stack.get_logical_id(construct.node.default_child)


def test_database_with_your_own_security_group_and_secret(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    vpc = NETWORK.import_into(stack)
    group = ec2.SecurityGroup.from_security_group_id(stack, "Group", "sg-0fedcba9876543210")
    secret = secretsmanager.Secret.from_secret_complete_arn(stack, "Secret", SECRET_ARN)
    database = MlflowDatabase(
        stack, "Database", vpc=vpc, security_group=group, credentials_secret=secret
    )
    result = template(stack)
    assert not resources_of(result, "AWS::EC2::SecurityGroup")
    # Your master login; the server's own login is always generated.
    assert set(resources_of(result, "AWS::SecretsManager::Secret")) == {
        template_id(stack, database.server_login_secret)
    }
    [instance] = resources_of(result, "AWS::RDS::DBInstance").values()
    assert instance["Properties"]["VPCSecurityGroups"] == ["sg-0fedcba9876543210"]
    assert SECRET_ARN in json.dumps(instance["Properties"]["MasterUserPassword"])
    assert database.security_group is group


def test_artifact_store_alone(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    store = MlflowArtifactStore(stack, "Artifacts")
    Template.from_stack(stack).has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "Properties": Match.object_like({"VersioningConfiguration": {"Status": "Enabled"}}),
        },
    )
    assert store.destination.startswith("s3://") and store.destination.endswith("/artifacts")


def test_artifact_store_takes_the_configs_section(tmp_path: Path) -> None:
    """ArtifactProps is the config file's `artifacts` section: the same rule refuses the same
    value, and a checked copy keeps what the user left at its default as a default."""
    with pytest.raises(InvalidProps, match="applies only with versioned: true"):
        ArtifactProps(versioned=False, noncurrent_version_expiration_days=30)
    unversioned = ArtifactProps(versioned=False)
    assert unversioned.replace(removal_policy="destroy").removal_policy == "destroy"
    stack = bare_stack(tmp_path)
    MlflowArtifactStore(stack, "Artifacts", props=unversioned.replace(removal_policy="destroy"))
    [bucket] = resources_of(template(stack), "AWS::S3::Bucket").values()
    assert bucket["DeletionPolicy"] == "Delete"
    assert "VersioningConfiguration" not in bucket["Properties"]
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [r for r in rules if "NoncurrentVersionExpiration" in r] == []


def test_artifact_store_with_your_own_bucket(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    bucket = s3.Bucket.from_bucket_name(stack, "Existing", "team-ml-artifacts")
    store = MlflowArtifactStore(stack, "Artifacts", bucket=bucket, prefix="mlflow")
    assert store.bucket is bucket
    assert store.destination == "s3://team-ml-artifacts/mlflow"
    assert not template(stack).get("Resources")


def test_auto_mode_cluster_alone_admits_the_deploy_role(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    cluster = AutoModeCluster(stack, "Cluster", vpc=MlflowVpc(stack, "Network").vpc)
    [entry] = [
        e
        for e in resources_of(template(stack), "AWS::EKS::AccessEntry").values()
        if "deploy-role" in json.dumps(e["Properties"]["PrincipalArn"])
    ]
    assert "AmazonEKSClusterAdminPolicy" in json.dumps(entry["Properties"]["AccessPolicies"])
    assert cluster.node_pool_name == "mlflow"


def test_auto_mode_cluster_without_a_deploy_role_needs_admins(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Custom", env=ENV, synthesizer=cdk.CliCredentialsStackSynthesizer())
    vpc = MlflowVpc(stack, "Network").vpc
    with pytest.raises(ValueError, match="pass the IAM roles that may use kubectl"):
        AutoModeCluster(stack, "Cluster", vpc=vpc)
    AutoModeCluster(
        stack, "Admins", vpc=vpc, admin_role_arns=("arn:aws:iam::111122223333:role/admins",)
    )


@pytest.mark.parametrize("own_role", [False, True])
def test_imported_cluster_alone(own_role: bool, tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    role = "arn:aws:iam::111122223333:role/platform-kubectl"
    attributes = ATTRIBUTES if not own_role else replace(ATTRIBUTES, kubectl_role_arn=role)
    cluster = ImportedCluster(
        stack, "Cluster", attributes=attributes, vpc=NETWORK.import_into(stack)
    )
    result = template(stack)
    assert bool(resources_of(result, "AWS::EKS::AccessEntry")) is not own_role
    assert (cluster.access_entry is None) is own_role
    assert resources_of(result, "AWS::Lambda::Function"), "the kubectl handler"


@pytest.mark.parametrize("client_group", [None, "sg-0fedcba9876543210"])
def test_imported_cluster_database_client_group(client_group: str | None, tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    attributes = replace(ATTRIBUTES, database_client_security_group_id=client_group)
    cluster = ImportedCluster(
        stack, "Cluster", attributes=attributes, vpc=NETWORK.import_into(stack)
    )
    group = cluster.database_client_security_group
    warnings = Annotations.from_stack(stack).find_warning("*", Match.any_value())
    if client_group:
        assert group.security_group_id == client_group and not warnings
    else:
        # The cluster security group, shared by every pod of the cluster: said at synth.
        assert group is cluster.security_group
        assert [w.id for w in warnings] == ["/Bare/Cluster"]


def test_auto_mode_cluster_gives_its_pool_a_database_client_group(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    cluster = AutoModeCluster(stack, "Cluster", vpc=MlflowVpc(stack, "Network").vpc)
    group_id = cluster.database_client_security_group.security_group_id
    assert cluster.node_labels == {DATABASE_CLIENT_LABEL: group_id}
    group = stack.resolve(group_id)
    manifests = [
        json.dumps(r["Properties"]["Manifest"])
        for r in resources_of(template(stack), "Custom::AWSCDK-EKS-KubernetesResource").values()
    ]
    [node_pool] = [m for m in manifests if '\\"kind\\":\\"NodeClass\\"' in m]
    assert [m for m in manifests if json.dumps(group) in m] == [node_pool]


def test_both_cluster_shapes_hand_the_server_what_it_needs(tmp_path: Path) -> None:
    """A new cluster hands over MLflow's own pool, its labels and admins; an imported one any
    node; `handle_in` gives either without the caller asking which it has."""
    stack = bare_stack(tmp_path)
    vpc = MlflowVpc(stack, "Network").vpc
    new = AutoModeCluster(stack, "New", vpc=vpc)
    handle = new.handle_in(stack, vpc)
    assert handle.cluster is new.cluster and handle.oidc_provider is new.oidc_provider
    assert handle.database_client_security_group is new.database_client_security_group
    assert handle.node_pool == new.node_pool_name == "mlflow"
    assert handle.node_labels == new.node_labels
    assert handle.admin_role_arns == tuple(new.admin_role_arns)
    other = bare_stack(tmp_path)
    imported = ATTRIBUTES.handle_in(other, NETWORK.import_into(other))
    cluster = other.node.find_child("Cluster")
    assert isinstance(cluster, ImportedCluster) and imported.cluster is cluster.cluster
    assert imported.database_client_security_group is cluster.database_client_security_group
    assert imported.node_pool is None and imported.node_labels == {}
    assert imported.admin_role_arns == ()


def test_a_new_cluster_refuses_a_pod_no_node_can_hold(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    # Memory for the 64 uploads' parts (rules.streamed_uploads_mib): the storage is what fails.
    huge = WorkloadProps(
        max_proxied_artifact_gib=1024,
        concurrent_artifact_transfers=64,
        resources=ResourceProps(memory_mib=36 * 1024),
    )
    with pytest.raises(ValueError, match="65539 GiB of ephemeral storage per pod"):
        AutoModeCluster(stack, "Cluster", vpc=MlflowVpc(stack, "Network").vpc, workload=huge)


def test_tracking_server_alone_with_your_own_bucket_and_secret(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    vpc = NETWORK.import_into(stack)
    cluster = ImportedCluster(stack, "Cluster", attributes=ATTRIBUTES, vpc=vpc)
    secret = secretsmanager.Secret.from_secret_complete_arn(stack, "Secret", SECRET_ARN)
    bucket = s3.Bucket.from_bucket_name(stack, "Existing", "team-ml-artifacts")
    database = MlflowDatabase(stack, "Database", vpc=vpc, credentials_secret=secret)
    server = MlflowTrackingServer(
        stack,
        "Mlflow",
        cluster=cluster.handle,
        database=database,
        artifact_store=MlflowArtifactStore(stack, "Artifacts", bucket=bucket),
        auth_secrets=MlflowAuth(stack, "Auth"),
        workload=WorkloadProps(namespace="team-ml", replicas=3),
    )
    policies = {
        key: json.dumps(p["Properties"]["PolicyDocument"]["Statement"])
        for key, p in resources_of(template(stack), "AWS::IAM::Policy").items()
    }
    [server_policy] = [v for k, v in policies.items() if k.startswith("MlflowRolesServer")]
    [migrate_policy] = [v for k, v in policies.items() if k.startswith("MlflowRolesMigrate")]
    # Your master login (attached to the instance, so the Job reads what RDS was given) for
    # the migration Job only; your bucket's artifact prefix for the server.
    master = json.dumps(stack.resolve(database.secret.secret_arn))
    assert master in migrate_policy and master not in server_policy
    assert "team-ml-artifacts/artifacts/*" in server_policy
    config = next(o for o in server.chart.to_json() if o["kind"] == "ConfigMap")
    assert config["metadata"]["namespace"] == "team-ml"
    assert config["data"]["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://team-ml-artifacts/artifacts"


EXISTING_INSTANCE = ExistingDatabase(
    endpoint="platform-db.c9akciq32rlx.eu-west-1.rds.amazonaws.com",
    secret_arn=SECRET_ARN,
    secret_kms_key_arn="arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    security_group_id="sg-0fedcba9876543210",
)
BUCKET_KEY = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"


def test_database_from_an_existing_instance_creates_nothing_of_it(tmp_path: Path) -> None:
    """`props.existing` (the config file's database.existing): the instance, its security
    group and its login's secret are imported by reference; only the server's own login is
    made (the migration Job sets it on the instance)."""
    stack = bare_stack(tmp_path)
    database = MlflowDatabase(
        stack,
        "Database",
        vpc=NETWORK.import_into(stack),
        props=DatabaseProps(engine="postgres", existing=EXISTING_INSTANCE),
    )
    assert set(template(stack)["Resources"]) == {template_id(stack, database.server_login_secret)}
    assert database.existing and database.port == 5432  # the engine's, none given
    assert stack.resolve(database.endpoint_address) == EXISTING_INSTANCE.endpoint
    assert stack.resolve(database.instance.instance_identifier) == "platform-db"
    assert database.security_group.security_group_id == "sg-0fedcba9876543210"
    assert database.secret.secret_arn == SECRET_ARN
    assert stack.resolve(database.secret.encryption_key.key_arn) == (  # type: ignore[union-attr]
        EXISTING_INSTANCE.secret_kms_key_arn
    )
    assert database.parameter_group is None and database.read_replica is None
    assert database.instance_type is None and database.allocated_storage_gib is None


@pytest.mark.parametrize("given", ["subnets", "security_group", "credentials_secret"])
def test_an_existing_instance_is_described_once(given: str, tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    vpc = NETWORK.import_into(stack)
    extra = {
        "subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        "security_group": ec2.SecurityGroup.from_security_group_id(stack, "G", "sg-01234567"),
        "credentials_secret": secretsmanager.Secret.from_secret_complete_arn(
            stack, "S", SECRET_ARN
        ),
    }
    with pytest.raises(ValueError, match=f"leave {given} out"):
        MlflowDatabase(
            stack,
            "Database",
            vpc=vpc,
            props=DatabaseProps(existing=EXISTING_INSTANCE),
            **{given: extra[given]},  # type: ignore[arg-type]
        )


def test_an_existing_instance_in_another_region_than_the_stack_is_refused(tmp_path: Path) -> None:
    stack = cdk.Stack(
        cdk.App(outdir=str(tmp_path)), "Elsewhere", env=cdk.Environment(region="us-east-1")
    )
    with pytest.raises(ValueError, match="endpoint is in region eu-west-1, the stack in us-east-1"):
        MlflowDatabase(
            stack,
            "Database",
            vpc=NETWORK.import_into(stack),
            props=DatabaseProps(existing=EXISTING_INSTANCE),
        )


def test_the_library_refuses_what_the_config_refuses_beside_an_existing_instance() -> None:
    with pytest.raises(InvalidProps) as caught:
        DatabaseProps(existing=EXISTING_INSTANCE, multi_az=True, read_replica=True)
    message = str(caught.value)
    assert "multi_az: applies only to an instance this app creates" in message
    assert "read_replica: applies only to an instance this app creates" in message
    with pytest.raises(InvalidProps, match="secret_arn: is needed with endpoint"):
        ExistingDatabase(endpoint=EXISTING_INSTANCE.endpoint, security_group_id="sg-01234567")
    with pytest.raises(InvalidProps, match="versioned: applies only to a bucket this app"):
        ArtifactProps(existing=ExistingBucket(bucket_name="team-ml-artifacts"), versioned=True)
    with pytest.raises(InvalidProps, match="bucket_name: expected an S3 bucket name"):
        ExistingBucket(bucket_name="Team_ML")


def _server_with(
    outdir: Path, database: Any, store: Callable[[cdk.Stack], MlflowArtifactStore]
) -> tuple[cdk.Stack, MlflowTrackingServer]:
    stack = bare_stack(outdir)
    vpc = NETWORK.import_into(stack)
    cluster = ImportedCluster(stack, "Cluster", attributes=ATTRIBUTES, vpc=vpc)
    server = MlflowTrackingServer(
        stack,
        "Mlflow",
        cluster=cluster.handle,
        database=MlflowDatabase(stack, "Database", vpc=vpc, props=database),
        artifact_store=store(stack),
        auth=ANONYMOUS,
    )
    return stack, server


def _role_statements(stack: cdk.Stack, role: str) -> list[dict[str, Any]]:
    [policy] = [
        p
        for key, p in resources_of(template(stack), "AWS::IAM::Policy").items()
        if key.startswith(f"MlflowRoles{role}")
    ]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_the_configs_existing_bucket_is_the_one_a_library_user_imports(tmp_path: Path) -> None:
    """artifacts.existing builds what MlflowArtifactStore(bucket=..., prefix=...) builds with
    the bucket imported by hand: the same destination and the same grants (the prefix's
    objects, the listing under it, and the bucket's own key through S3)."""

    def by_hand(stack: cdk.Stack) -> MlflowArtifactStore:
        bucket = s3.Bucket.from_bucket_attributes(
            stack,
            "Existing",
            bucket_name="team-ml-artifacts",
            encryption_key=kms.Key.from_key_arn(stack, "Key", BUCKET_KEY),
        )
        return MlflowArtifactStore(stack, "Artifacts", bucket=bucket, prefix="teams/mlflow")

    def from_config(stack: cdk.Stack) -> MlflowArtifactStore:
        existing = ExistingBucket(
            bucket_name="team-ml-artifacts", prefix="teams/mlflow", kms_key_arn=BUCKET_KEY
        )
        return MlflowArtifactStore(stack, "Artifacts", props=ArtifactProps(existing=existing))

    results = [_server_with(tmp_path, DatabaseProps(), store) for store in (by_hand, from_config)]
    (hand, hand_server), (config, config_server) = results
    assert not resources_of(template(config), "AWS::S3::Bucket")
    assert _role_statements(hand, "Server") == _role_statements(config, "Server")
    destinations = [
        next(o for o in server.chart.to_json() if o["kind"] == "ConfigMap")["data"][
            "MLFLOW_ARTIFACTS_DESTINATION"
        ]
        for server in (hand_server, config_server)
    ]
    assert destinations == ["s3://team-ml-artifacts/teams/mlflow"] * 2
    with pytest.raises(ValueError, match="leave bucket= and prefix= out"):
        MlflowArtifactStore(
            bare_stack(tmp_path),
            "Again",
            props=ArtifactProps(existing=ExistingBucket(bucket_name="team-ml-artifacts")),
            prefix="mlflow",
        )


def test_tracking_server_on_an_existing_instance(tmp_path: Path) -> None:
    """The server stack admits the cluster's client group to the instance's own group on its
    port, hands the endpoint to the pods, the instance's secret to the migration Job only (and
    its key, through Secrets Manager), and lets the Job snapshot that instance."""
    props = DatabaseProps(engine="mysql", existing=EXISTING_INSTANCE.replace(port=3307))
    stack, server = _server_with(tmp_path, props, lambda s: MlflowArtifactStore(s, "Artifacts"))
    [ingress] = resources_of(template(stack), "AWS::EC2::SecurityGroupIngress").values()
    rule = ingress["Properties"]
    assert rule["GroupId"] == "sg-0fedcba9876543210"
    assert (rule["FromPort"], rule["ToPort"]) == (3307, 3307)
    config = next(o for o in server.chart.to_json() if o["kind"] == "ConfigMap")["data"]
    assert config["MLFLOW_DB_HOST"] == EXISTING_INSTANCE.endpoint
    assert config["MLFLOW_DB_PORT"] == "3307"
    migrate, serve = (json.dumps(_role_statements(stack, r)) for r in ("Migrate", "Server"))
    assert SECRET_ARN in migrate and SECRET_ARN not in serve
    assert ':rds:eu-west-1:111122223333:db:platform-db"' in migrate
    assert str(EXISTING_INSTANCE.secret_kms_key_arn) in migrate
    assert "secretsmanager.eu-west-1.amazonaws.com" in migrate and "kms:" not in serve


ANONYMOUS = AuthProps(enabled=False, allow_anonymous_through=["cluster", "internal"])
"""Sign-in off, confirmed for the server's two ways in (the in-cluster and internal Services)."""


def _tracking_server(
    outdir: Path, workload: WorkloadProps, image_directory: Path | None = None, **options: Any
) -> MlflowTrackingServer:
    stack = bare_stack(outdir)
    vpc = NETWORK.import_into(stack)
    cluster = ImportedCluster(stack, "Cluster", attributes=ATTRIBUTES, vpc=vpc)
    extra = {"image_directory": image_directory} if image_directory else {}
    return MlflowTrackingServer(
        stack,
        "Mlflow",
        cluster=cluster.handle,
        database=MlflowDatabase(stack, "Database", vpc=vpc),
        artifact_store=MlflowArtifactStore(stack, "Artifacts"),
        auth=options.pop("auth", ANONYMOUS),
        workload=workload,
        **extra,
        **options,
    )


def test_a_new_image_or_setting_runs_a_new_deploy_check(tmp_path: Path) -> None:
    base = _tracking_server(tmp_path, WorkloadProps()).revision
    assert _tracking_server(tmp_path, WorkloadProps()).revision == base, "same input, same revision"
    assert _tracking_server(tmp_path, WorkloadProps(workers=1)).revision != base
    # A changed launcher is a new image (a new asset hash), so a new check.
    image = tmp_path / "image"
    shutil.copytree(IMAGE_DIRECTORY, image, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    copy = _tracking_server(tmp_path, WorkloadProps(), image).revision
    (image / "launcher" / "src" / "mlflow_launcher" / "__init__.py").write_text("# changed\n")
    assert _tracking_server(tmp_path, WorkloadProps(), image).revision != copy


@pytest.mark.parametrize(
    ("options", "why"),
    [
        # Sign-in off must be confirmed for every way in, as the config file asks.
        ({"auth": AuthProps(enabled=False)}, "allow_anonymous_through does not name cluster, "),
        (
            {"auth": AuthProps(enabled=False, allow_anonymous_through=["cluster"])},
            "does not name internal while auth.enabled is false",
        ),
        ({"auth": AuthProps()}, "auth_secrets is required with auth.enabled"),
    ],
)
def test_a_library_server_without_sign_in_is_a_confirmed_decision(
    options: dict, why: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=why):
        _tracking_server(tmp_path, WorkloadProps(), **options)


def test_deploy_check_can_be_left_out_of_a_library_stack(tmp_path: Path) -> None:
    server = _tracking_server(tmp_path, WorkloadProps(), deploy_check=False)
    assert server.deploy_check is None
    resources = template(cdk.Stack.of(server))["Resources"]
    assert not [r for r in resources.values() if r["Type"].startswith("AWS::CloudFormation::Wait")]
    jobs = [o["metadata"]["name"] for o in server.review_manifests() if o["kind"] == "Job"]
    assert [name.rsplit("-", 1)[0] for name in jobs] == ["mlflow-migrate"]
    # The load balancer's address is still read back for the outputs.
    assert set(server.load_balancer_hosts) == {"internal"}


def test_a_certificate_of_another_region_or_account_is_refused_at_synth(tmp_path: Path) -> None:
    """The stack's environment is known here, so the contradiction fails the synth, not the
    load balancer controller after the deploy."""
    cert = "arn:aws:acm:{}:{}:certificate/01234567-89ab-cdef-0123-456789abcdef"
    for arn, expected in (
        (cert.format("us-east-1", ENV.account), "in region us-east-1, the stack in eu-west-1"),
        (cert.format(ENV.region, "999988887777"), "in account 999988887777, the stack in 1111"),
    ):
        external = ExternalLoadBalancerProps(
            enabled=True, allowed_cidrs=("10.0.0.0/8",), certificate_arn=arn
        )
        with pytest.raises(ValueError, match=expected):
            _tracking_server(tmp_path, WorkloadProps(), exposure=ExposureProps(external=external))
    external = ExternalLoadBalancerProps(
        enabled=True,
        allowed_cidrs=("10.0.0.0/8",),
        certificate_arn=cert.format(ENV.region, ENV.account),
    )
    all_ways = ANONYMOUS.replace(allow_anonymous_through=["cluster", "internal", "external"])
    server = _tracking_server(
        tmp_path, WorkloadProps(), exposure=ExposureProps(external=external), auth=all_ways
    )
    assert server.chart
