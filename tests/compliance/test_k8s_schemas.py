"""The chart's manifests validate strictly against every Kubernetes version we support.

Strict schemas reject unknown fields. Deploy-time values (image URI, role ARN, endpoint) are
`${...}` placeholder strings in `Synth.manifests`; they sit in string fields only, so a
placeholder in an integer or boolean field is a schema error too.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from mlflow_on_eks.constructs_lib import SUPPORTED_VERSIONS
from tests.conftest import Synth


def validate(manifest: dict, version: str) -> str:
    return kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_manifests_validate_strictly(each_config: Synth, version: str) -> None:
    assert each_config.manifests
    errors = []
    for manifest in each_config.manifests:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            used = validate(manifest, version)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{name}: {error.message} at {'.'.join(map(str, error.path))}")
            continue
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name}: no schema for {manifest['apiVersion']} in {version}")
            continue
        # kubernetes-validate falls back to an older schema set when it lacks a version.
        assert used == version, f"validated {name} against {used}, not {version}"
    assert errors == []


def test_unknown_field_is_rejected(synth) -> None:  # type: ignore[no-untyped-def]
    """Strict mode is on: a misspelt field in the Deployment's pod spec fails."""
    deployment = copy.deepcopy(synth("default").object("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, SUPPORTED_VERSIONS[-1])
