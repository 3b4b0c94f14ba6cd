"""The CloudWatch dimension (`net/<name>/<id>`) and ARN of a load balancer known by its DNS
name, asked of ELB at deploy time (load_balancer_handler.py), each time the DNS name changes."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .acknowledgements import acknowledge_wildcard_resources

_HANDLER = Path(__file__).with_name("load_balancer_handler.py")
_FUNCTION_ID = "LoadBalancerDimensionLookup"


def _function(scope: Construct) -> lambda_.IFunction:
    """One function per stack, whatever the number of load balancers."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child(_FUNCTION_ID)
    if existing is not None:
        return existing  # type: ignore[return-value]
    role = iam.Role(
        stack,
        f"{_FUNCTION_ID}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description="Finds a load balancer's CloudWatch dimension by its DNS name",
    )
    # DescribeLoadBalancers has no resource-level permissions (Service Authorization
    # Reference, Elastic Load Balancing V2: its Resource types column is empty).
    role.add_to_policy(
        iam.PolicyStatement(actions=["elasticloadbalancing:DescribeLoadBalancers"], resources=["*"])
    )
    function = lambda_.Function(
        stack,
        _FUNCTION_ID,
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler="index.handler",
        # Inline (Lambda writes it as index.py): no asset to publish; under the 4 KiB limit.
        code=lambda_.Code.from_inline(_HANDLER.read_text()),
        timeout=Duration.minutes(2),
        role=role,
        description="Custom resource: a load balancer's ARN and CloudWatch dimension by DNS name",
    )
    # The function writes its own log group's streams: Lambda's basic execution rights,
    # inline rather than the managed policy.
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            resources=["*"],
        )
    )
    acknowledge_wildcard_resources(
        role,
        lambda: ["*"],
        "elasticloadbalancing:DescribeLoadBalancers (and ec2:DescribeSubnets, for the sign-in "
        "load balancer's subnets) have no resource-level permissions, and the function's log "
        "group is created by Lambda under its generated name; the role can read load balancer "
        "and subnet descriptions and write logs, nothing else.",
    )
    return function


class LoadBalancerDimension(Construct):
    """`dimension`: the `LoadBalancer` dimension of the load balancer whose DNS name is
    `dns_name` (a deploy-time value); `arn`: its ARN; with `subnets`, `subnet_cidrs`: its
    subnets' CIDR blocks, comma-separated. The deploy fails with the reason if no load balancer
    has it."""

    def __init__(self, scope: Construct, id: str, *, dns_name: str, subnets: bool = False) -> None:
        super().__init__(scope, id)
        function = _function(self)
        if subnets:
            # DescribeSubnets has no resource-level permissions either (Service Authorization
            # Reference, Amazon EC2).
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["ec2:DescribeSubnets"], resources=["*"])
            )
        resource = CustomResource(
            self,
            "Resource",
            service_token=function.function_arn,
            resource_type="Custom::LoadBalancerDimension",
            properties={"DnsName": dns_name, **({"Subnets": "true"} if subnets else {})},
        )
        self.dimension = resource.get_att_string("Dimension")
        self.arn = resource.get_att_string("Arn")
        self.subnet_cidrs = resource.get_att_string("SubnetCidrs") if subnets else None
