"""Resources given by name (an ARN, an ID): where they live, checked against the stack that
uses them at synth time, and their imports."""

from __future__ import annotations

from aws_cdk import Stack, Token
from aws_cdk import aws_kms as kms
from constructs import Construct


def same_place(
    stack: Stack, key: str, why: str, *, region: str | None = None, account: str | None = None
) -> None:
    """Refuse `key`'s `region` or `account` when the stack's is known at synth and is another
    one: the resource would be found, or usable, only after the deploy failed. `why`: what needs
    them to agree."""
    for kind, ours, theirs in (
        ("region", stack.region, region),
        ("account", stack.account, account),
    ):
        if theirs and not Token.is_unresolved(ours) and ours != theirs:
            raise ValueError(f"{key} is in {kind} {theirs}, the stack in {ours}: {why}")


def imported_key(scope: Construct, id: str, key_arn: str | None) -> kms.IKey | None:
    """The KMS key of `key_arn`, imported as `scope`'s child `id`; None without one."""
    return kms.Key.from_key_arn(scope, id, key_arn) if key_arn else None
