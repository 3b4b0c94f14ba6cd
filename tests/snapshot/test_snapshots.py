"""Whole templates and manifests, for review: a diff here is a change to the deployment.

Update after an intended change with `.venv/bin/python -m pytest tests/snapshot --snapshot-update`
and review the diff of tests/snapshot/__snapshots__ like any other code.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from config import load_settings
from tests.conftest import CONFIGS, Synth, normalise_assets


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def _stacks(config: str) -> list[str]:
    if load_settings(CONFIGS[config]).cluster.mode == "existing":
        return ["Data", "Mlflow"]
    return ["Network", "Data", "Cluster", "Mlflow"]


@pytest.mark.parametrize(
    ("config", "stack"),
    [(config, stack) for config in sorted(CONFIGS) for stack in _stacks(config)],
)
def test_template(
    synth: Callable[[str], Synth], config: str, stack: str, json_snapshot: SnapshotAssertion
) -> None:
    result = synth(config)
    assert set(result.templates) == set(_stacks(config))
    revision = result.deployment.mlflow.tracking_server.revision
    assert normalise_assets(result.templates[stack], revision) == json_snapshot(
        name=f"{config}-{stack}"
    )


def test_manifests(each_config: Synth, json_snapshot: SnapshotAssertion) -> None:
    revision = each_config.deployment.mlflow.tracking_server.revision
    assert normalise_assets(each_config.manifests, revision) == json_snapshot(
        name=f"{each_config.name}-manifests"
    )
