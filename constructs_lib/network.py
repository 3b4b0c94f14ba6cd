"""The network: a new VPC for a new cluster, or an existing cluster's VPC imported by attributes."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, Tags
from aws_cdk import aws_ec2 as ec2
from constructs import Construct


class MlflowVpc(Construct):
    """A VPC with public, private (with NAT egress) and isolated subnets in two AZs.

    Pods and nodes run in the private subnets (/20: EKS pods take VPC addresses), the
    database in the isolated ones (no route out), load balancers in the public and private
    ones (tagged for Kubernetes). An S3 gateway endpoint keeps artifact traffic off the NAT;
    flow logs record rejected and accepted traffic to CloudWatch Logs.

    Attributes: `vpc` (id "Resource").
    """

    def __init__(
        self, scope: Construct, id: str, *, max_azs: int = 2, nat_gateways: int | None = None
    ) -> None:
        """
        :param max_azs: Default: 2 (all an environment-agnostic stack can know).
        :param nat_gateways: Default: one per AZ, so losing an AZ keeps egress.
        """
        super().__init__(scope, id)
        self.vpc = ec2.Vpc(
            self,
            "Resource",
            max_azs=max_azs,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
                ec2.SubnetConfiguration(
                    name="Isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
            },
            flow_logs={"FlowLog": ec2.FlowLogOptions(traffic_type=ec2.FlowLogTrafficType.ALL)},
        )
        # Where EKS load balancer controllers (Auto Mode's included) place NLBs.
        for subnet in self.vpc.public_subnets:
            Tags.of(subnet).add("kubernetes.io/role/elb", "1")
        for subnet in self.vpc.private_subnets:
            Tags.of(subnet).add("kubernetes.io/role/internal-elb", "1")


@dataclass(frozen=True)
class ExistingVpc:
    """An existing cluster's VPC, known by attributes so synth needs no lookup (no credentials)."""

    vpc_id: str
    availability_zones: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    """Private subnets (with egress) in `availability_zones`, same order."""

    def import_into(self, scope: Construct, id: str = "Vpc") -> ec2.IVpc:
        """The VPC as an IVpc in `scope`; its values are literals, so other stacks may share it."""
        vpc = ec2.Vpc.from_vpc_attributes(
            scope,
            id,
            vpc_id=self.vpc_id,
            availability_zones=list(self.availability_zones),
            private_subnet_ids=list(self.private_subnet_ids),
        )
        for subnet in vpc.private_subnets:
            Annotations.of(subnet).acknowledge_warning(
                "@aws-cdk/aws-ec2:noSubnetRouteTableId",
                "Nothing here reads the subnets' route tables (no endpoints or routes are added).",
            )
        return vpc
