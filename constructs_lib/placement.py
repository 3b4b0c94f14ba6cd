"""Where a value given by name lives, checked against the stack that uses it, at synth time."""

from __future__ import annotations

from aws_cdk import Stack, Token


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
