"""No secrets in synthesized output: every file of every configuration's cloud assembly."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.compliance.conftest import CliSynth
from tests.compliance.secret_scan import scan, vendored_layers
from tests.conftest import CONFIGS, Synth


def test_assembly_has_no_secrets(each_config: Synth) -> None:
    result = scan(each_config.outdir)
    assert [f"{f.file}: {f.kind}: {f.text}" for f in result.findings] == []
    names = set(result.scanned)
    assert {"manifest.json", "tree.json"} <= names
    assert {f"{stack}.template.json" for stack in each_config.templates} <= names
    assert any(name.endswith("Dockerfile") for name in names), "the image asset is scanned"
    # Only layers byte-identical to the pinned packages' own are skipped, and they are zips.
    assert all(name.endswith(".zip") for name in result.vendored)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_what_the_cli_writes_has_no_secrets(name: str, cli_synths: dict[str, CliSynth]) -> None:
    """What a user reads after `make synth`: the CLI's cdk.out, with the review manifests
    app.py writes beside the templates (the in-process synths above have none)."""
    outdir = cli_synths[name].outdir
    result = scan(outdir)
    assert [f"{f.file}: {f.kind}: {f.text}" for f in result.findings] == []
    manifests = sorted(p.relative_to(outdir).as_posix() for p in outdir.glob("manifests/*.yaml"))
    assert manifests, "app.py wrote no review manifests"
    assert set(manifests) <= set(result.scanned)


def test_vendored_layers_are_known() -> None:
    assert len(vendored_layers()) >= 2  # the AWS CLI and at least one kubectl layer


def _plant_in_manifest(directory: Path) -> None:
    """An environment variable with the password in the chart, inside the template."""
    path = directory / "Mlflow.template.json"
    template = json.loads(path.read_text())
    manifest = next(
        r
        for r in template["Resources"].values()
        if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource"
        and "envFrom" in json.dumps(r["Properties"]["Manifest"])
    )
    # The manifest is an Fn::Join of JSON text and deploy-time values.
    parts = manifest["Properties"]["Manifest"]["Fn::Join"][1]
    index = next(
        i for i, part in enumerate(parts) if isinstance(part, str) and '"envFrom":[' in part
    )
    parts[index] = parts[index].replace(
        '"envFrom":[',
        '"env":[{"name":"MLFLOW_DB_PASSWORD","value":"hunter2hunter2"}],"envFrom":[',
        1,
    )
    path.write_text(json.dumps(template))


def _plant_secret_resource(directory: Path) -> None:
    path = directory / "Mlflow.template.json"
    template = json.loads(path.read_text())
    template["Resources"]["Planted"] = {
        "Type": "AWS::SecretsManager::Secret",
        "Properties": {"SecretString": '{"username":"mlflow"}'},
    }
    path.write_text(json.dumps(template, indent=1))


def _plant_unwrapped_secret(directory: Path) -> None:
    """`secret_value.unsafe_unwrap()` into an output: a dynamic reference outside RDS."""
    path = directory / "Mlflow.template.json"
    template = json.loads(path.read_text())
    template.setdefault("Outputs", {})["Planted"] = {
        "Value": "{{resolve:secretsmanager:arn:aws:secretsmanager:eu-west-1:1:secret:x"
        ":SecretString:password::}}"
    }
    path.write_text(json.dumps(template))


def _plant_in_review_manifest(directory: Path) -> None:
    """The password as a pod env var in a review manifest (YAML, as app.py writes it)."""
    (directory / "manifests").mkdir(exist_ok=True)
    (directory / "manifests" / "mlflow-server.yaml").write_text(
        "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n"
        "      - name: server\n        env:\n        - name: MLFLOW_DB_PASSWORD\n"
        "          value: hunter2hunter2\n"
    )


def _plant_file(name: str, text: str) -> Callable[[Path], None]:
    def plant(directory: Path) -> None:
        (directory / name).write_text(text)

    return plant


def _plant_in_zip(directory: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("handler/id_rsa", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n")
    (directory / "asset.planted.zip").write_bytes(buffer.getvalue())


PLANTED = {
    "password env var": _plant_in_manifest,
    "password env var (YAML)": _plant_in_review_manifest,
    "password env var, value first": _plant_file(
        "asset.x/pod.json", '{"env": [{"value": "hunter2hunter2", "name": "DB_PASSWORD"}]}'
    ),
    "password env var, value first (YAML)": _plant_file(
        "manifests/extra.yaml", "env:\n- value: hunter2hunter2\n  name: DB_PASSWORD\n"
    ),
    "password value (YAML)": _plant_file("asset.x/values.yaml", "db:\n  password: hunter2\n"),
    "SecretString": _plant_secret_resource,
    "secret dynamic reference": _plant_unwrapped_secret,
    "aws access key id": _plant_file("asset.x/settings.py", 'KEY = "AKIA2E0A8F3B244C9986"\n'),
    "aws secret access key": _plant_file(
        "asset.x/.env", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY1\n"
    ),
    "private key": _plant_in_zip,
    "password value": _plant_file("asset.x/config.json", '{"db_password": "s3cr3t-value"}'),
    "password assignment": _plant_file("asset.x/app.py", "password = 'correct horse'\n"),
    "credentials in a URL": _plant_file(
        "asset.x/env", "MLFLOW_BACKEND_STORE_URI=mysql+mysqldb://mlflow:pw123@db:3306/mlflow\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_planted_secret_is_found(kind: str, tmp_path: Path, synth: Callable[[str], Synth]) -> None:
    """The scanner can fail: each kind of secret, planted in a copy of real output, is found."""
    source = synth("default").outdir
    for template in source.glob("*.template.json"):
        shutil.copy(template, tmp_path / template.name)
    (tmp_path / "asset.x").mkdir()
    (tmp_path / "manifests").mkdir()
    assert scan(tmp_path).findings == []
    PLANTED[kind](tmp_path)
    assert kind in {finding.kind for finding in scan(tmp_path).findings}
