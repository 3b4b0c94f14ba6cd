"""The commands users run: `cdk synth` exits non-zero with a readable message on bad config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_on_eks.constructs_lib.tracking_server import PLAIN_HTTP_SIGN_IN_WARNING
from tests.conftest import ROOT


def run_app(tmp_path: Path, context: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """app.py exactly as the CDK CLI starts it (context arrives in CDK_CONTEXT_JSON)."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path / "out"),
    }
    return subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "exposure:\n  external:\n    enabled: true\n    allowed_cidrs: []\n",
            "exposure.external.allowed_cidrs: is empty",
        ),
        ("server:\n  replcas: 3\n", "server.replcas: unknown key; did you mean 'replicas'?"),
        ("database: {engine: [\n", "not valid YAML"),
    ],
)
def test_bad_config_fails_synth_without_traceback(tmp_path: Path, text: str, expected: str) -> None:
    result = run_app(tmp_path, {"config": str(write(tmp_path, text))})
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_app(tmp_path, {"config": str(tmp_path / "absent.yaml")})
    assert result.returncode == 2
    assert "config file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_cdk_cli_reports_bad_config(tmp_path: Path) -> None:
    """Through the pinned CDK CLI itself: non-zero exit, and every problem of the file on the
    terminal in one run, each at its key."""
    path = write(
        tmp_path,
        "auth: {enabled: true}\n"
        "server:\n  replicas: 0\n  namespace: Team_ML\n"
        "exposure:\n  external: {enabled: true, allowed_cidrs: [0.0.0.0/1, 128.0.0.0/1]}\n"
        "servr: {}\n"
        "auth: {default_permission: EDIT}\n",
    )
    result = subprocess.run(
        [
            "npx",
            "--no-install",
            "cdk",
            "synth",
            "--quiet",
            "-c",
            f"config={path}",
            "-o",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    for line in (
        "line 8: 'auth' appears again (first at line 1)",
        "server.replicas: Input should be greater than or equal to 1",
        "server.namespace: expected a DNS-1123 label",
        "exposure.external.certificate_arn: is required with enabled: true",
        "exposure.external.allowed_cidrs: 0.0.0.0/1, 128.0.0.0/1 together cover 0.0.0.0/0",
        "servr: unknown key; did you mean 'server'?",
    ):
        assert line in result.stderr, result.stderr


@pytest.mark.parametrize("target", ["deploy", "diff", "destroy"])
def test_account_changing_targets_need_a_named_config(target: str) -> None:
    """Without CONFIG, `make destroy` would act on the default stack names, which may be
    another deployment than the one the user meant."""
    env = {k: v for k, v in os.environ.items() if k != "CONFIG"}
    # -o: take the venv and node_modules stamps as given; only the recipe runs.
    result = subprocess.run(
        ["make", "-o", ".venv/bin/.stamp-runtime", "-o", "node_modules/.stamp", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"name the config: make {target} CONFIG=my.yaml" in result.stderr


def test_destroy_takes_the_stateless_stacks_of_the_named_config() -> None:
    result = subprocess.run(
        ["make", "-n", "-o", ".venv/bin/.stamp-runtime", "-o", "node_modules/.stamp", "destroy"],
        cwd=ROOT,
        env={**os.environ, "CONFIG": "my.yaml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "npx cdk destroy -c config=my.yaml Mlflow Cluster" in result.stdout


@pytest.mark.parametrize(
    ("target", "installs_test_tools"), [("synth", False), ("unit", True), ("test", True)]
)
def test_synth_installs_only_what_synth_needs(target: str, installs_test_tools: bool) -> None:
    """A fresh clone's `make synth` used to install the whole test tool chain first (1.1 GB,
    minutes); -B shows every recipe a fresh clone would run, -n runs none."""
    result = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stdout.splitlines() if "pip install" in line]
    runtime = [line for line in installs if line.endswith(" -r requirements.txt")]
    dev = [line for line in installs if line.endswith(" -r requirements-dev.txt")]
    assert bool(dev) is installs_test_tools, installs
    # The runtime's pins: requirements.txt itself (pip, `make synth`), or with the test tools
    # (uv), which name it.
    dev_requirements = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert runtime or (dev and "-r requirements.txt" in dev_requirements), installs
    # The AWS CLI the integration tests run the printed kubeconfig command with, hash-locked.
    awscli = [line for line in installs if line.endswith(" -r requirements-awscli.txt")]
    assert bool(awscli) is (target == "test"), installs
    assert all("--require-hashes" in line for line in awscli), awscli


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"conifg": "my.yaml"}, "-c conifg: unknown context key; did you mean 'config'?"),
        ({"config": ""}, "-c config: is empty; name a YAML file"),
        ({"allow_data_destroyy": "true"}, "did you mean 'allow_data_destroy'?"),
    ],
)
def test_a_mistyped_or_empty_context_key_deploys_nothing(
    tmp_path: Path, context: dict[str, str], expected: str
) -> None:
    """Without this, `cdk synth -c conifg=my.yaml` synthesized the defaults: a new VPC and
    cluster where the user meant their existing one."""
    result = run_app(tmp_path, {**context, "@aws-cdk/core:checkSecretUsage": True})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_cdk_out_shows_this_run_only(tmp_path: Path) -> None:
    """After a synth of another config, only this run's templates and manifests remain."""
    first = run_app(tmp_path, {"config": "config/examples/postgres.yaml"})
    assert first.returncode == 0, first.stderr
    second = run_app(tmp_path, {"config": "config/examples/existing-cluster.yaml"})
    assert second.returncode == 0, second.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.template.json")) == [
        "Data.template.json",
        "Mlflow.template.json",
    ]
    assert [p.name for p in (out / "manifests").glob("*.yaml")] == ["mlflow-prod-server.yaml"]


