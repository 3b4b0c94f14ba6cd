"""The outputs a stack publishes for another stack's references never disappear in a release.

The app's cross-stack references are weak (`Fn::GetStackOutput` of a `PublishOutput...`
output) or, for the few that must hold a stack in place, exports (`ExportsOutput...`). A
producing stack deploys before the stack that reads it; if the reader's update then fails,
CloudFormation rolls the reader back to its previous template, which reads the outputs the
previous release published. An output removed in the same release leaves that rollback
nothing to read, and the stack stuck (UPDATE_ROLLBACK_FAILED). So a retired output is kept a
release longer (see ClusterStack._keep_retired_outputs) and this list, recorded from each
release's templates, only grows; an output may leave it a release after its last reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CONFIGS

RECORDED = Path(__file__).with_name("published_outputs.json")
PREFIXES = ("PublishOutput", "ExportsOutput")


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_no_published_output_is_removed(synth, config: str) -> None:
    recorded = json.loads(RECORDED.read_text()).get(config, {})
    templates = synth(config).templates
    for stack, outputs in recorded.items():
        present = set(templates[stack].get("Outputs", {}))
        missing = sorted(set(outputs) - present)
        assert not missing, (
            f"{config} {stack} no longer publishes {missing}: the previous release's readers "
            "would find nothing to roll back to; keep each a release longer "
            "(ClusterStack._keep_retired_outputs shows how)"
        )


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_published_output_is_recorded(synth, config: str) -> None:
    recorded = json.loads(RECORDED.read_text()).get(config, {})
    for stack, template in synth(config).templates.items():
        published = {o for o in template.get("Outputs", {}) if o.startswith(PREFIXES)}
        new = sorted(published - set(recorded.get(stack, [])))
        assert not new, f"record {new} under {config}.{stack} in {RECORDED.name}"
