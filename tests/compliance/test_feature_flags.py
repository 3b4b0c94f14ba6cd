"""cdk.json sets CDK's recommended feature flags explicitly, template validation included.

Read from the feature-flag report CDK writes into every cloud assembly (what `cdk flags`
shows), so a CDK upgrade that recommends a new flag fails here until cdk.json sets it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.conftest import Synth, cdk_json_context

VALIDATE = "@aws-cdk/core:validateAgainstDefaultRules"


def feature_flags(s: Synth) -> dict[str, dict[str, Any]]:
    manifest = json.loads((s.outdir / "manifest.json").read_text())
    reports = [a for a in manifest["artifacts"].values() if a["type"] == "cdk:feature-flag-report"]
    assert len(reports) == 1
    return reports[0]["properties"]["flags"]


def effective(flag: dict[str, Any]) -> Any:
    """The value in force: set, else the v2 default, else false (an unset flag is off)."""
    if "userValue" in flag:
        return flag["userValue"]
    return flag.get("unconfiguredBehavesLike", {}).get("v2", False)


def test_every_flag_has_its_recommended_value(synth: Callable[[str], Synth]) -> None:
    flags = feature_flags(synth("default"))
    assert len(flags) > 50
    off = {
        name: flag for name, flag in flags.items() if effective(flag) != flag["recommendedValue"]
    }
    assert off == {}


def test_flags_are_set_in_cdk_json_not_left_to_defaults(synth: Callable[[str], Synth]) -> None:
    """A flag whose default is not its recommended value must be in cdk.json."""
    context = cdk_json_context()
    flags = feature_flags(synth("default"))
    needed = [
        name
        for name, flag in flags.items()
        if flag.get("unconfiguredBehavesLike", {}).get("v2", False) != flag["recommendedValue"]
    ]
    assert len(needed) > 50
    assert [name for name in needed if name not in context] == []
    assert context[VALIDATE] is True
    assert flags[VALIDATE]["userValue"] is True
