"""The engine version the database runs, read at deploy time for an output.

The template names the engine's major version only (MlflowDatabase: RDS picks the minor and
patches it in the maintenance window), so the version running is known only to RDS.
CloudFormation gives no attribute for it (AWS::RDS::DBInstance's Fn::GetAtt values do not
include EngineVersion), so one DescribeDBInstances call reads it.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from .acknowledgements import acknowledge_managed_policies
from .database import MlflowDatabase


class EngineVersionReading(Construct):
    """`version`: what RDS reports for the database instance (e.g. `8.4.11`), read again on
    each deploy that changes `read_on` (the server's revision): a minor upgrade RDS applied
    since shows at the next such deploy."""

    def __init__(
        self, scope: Construct, id: str, *, database: MlflowDatabase, read_on: str
    ) -> None:
        super().__init__(scope, id)
        call = cr.AwsSdkCall(
            service="RDS",
            action="describeDBInstances",
            parameters={"DBInstanceIdentifier": database.instance.instance_identifier},
            physical_resource_id=cr.PhysicalResourceId.of(read_on),
            output_paths=["DBInstances.0.EngineVersion"],
        )
        self.reading = cr.AwsCustomResource(
            self,
            "Read",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["rds:DescribeDBInstances"],
                        resources=[database.instance.instance_arn],
                    )
                ]
            ),
            install_latest_aws_sdk=False,
        )
        self.version = self.reading.get_response_field("DBInstances.0.EngineVersion")
        acknowledge_managed_policies(
            self.reading.grant_principal,  # type: ignore[arg-type]  # the provider's own role
            ["service-role/AWSLambdaBasicExecutionRole"],
            "CDK's AwsCustomResource provider function: the managed policy lets it write its "
            "own logs, nothing else; its one call (rds:DescribeDBInstances on this instance) "
            "is an inline statement.",
        )
