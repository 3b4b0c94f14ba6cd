"""cdk.out/manifests/<stack>.yaml: a header that explains every placeholder, and no noise."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import write_review_manifests
from mlflow_on_eks.constructs_lib.review import (
    PLACEHOLDERS,
    placeholder_forms,
    render_intrinsics,
    review_header,
)
from tests.conftest import CONFIGS, Synth

SynthFn = Callable[[str], Synth]


def written(synth: Synth) -> tuple[list[str], str]:
    """The review manifest as `make synth` writes it: (header lines, YAML body)."""
    text = write_review_manifests(synth.deployment, synth.outdir).read_text()
    lines = text.splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    assert lines[: len(header)] == header, "the comments are one block at the top"
    return [line.removeprefix("#").strip() for line in header], "".join(lines[len(header) :])


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_header_explains_every_placeholder_in_the_file(synth: SynthFn, config: str) -> None:
    s = synth(config)
    header, body = written(s)
    assert list(yaml.safe_load_all(body)) == s.manifests, "the body: the objects, as YAML"
    prose = " ".join(header)
    stack = s.deployment.mlflow.stack_name
    assert prose.startswith(
        f"The Kubernetes objects `cdk deploy` applies in stack {stack} "
        "(template cdk.out/Mlflow.template.json)"
    )
    assert "Rendered for review, not for `kubectl apply`" in prose
    forms = placeholder_forms(body)
    assert forms, "every configuration has deploy-time values"
    # Each `${` in the body starts a form the legend defines (a new form fails here)...
    literal = [
        body[m.start() : m.start() + 40] for m, f in zip(_starts(body), forms, strict=True) if not f
    ]
    assert not literal, f"placeholders without a legend in PLACEHOLDERS: {literal}"
    # ...and that form, with what it means, is in this file's header; no other form is.
    explained = [form.form for form in PLACEHOLDERS if form.form in header]
    assert explained == [form.form for form in PLACEHOLDERS if form in forms]
    for form in PLACEHOLDERS:
        if form.form in header:
            meaning = " ".join(header[header.index(form.form) + 1 :])
            assert meaning.startswith(" ".join(form.meaning.split()[:8]))


def test_the_default_deployment_shows_the_forms_a_reviewer_meets(synth: SynthFn) -> None:
    """What `make synth` shows today: pseudo parameters, this stack's resources, the data
    stack's outputs (weak references: cdk.json's defaultCrossStackReferences)."""
    header, _ = written(synth("default"))
    assert [line for line in header if line.startswith("${")] == [
        "${Ref:AWS::<Name>} or ${AWS::<Name>}",
        "${Ref:<LogicalId>}",
        "${GetAtt:<LogicalId>.<Attribute>}",
        "${Output:<StackName>.<OutputName>}",
    ]


def _starts(text: str) -> list[re.Match[str]]:
    return list(re.finditer(re.escape("${"), text))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_no_noise_in_what_is_applied(synth: SynthFn, config: str) -> None:
    """The chart drops what cdk8s emits and means nothing (k8s_charts/mlflow_chart.py), so
    the review file, and the KubernetesManifest it mirrors, show none of it."""
    s = synth(config)
    _, body = written(s)
    assert "spec: {}" not in body
    assert "externalIPs" not in body
    [namespace] = s.objects("Namespace")
    assert "namespace" not in namespace["metadata"] and "spec" not in namespace
    cluster_scoped = {"Namespace", "IngressClass"}
    for obj in s.manifests:
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], obj["kind"]
        else:
            assert obj["metadata"]["namespace"] == s.settings.server.namespace, obj["kind"]
    assert not _empty_collections(s.manifests)


def _empty_collections(value: Any, path: str = "") -> list[str]:
    """Paths of `{}` / `[]` values, except those that mean something: `emptyDir: {}` is a
    volume; `podSelector: {}` selects every pod; an empty `ingress`/`egress` rule list denies
    all; `matchLabels: {}` in a selector matches everything."""
    meaningful = {"emptyDir", "podSelector", "namespaceSelector", "ingress", "egress"}
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if item in ({}, []) and key not in meaningful:
                found.append(f"{path}/{key}")
            found += _empty_collections(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _empty_collections(item, f"{path}/{index}")
    return found


def test_meaningful_empty_values_are_written_as_they_are(tmp_path: Path) -> None:
    """Only the chart drops noise, and only by name: the review rendering keeps `{}` that
    means something (a memory volume; a policy over every pod)."""
    objects = [
        {"kind": "Pod", "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}},
        {"kind": "NetworkPolicy", "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
    ]
    rendered = render_intrinsics(objects)
    assert rendered == objects
    body = yaml.safe_dump_all(rendered, sort_keys=False)
    assert "emptyDir: {}" in body and "podSelector: {}" in body
    assert "Placeholders" not in review_header("s", "S.template.json", body)


@pytest.mark.parametrize(
    ("intrinsic", "rendered"),
    [
        ({"Ref": "AWS::Region"}, "${Ref:AWS::Region}"),
        ({"Ref": "Bucket83908E77"}, "${Ref:Bucket83908E77}"),
        ({"Fn::GetAtt": ["Role1ABCC5F0", "Arn"]}, "${GetAtt:Role1ABCC5F0.Arn}"),
        (
            {"Fn::GetStackOutput": {"StackName": "data", "OutputName": "Out", "Region": "x"}},
            "${Output:data.Out}",
        ),
        (
            {"Fn::ImportValue": "data:ExportsOutputRefVpc"},
            "${ImportValue:data:ExportsOutputRefVpc}",
        ),
        ({"Fn::Select": [0, {"Fn::GetAZs": ""}]}, "${Fn::Select:0,${Fn::GetAZs:}}"),
        (
            {"Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/r:t"},
            "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/r:t",
        ),
        ({"Fn::Join": ["-", ["a", {"Ref": "AWS::Region"}]]}, "a-${Ref:AWS::Region}"),
    ],
)
def test_every_form_the_renderer_emits_has_a_legend(intrinsic: Any, rendered: str) -> None:
    assert render_intrinsics(intrinsic) == rendered
    assert None not in placeholder_forms(rendered)


def test_a_new_form_without_a_legend_is_caught() -> None:
    assert placeholder_forms("x ${Secret:abc} ${Ref:X}") == [None, PLACEHOLDERS[1]]
