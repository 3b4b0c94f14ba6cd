"""Acknowledged cdk-nag findings: each on the one construct it concerns, with its reason.

cdk-nag 3 reads acknowledgements from `Validations.of(construct).acknowledge(...)` on the
flagged resource or an ancestor, matching the finding's exact id, e.g.
`AwsSolutions-IAM5[Resource::<Handler.Arn>:*]`. Some ids contain values known only once CDK has
resolved cross-stack references (`Fn::GetStackOutput` of another stack's output, condition
logical ids): those are acknowledged by a construct validation, which CDK runs after resolving
references and before the validation plugins read the acknowledgements. The construct library
needs no cdk-nag at run time; tests/compliance checks that every acknowledgement applies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import jsii
from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct, IValidation


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge the finding `rule_id` (exact, e.g. `AwsSolutions-RDS11`) on `scope`."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_managed_policies(role: iam.IRole, policy_names: Iterable[str], reason: str) -> None:
    """Acknowledge AwsSolutions-IAM4 for these AWS managed policies (by name) on `role`.

    Policies are matched on their resolved ARN, so a policy attached under a condition
    (`Fn::If`, as the kubectl provider does for ECR Public) is acknowledged too; other
    managed policies on the role stay findings.
    """
    names = tuple(policy_names)
    cfn_role = role.node.default_child

    def findings() -> Iterable[str]:
        stack = Stack.of(role)
        arns = stack.resolve(getattr(cfn_role, "managed_policy_arns", None)) or []
        for arn in arns:
            flat = _flatten(stack.resolve(arn))
            if any(
                f":iam::aws:policy/{name}" in flat or flat.endswith(f"/{name}") for name in names
            ):
                yield f"AwsSolutions-IAM4[Policy::{flat}]"

    _acknowledge_resolved(role, findings, reason)


def acknowledge_wildcard_resources(
    scope: IConstruct, resources: Callable[[], Iterable[Any]], reason: str
) -> None:
    """Acknowledge AwsSolutions-IAM5 for exactly these wildcard resources on `scope`.

    `resources` returns the values (tokens allowed) as they appear in the policy statement.
    """
    stack = Stack.of(scope)

    def findings() -> Iterable[str]:
        for value in resources():
            yield f"AwsSolutions-IAM5[Resource::{_flatten(stack.resolve(value))}]"

    _acknowledge_resolved(scope, findings, reason)


def _acknowledge_resolved(
    scope: IConstruct, findings: Callable[[], Iterable[str]], reason: str
) -> None:
    scope.node.add_validation(_LateAcknowledgment(scope, findings, reason))


@jsii.implements(IValidation)
class _LateAcknowledgment:
    """Acknowledges when validated: after references are resolved, before plugins run."""

    def __init__(
        self, scope: IConstruct, findings: Callable[[], Iterable[str]], reason: str
    ) -> None:
        self._scope = scope
        self._findings = findings
        self._reason = reason
        self._done = False

    def validate(self) -> list[str]:
        if not self._done:
            self._done = True
            for rule_id in dict.fromkeys(self._findings()):
                acknowledge(self._scope, rule_id, self._reason)
        return []


def _flatten(node: Any) -> str:
    """A resolved CloudFormation value as cdk-nag names it in a finding id.

    Mirrors cdk-nag's `flattenCfnReference`: `Ref` and `Fn::GetAtt` become `<...>`,
    `Fn::Join` is joined, anything else is compact JSON.
    """
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if node.get("Fn::Join"):
            delimiter, items = node["Fn::Join"]
            return delimiter.join(_flatten(item) for item in items)
        if node.get("Fn::Sub"):
            return _flatten(node["Fn::Sub"])
        if node.get("Fn::GetAtt"):
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if node.get("Fn::ImportValue"):
            return _flatten(node["Fn::ImportValue"])
        if node.get("Ref"):
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"), ensure_ascii=False)
