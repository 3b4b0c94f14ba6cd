"""Every cfn-lint finding we accept, in one place, each with the reason.

An entry matches a finding by rule id and a substring of its message, so the same rule with
another cause is still reported.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ignore:
    rule: str
    message_contains: str
    reason: str


IGNORES: tuple[Ignore, ...] = (
    Ignore(
        rule="E1022",
        message_contains="Fn::GetStackOutput",
        reason=(
            "cfn-lint 1.58 does not know the Fn::GetStackOutput intrinsic that CDK's "
            "recommended cross-stack references (cdk.json feature flags) emit; here it is an "
            "argument of Fn::Split (the OIDC issuer of the cluster stack in the IRSA trust "
            "conditions). CDK's own CloudFormation validation (validateAgainstDefaultRules) "
            "accepts it."
        ),
    ),
    Ignore(
        rule="W3005",
        message_contains="dependency already enforced by a 'GetAtt'",
        reason=(
            "A redundant DependsOn on a role that CDK's own custom-resource providers "
            "(kubectl provider, CfnUtils, RestrictDefaultSG) emit besides the GetAtt; "
            "harmless, and not ours to change."
        ),
    ),
)