@pytest.mark.parametrize(
    "command",
    [
        ["app.py"],
        ["-m", "config.reference"],
        ["-c", "import mlflow_on_eks.constructs_lib"],
        ["-c", "import mlflow_on_eks.k8s_charts"],
    ],
    ids=["app", "docs", "library", "charts"],
)
def test_every_entry_point_silences_the_node_banner(tmp_path: Path, command: list[str]) -> None:
    """`npx cdk synth` run directly (not through make), `python -m config.reference`, and an
    app that imports the library must not print jsii's Node banner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JSII_SILENCE")}
    env |= {"CDK_CONTEXT_JSON": "{}", "CDK_OUTDIR": str(tmp_path / "out")}
    result = subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "end-of-life" not in result.stderr.lower() and "!!" not in result.stderr


def _cdk_synth(tmp_path: Path, config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """The pinned CDK CLI, with no AWS credentials or profile in reach."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent"}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", *options]
    command += ["-c", f"config={config}", "-o", str(tmp_path / "out")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_new_vpc_with_named_zones_synthesizes_offline(tmp_path: Path) -> None:
    """With aws.account and aws.region set, CDK looks the region's AZs up (credentials
    needed) unless the config names them; --no-lookups makes any lookup an error."""
    place = 'aws: {account: "111122223333", region: eu-west-1}\n'
    named = write(tmp_path, place + "cluster: {availability_zones: [eu-west-1b, eu-west-1c]}\n")
    context_file = ROOT / "cdk.context.json"
    context_before = context_file.read_bytes() if context_file.exists() else None
    result = _cdk_synth(tmp_path, named, "--no-lookups")
    assert result.returncode == 0, result.stderr
    # The one warning by design (sign-in over plain HTTP, as by default); no other, a lookup's
    # included.
    others = result.stderr.replace(f"WARNING {PLAIN_HTTP_SIGN_IN_WARNING}", "")
    assert others != result.stderr, result.stderr
    assert "WARNING" not in others and "Warning" not in others, result.stderr
    network = json.loads((tmp_path / "out" / "Network.template.json").read_text())
    zones = {
        r["Properties"]["AvailabilityZone"]
        for r in network["Resources"].values()
        if r["Type"] == "AWS::EC2::Subnet"
    }
    assert zones == {"eu-west-1b", "eu-west-1c"}
    # Nothing was looked up and cached.
    assert (context_file.read_bytes() if context_file.exists() else None) == context_before
    # What the README says happens without them: a lookup, refused here.
    unnamed = write(tmp_path, place)
    result = _cdk_synth(tmp_path, unnamed, "--no-lookups")
    assert result.returncode != 0
    assert "availability-zones:account=111122223333:region=eu-west-1" in result.stderr


_NODE_OPTIONS_AT_JSII_START = """
import os, runpy, sys

class _AtJsiiStart:
    # aws_cdk's import starts jsii's node process with this environment: print it and stop.
    def find_spec(self, name, path=None, target=None):
        if name == "aws_cdk":
            print(os.environ.get("NODE_OPTIONS", ""), flush=True)
            os._exit(0)

sys.meta_path.insert(0, _AtJsiiStart())
runpy.run_path("app.py", run_name="__main__")
"""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "--v8-pool-size=1"),
        ("--max-old-space-size=2048", "--max-old-space-size=2048 --v8-pool-size=1"),
        ("--v8-pool-size=4", "--v8-pool-size=4"),
    ],
)
def test_jsii_node_gets_one_v8_thread_unless_the_user_chose(given: str | None, expected: str):
    """What jsii's node process starts with: one V8 background thread (docs/testing.md, "jsii's
    node process with one V8 background thread"), after the user's own options, whose pool
    size wins when they set one."""
    env = {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"}
    if given is not None:
        env["NODE_OPTIONS"] = given
    result = subprocess.run(
        [sys.executable, "-c", _NODE_OPTIONS_AT_JSII_START],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
