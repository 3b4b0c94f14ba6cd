"""Readable copies of what a stack will apply, for review beside the templates.

CloudFormation intrinsics inside a manifest (an image URI, a role ARN, an endpoint) are not
known until deploy time; they are rendered as placeholders such as `${Ref:LogicalId}`,
`${GetAtt:LogicalId.Attribute}` or `${Output:stack-name.OutputName}` so a reviewer sees
where each value comes from.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Stack
from constructs import IConstruct


def resolve_for_review(scope: IConstruct, value: Any) -> Any:
    """`value` with CDK tokens resolved in `scope`'s stack and intrinsics made placeholders."""
    return render_intrinsics(Stack.of(scope).resolve(value))


def render_intrinsics(value: Any) -> Any:
    """Template JSON with each intrinsic function replaced by a readable placeholder string."""
    if isinstance(value, list):
        return [render_intrinsics(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return f"${{Ref:{arg}}}"
        if key == "Fn::GetAtt":
            target = ".".join(arg) if isinstance(arg, list) else arg
            return f"${{GetAtt:{target}}}"
        if key == "Fn::ImportValue":
            return f"${{ImportValue:{_as_text(render_intrinsics(arg))}}}"
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(_as_text(render_intrinsics(part)) for part in parts)
        if key == "Fn::GetStackOutput" and isinstance(arg, dict):
            return f"${{Output:{arg.get('StackName')}.{arg.get('OutputName')}}}"
        if key == "Fn::Sub" and isinstance(arg, str):
            return arg
        if key.startswith("Fn::"):
            args = arg if isinstance(arg, list) else [arg]
            return f"${{{key[4:]}:{','.join(_as_text(render_intrinsics(a)) for a in args)}}}"
    return {key: render_intrinsics(item) for key, item in value.items()}


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
