"""One deployment = the stacks a Settings asks for, wired together (used by app.py and tests)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Environment
from constructs import Construct

from config.settings import Settings
from mlflow_on_eks.constructs_lib import ExistingClusterAttributes, ExistingVpc
from stacks.cluster_stack import ClusterStack
from stacks.data_stack import DataStack
from stacks.mlflow_stack import MlflowStack
from stacks.network_stack import NetworkStack


@dataclass(frozen=True)
class Deployment:
    """The stacks of one deployment; network and cluster are None for an existing cluster."""

    network: NetworkStack | None
    data: DataStack
    cluster: ClusterStack | None
    mlflow: MlflowStack


def build_deployment(scope: Construct, settings: Settings, *, allow_destroy: bool) -> Deployment:
    """Instantiate the stacks for `settings` in `scope` (a cdk.App)."""
    env = (
        Environment(account=settings.aws.account, region=settings.aws.region)
        if settings.aws.account or settings.aws.region
        else None
    )
    prefix = settings.name
    cluster_settings = settings.cluster
    network: NetworkStack | None = None
    cluster_stack: ClusterStack | None = None
    if cluster_settings.mode == "new":
        network = NetworkStack(
            scope,
            "Network",
            stack_name=f"{prefix}-network",
            env=env,
            availability_zones=cluster_settings.availability_zones,
        )
        vpc_source = network.vpc
    else:
        vpc_source = ExistingVpc(
            vpc_id=str(cluster_settings.vpc_id),
            availability_zones=tuple(cluster_settings.availability_zones),
            private_subnet_ids=tuple(cluster_settings.private_subnet_ids),
        )
    data = DataStack(
        scope,
        "Data",
        stack_name=f"{prefix}-data",
        vpc=vpc_source,
        database=settings.database,
        artifacts=settings.artifacts,
        auth=settings.auth,
        allow_destroy=allow_destroy,
        vpc_id_import=network.vpc_id_import if network else None,
        env=env,
    )
    if network is not None:
        cluster_stack = ClusterStack(
            scope,
            "Cluster",
            stack_name=f"{prefix}-cluster",
            vpc=network.vpc,
            cluster=cluster_settings,
            server=settings.server,
            jobs=settings.jobs,
            vpc_id_import=network.vpc_id_import,
            env=env,
        )
        cluster = cluster_stack.cluster
    else:
        cluster = ExistingClusterAttributes(
            cluster_name=str(cluster_settings.name),
            oidc_provider_arn=str(cluster_settings.oidc_provider_arn),
            security_group_id=str(cluster_settings.security_group_id),
            kubernetes_version=cluster_settings.kubernetes_version,
            kubectl_role_arn=cluster_settings.kubectl_role_arn,
            database_client_security_group_id=cluster_settings.database_client_security_group_id,
            load_balancer_controller=cluster_settings.load_balancer_controller,
        )
    mlflow = MlflowStack(
        scope,
        "Mlflow",
        stack_name=f"{prefix}-server",
        cluster=cluster,
        cluster_name=cluster_stack.cluster_name_import if cluster_stack else None,
        vpc=data.vpc,
        database=data.database,
        artifact_store=data.artifact_store,
        auth=settings.auth,
        auth_secrets=data.auth,
        server=settings.server,
        exposure=settings.exposure,
        deploy_check=settings.deploy_check.enabled,
        gc=settings.gc,
        jobs=settings.jobs,
        monitoring=settings.monitoring,
        env=env,
    )
    return Deployment(network=network, data=data, cluster=cluster_stack, mlflow=mlflow)
