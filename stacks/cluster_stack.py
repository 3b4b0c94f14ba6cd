"""ClusterStack: a new EKS Auto Mode cluster."""

from __future__ import annotations

from aws_cdk import Environment, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from config.settings import ClusterSettings
from constructs_lib import AutoModeCluster


class ClusterStack(Stack):
    """An EKS Auto Mode cluster with a kubectl provider matching its version.

    Attributes: `cluster` (the AutoModeCluster construct).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stack_name: str,
        vpc: ec2.IVpc,
        cluster: ClusterSettings,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope, id, stack_name=stack_name, env=env, description="MLflow on EKS: EKS cluster"
        )
        self.cluster = AutoModeCluster(
            self,
            "Cluster",
            vpc=vpc,
            version=cluster.kubernetes_version,
            admin_role_arns=tuple(cluster.admin_role_arns),
        )
