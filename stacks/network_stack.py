"""NetworkStack: the VPC of a new cluster (an existing cluster brings its own)."""

from __future__ import annotations

from aws_cdk import Environment, Stack
from constructs import Construct

from constructs_lib import MlflowVpc


class NetworkStack(Stack):
    """A new VPC (public, private with NAT, isolated subnets; S3 endpoint; flow logs).

    Attributes: `vpc`.
    """

    def __init__(
        self, scope: Construct, id: str, *, stack_name: str, env: Environment | None = None
    ) -> None:
        super().__init__(
            scope, id, stack_name=stack_name, env=env, description="MLflow on EKS: network"
        )
        self.vpc = MlflowVpc(self, "Vpc").vpc
