"""NetworkStack: the VPC of a new cluster (an existing cluster brings its own)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, CfnOutput, Environment, Stack, Validations
from constructs import Construct

from mlflow_on_eks.constructs_lib import MlflowVpc


def guard_vpc(stack: Stack, vpc_id_import: str | None) -> None:
    """Output the network stack's exported VPC ID in `stack` (which runs in that VPC), so that
    CloudFormation refuses to delete the network stack first. None: an imported VPC, no guard."""
    if vpc_id_import is not None:
        CfnOutput(
            stack,
            "VpcId",
            value=vpc_id_import,
            description="The VPC ID, imported from the network stack's export, so "
            "CloudFormation refuses to delete that stack while this one runs in it",
        )


class NetworkStack(Stack):
    """A new VPC (public, private with NAT, isolated subnets; S3 endpoint; flow logs).

    Attributes: `vpc`, `vpc_id_import` (an import of this stack's export of the VPC ID:
    stacks that output it cannot be outlived by this one).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stack_name: str,
        env: Environment | None = None,
        availability_zones: Sequence[str] = (),
    ) -> None:
        """
        :param availability_zones: the VPC's AZs. Default: the region's first two, which CDK
            looks up with the caller's credentials when `env` names an account and region.
        """
        self._zones = list(availability_zones)
        super().__init__(
            scope, id, stack_name=stack_name, env=env, description="MLflow on EKS: network"
        )
        self.vpc = MlflowVpc(self, "Vpc", max_azs=len(self._zones) or 2).vpc
        if self._zones:
            Validations.of(self.vpc).acknowledge(
                Acknowledgment(
                    id="CloudFormation-Validate::W3010",
                    reason="The user named these AZs (cluster.availability_zones) so that a "
                    "synth for a known account and region needs no lookup; a lookup would "
                    "write the same literal names.",
                )
            )
        # The app's cross-stack references are weak (CDK's recommended flag): CloudFormation
        # would delete this stack under a running cluster or database. One strong export,
        # which every stack placed in the VPC imports, makes it refuse instead.
        self.vpc_id_import = self.export_value(self.vpc.vpc_id)

    @property
    def availability_zones(self) -> list[str]:
        """The named AZs, else CDK's (a context lookup for a stack with an account and region):
        overriding this property is how CDK lets a stack name its AZs and stay offline."""
        return self._zones or super().availability_zones
