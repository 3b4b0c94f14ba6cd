"""MLflow added to an EKS Auto Mode cluster that the app creates itself with aws_eks_v2."""

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.lambda_layer_kubectl_v36 import KubectlV36Layer

from mlflow_on_eks.constructs_lib import (
    ClusterHandle,
    DatabaseProps,
    MlflowArtifactStore,
    MlflowAuth,
    MlflowDatabase,
    MlflowTrackingServer,
    MlflowVpc,
)

app = cdk.App()
stack = cdk.Stack(app, "Platform")

vpc = MlflowVpc(stack, "Network").vpc
cluster = eks.Cluster(
    stack,
    "Cluster",
    version=eks.KubernetesVersion.V1_36,
    vpc=vpc,
    vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
    default_capacity_type=eks.DefaultCapacityType.AUTOMODE,
    kubectl_provider_options=eks.KubectlProviderOptions(
        kubectl_layer=KubectlV36Layer(stack, "Kubectl")
    ),
)
oidc = eks.OidcProviderNative(stack, "Oidc", url=cluster.cluster_open_id_connect_issuer_url)

MlflowTrackingServer(
    stack,
    "Mlflow",
    cluster=ClusterHandle(
        cluster=cluster,
        oidc_provider=oidc,
        # Shared: every pod of this cluster carries it (AutoModeCluster gives MLflow its own).
        database_client_security_group=cluster.cluster_security_group,
    ),
    database=MlflowDatabase(stack, "Database", vpc=vpc, props=DatabaseProps(engine="postgres")),
    artifact_store=MlflowArtifactStore(stack, "Artifacts"),
    auth_secrets=MlflowAuth(stack, "Auth"),
)

app.synth()
