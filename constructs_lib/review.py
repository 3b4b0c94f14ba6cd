"""Readable copies of what a stack will apply, for review beside the templates.

CloudFormation intrinsics inside a manifest (an image URI, a role ARN, an endpoint) are not
known until deploy time; they are rendered as `${...}` placeholders so a reviewer sees where
each value comes from. `PLACEHOLDERS` is the one list of the forms `render_intrinsics` emits,
with what each stands for; `review_header` explains, from it, the forms a manifest contains.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from textwrap import wrap
from typing import Any

from aws_cdk import Stack
from constructs import IConstruct


@dataclass(frozen=True)
class Placeholder:
    """One placeholder form `render_intrinsics` emits."""

    form: str
    """How the form is written in the legend."""
    pattern: re.Pattern[str]
    """Matches the start of a placeholder of this form (from its `${`)."""
    meaning: str
    """What the placeholder stands for and when CloudFormation resolves it."""


PLACEHOLDERS: tuple[Placeholder, ...] = (
    # Before `Ref:` of a resource: `${Ref:AWS::Region}` is a pseudo parameter, not a resource.
    # `${AWS::Region}` is the same parameter inside an Fn::Sub string (the image URI), kept as
    # written so it reads like the destination in cdk.out/<Stack>.assets.json.
    Placeholder(
        "${Ref:AWS::<Name>} or ${AWS::<Name>}",
        re.compile(r"\$\{(Ref:)?AWS::"),
        "a pseudo parameter (AWS::Region, AWS::AccountId, AWS::URLSuffix, AWS::Partition): "
        "the region, account, domain suffix or partition the stack is deployed to; filled in "
        "by CloudFormation when the stack deploys.",
    ),
    Placeholder(
        "${Ref:<LogicalId>}",
        re.compile(r"\$\{Ref:"),
        "the Ref value (a name, ID or URL) of resource <LogicalId> in this stack's template; "
        "known once CloudFormation has created that resource during the deploy.",
    ),
    Placeholder(
        "${GetAtt:<LogicalId>.<Attribute>}",
        re.compile(r"\$\{GetAtt:"),
        "attribute <Attribute> (an ARN, an endpoint, a value read back from the cluster) of "
        "resource <LogicalId> in this stack's template; known once that resource exists during "
        "the deploy.",
    ),
    Placeholder(
        "${Output:<StackName>.<OutputName>}",
        re.compile(r"\$\{Output:"),
        "output <OutputName> of another stack of this app, <StackName> (a bucket, database "
        "endpoint or secret defined there; Fn::GetStackOutput, a weak reference); read when "
        "this stack deploys, after that stack.",
    ),
    Placeholder(
        "${ImportValue:<ExportName>}",
        re.compile(r"\$\{ImportValue:"),
        "the value another stack exports as <ExportName> (Fn::ImportValue, a strong reference); "
        "read when this stack deploys, after the exporting stack.",
    ),
    Placeholder(
        "${Fn::<Function>:<arguments>}",
        re.compile(r"\$\{Fn::\w+:"),
        "any other CloudFormation intrinsic function (Fn::Select, Fn::Split, ...), with its "
        "arguments rendered the same way; evaluated by CloudFormation when the stack deploys.",
    ),
)
"""Every placeholder form `render_intrinsics` emits, most specific first. Fn::Join is not a
form: its parts are joined in place. An Fn::Sub string is shown as written: the variables in
it are `${AWS::<Name>}` pseudo parameters (a new kind fails tests/unit/test_review_manifests.py)."""

_PLACEHOLDER_START = "${"


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
            return f"${{{key}:{','.join(_as_text(render_intrinsics(a)) for a in args)}}}"
    return {key: render_intrinsics(item) for key, item in value.items()}


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def placeholder_forms(text: str) -> list[Placeholder | None]:
    """The form of each `${` in `text`, in order (nested ones too); None where it starts none
    of `PLACEHOLDERS` (literal text; tests/unit/test_review_manifests.py allows none)."""
    starts = [m.start() for m in re.finditer(re.escape(_PLACEHOLDER_START), text)]
    return [next((p for p in PLACEHOLDERS if p.pattern.match(text, i)), None) for i in starts]


def review_header(stack_name: str, template: str, body: str) -> str:
    """YAML comment lines for the top of `cdk.out/manifests/<stack>.yaml`: what the file is,
    and what each placeholder form in `body` (the YAML that follows) stands for. `template`:
    the stack's template file name in cdk.out, where the logical IDs are."""
    lines = [
        f"The Kubernetes objects `cdk deploy` applies in stack {stack_name} (template",
        f"cdk.out/{template}): the server's chart, then the deploy check's objects if it",
        "is on. Rendered for review, not for `kubectl apply`: values known only at deploy",
        "time are ${...} placeholders, which CloudFormation fills in when it deploys the stack.",
    ]
    present = set(placeholder_forms(body))
    forms = [form for form in PLACEHOLDERS if form in present]
    if forms:
        lines += ["", "Placeholders in this file:"]
        for form in forms:
            lines += [f"  {form.form}", *(f"      {line}" for line in wrap(form.meaning, 80))]
    else:
        lines += ["", "This file has no placeholders: every value is known at synth time."]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines) + "\n"
