"""ClusterStack: a new EKS Auto Mode cluster."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from config.settings import ClusterSettings
from mlflow_on_eks.constructs_lib import AutoModeCluster, JobsProps, WorkloadProps
from stacks.network_stack import guard_vpc


class ClusterStack(Stack):
    """An EKS Auto Mode cluster with a kubectl provider matching its version.

    Attributes: `cluster` (the AutoModeCluster construct), `cluster_name_import` (the cluster
    name as an import of this stack's export: a stack that uses it cannot outlive this one).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stack_name: str,
        vpc: ec2.IVpc,
        cluster: ClusterSettings,
        server: WorkloadProps,
        jobs: JobsProps | None = None,
        vpc_id_import: str | None = None,
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
            endpoint_access=(
                eks.EndpointAccess.PRIVATE
                if cluster.endpoint_access == "private"
                else eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*cluster.public_access_cidrs)
            ),
            workload=server,
            jobs=jobs,
            network_policy=cluster.network_policy,
            # Always: the server's autoscaler exists even when pinned (min = max), and without
            # metrics it logs a FailedGetResourceMetric event every 15 s.
            metrics_server=True,
        )
        self.cluster_name_import = self.export_value(self.cluster.cluster.cluster_name)
        guard_vpc(self, vpc_id_import)
        self._keep_retired_outputs()

    def _keep_retired_outputs(self) -> None:
        """Outputs an earlier release's server stack read (CDK's weak references,
        Fn::GetStackOutput) and this one no longer does. This stack deploys first; if the
        server stack's update then fails, CloudFormation rolls it back to its previous
        template, which must still find them. tests/unit/test_published_outputs.py keeps the
        list; drop one only a release after the last reader."""
        retired = {
            # Until the database admitted MLflow's own client group (issue 18, item 5).
            "PublishOutputFnGetAttCluster9EE0221CClusterSecurityGroupId2725A2C4": (
                self.cluster.cluster.cluster_security_group_id
            ),
        }
        for logical_id, value in retired.items():
            CfnOutput(self, logical_id, value=value)
