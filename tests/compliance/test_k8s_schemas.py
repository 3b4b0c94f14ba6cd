"""The chart's manifests validate strictly against every Kubernetes version we support.

Strict schemas reject unknown fields. Deploy-time values (image URI, role ARN, endpoint) are
`${...}` placeholder strings in `Synth.manifests`; they sit in string fields only, so a
placeholder in an integer or boolean field is a schema error too.

Custom resources (the opt-in ServiceMonitor) validate against their CRD's schema, vendored in
crds/ with its source, made strict the way the API server's strict field validation is (`kubectl
apply` asks for it): a field the schema does not declare is an error.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from mlflow_on_eks.constructs_lib import SUPPORTED_VERSIONS
from tests.conftest import Synth

CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.v1.yaml"
}
"""(apiVersion, kind) -> the vendored openAPIV3Schema of that custom resource."""


@pytest.fixture(scope="module", autouse=True)
def _schema_files_parsed_once() -> Iterator[None]:
    """kubernetes_validate reads and parses the kind's schema and the version's whole
    _definitions.json (megabytes) again for every manifest it validates: 17 s of the suite's
    CPU (a worker profile). Here each file is parsed once; the validators only read them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            kubernetes_validate.utils,
            "schema_contents",
            cache(kubernetes_validate.utils.schema_contents),
        )
        yield


def _strict(schema: Any) -> Any:
    """Every object schema that lists its properties admits no other (unless it says it keeps
    unknown fields)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    name = CRD_SCHEMAS.get((api_version, kind))
    if name is None:
        return None
    return _strict(yaml.safe_load((Path(__file__).parent / "crds" / name).read_text()))


def validate(manifest: dict, version: str) -> str:
    """The Kubernetes version validated against; kubernetes_validate.ValidationError if the
    manifest is invalid (a custom resource's too)."""
    schema = crd_schema(manifest["apiVersion"], manifest["kind"])
    if schema is None:
        return kubernetes_validate.validate(manifest, version, strict=True)
    try:
        jsonschema.validate(manifest, schema)
    except jsonschema.ValidationError as error:
        raise kubernetes_validate.ValidationError(error, version) from None
    return version  # a CRD's schema is the operator's, the same on every Kubernetes version


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
    deployment = copy.deepcopy(synth("default").object("Deployment", "mlflow"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, SUPPORTED_VERSIONS[-1])


def test_a_custom_resource_is_validated_strictly_too(synth) -> None:  # type: ignore[no-untyped-def]
    """The ServiceMonitor (on in the maximal config) passes its CRD's schema; a misspelt
    field, a wrong type and a duration Prometheus would not read each fail it."""
    [monitor] = synth("test-maximal").objects("ServiceMonitor")
    assert validate(monitor, SUPPORTED_VERSIONS[-1]) == SUPPORTED_VERSIONS[-1]
    for path, value in (
        (("spec", "endpoints", 0, "scrapeTimout"), "15s"),
        (("spec", "endpoints", 0, "port"), 9464),
        (("spec", "endpoints", 0, "interval"), "30 seconds"),
        (("spec", "selektor"), {}),
    ):
        broken = copy.deepcopy(monitor)
        parent = broken
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(broken, SUPPORTED_VERSIONS[-1])
