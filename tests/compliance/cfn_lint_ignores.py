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
        rule="E3691",
        message_contains="'8.4' is not one of",
        reason=(
            "The database's engine version is its major version only (MySQL 8.4, PostgreSQL "
            "17), so that RDS picks and patches the minor (docs/operations.md, Database engine "
            "versions). RDS accepts it; cfn-lint lists full versions only (cfn-lint issue "
            "#3849, the same false positive for PostgreSQL '14'). CDK's own validation finding "
            "is acknowledged in MlflowDatabase with this reason."
        ),
    ),
    Ignore(
        rule="E3691",
        message_contains="'17' is not one of",
        reason="As the entry above, for PostgreSQL: its major version '17' alone, which RDS "
        "accepts and cfn-lint does not list.",
    ),
    Ignore(
        rule="W3691",
        message_contains="Engine version '17' for engine 'postgres' is deprecated",
        reason="The same bare major version: cfn-lint's deprecation data holds full versions "
        "only and reads '17' as retired; RDS lists PostgreSQL 17 in standard support and "
        "creates the region's default 17.x for it.",
    ),
    Ignore(
        rule="W3010",
        message_contains="Avoid hardcoding availability zones",
        reason=(
            "Only with cluster.availability_zones set for a new VPC (tests/configs/maximal.yaml): "
            "the user names the AZs so that a synth for a known account and region needs no "
            "lookup, and a lookup would write the same literal names. The same finding from "
            "CDK's own validation is acknowledged in NetworkStack with this reason."
        ),
    ),
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
    Ignore(
        rule="W6001",
        message_contains=":ExportsOutputRefVpc",
        reason=(
            "Deliberate deletion guard: the data and cluster stacks output the network stack's "
            "one strong export (the VPC ID), so CloudFormation refuses to delete the network "
            "stack while a database or cluster still runs in its subnets; the app's other "
            "cross-stack references are weak and would not stop it."
        ),
    ),
    Ignore(
        rule="W6001",
        message_contains=":ExportsOutputRefCluster",
        reason=(
            "Deliberate deletion guard: the server stack's KubeconfigCommand output names the "
            "cluster through the cluster stack's strong export, so CloudFormation refuses to "
            "delete the cluster stack while the server stack (whose manifests live in that "
            "cluster) exists."
        ),
    ),
)
