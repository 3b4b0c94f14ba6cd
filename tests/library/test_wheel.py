"""The constructs as another CDK app meets them: built into a wheel, installed into a fresh venv
outside this checkout, imported by apps laid out like ours (with their own `k8s_charts/` and
`config.py`), synthesized. Uses only the public names of `mlflow_on_eks.constructs_lib`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.library

APPS = Path(__file__).with_name("apps")
QUIET_JSII = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)])
    [wheel] = dist.glob("mlflow_on_eks-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # The app's exact pins as constraints: the same versions, fetched once into pip's cache.
    # --no-compile: byte-compiling every module of aws-cdk-lib was 4/5 of the install's time;
    # Python compiles the modules the apps import when they import them.
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",
            "-c",
            str(ROOT / "requirements.txt"),
            str(wheel),
        ],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    yield Installed(wheel, python)
    shutil.rmtree(base)  # the venv is 430 MB, held until the session ends otherwise


IMAGE_PREFIX = "mlflow_on_eks/image/"


def _docker_context(directory: Path, outdir: Path) -> dict[str, bytes]:
    """What `cdk deploy` hands `docker build` for an image built from `directory`: CDK stages
    the asset with its .dockerignore applied by Docker's rules (the Dockerfile and
    .dockerignore always included, as Docker sends them too), and cdk-assets builds from that
    copy."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_ecr_assets as ecr_assets

    app = App(outdir=str(outdir))
    asset = ecr_assets.DockerImageAsset(Stack(app, "Context"), "Image", directory=str(directory))
    app.synth()
    return _files(outdir / f"asset.{asset.asset_hash}")


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _wheel_image_context(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            name.removeprefix(IMAGE_PREFIX): archive.read(name)
            for name in archive.namelist()
            if name.startswith(IMAGE_PREFIX)
        }


def test_wheel_ships_one_namespace(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("mlflow_on_eks-")}
    assert top_level == {"mlflow_on_eks"}
    for needed in (
        "mlflow_on_eks/constructs_lib/tracking_server.py",
        "mlflow_on_eks/k8s_charts/mlflow_chart.py",
    ):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or "/build/" in n or n.endswith(".pyc")]


def test_wheel_image_context_is_the_repositorys_docker_context(
    installed: Installed, tmp_path: Path
) -> None:
    """File for file and byte for byte: a module the wheel left out (the launcher's verify/
    subpackage once) made every command of an image built from an installed wheel fail."""
    # What a development checkout holds beside the sources (an in-tree `pip install` of the
    # launcher, bytecode): .dockerignore leaves it out, and so must the wheel.
    assert (ROOT / "image" / "launcher" / "build").is_dir(), "make .venv-image first"
    repository = _docker_context(ROOT / "image", tmp_path / "repository")
    wheel = _wheel_image_context(installed.wheel)
    assert sorted(wheel) == sorted(repository)
    assert wheel == repository
    assert "launcher/src/mlflow_launcher/verify/checks.py" in wheel


def test_the_launcher_from_the_wheel_starts(installed: Installed, tmp_path: Path) -> None:
    """The image's build steps on the wheel's context (pip install --no-deps of launcher/
    over the locked environment), then every subcommand's --help: each imports the CLI and
    so every module it loads."""
    context = tmp_path / "context"
    for name, data in _wheel_image_context(installed.wheel).items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_bytes(data)
    image_python = ROOT / ".venv-image" / "bin" / "python"
    assert image_python.exists(), "make .venv-image first (the image's locked environment)"
    target = tmp_path / "site"
    _run(
        [
            str(image_python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(context / "launcher"),
        ],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    located = _run(
        [str(image_python), "-c", "import mlflow_launcher; print(mlflow_launcher.__file__)"],
        env=env,
    )
    assert located.stdout.startswith(str(target)), located.stdout
    for command in ("migrate", "serve", "metrics", "gc", "verify", "local"):
        _run([str(image_python), "-m", "mlflow_launcher", command, "--help"], env=env)


def _app_dir(tmp_path: Path, app: str) -> Path:
    """An app directory with the same generic names as ours, which must not shadow the library."""
    directory = tmp_path / "app"
    (directory / "k8s_charts").mkdir(parents=True)
    (directory / "k8s_charts" / "__init__.py").write_text("APP_OWN_CHARTS = True\n")
    (directory / "config.py").write_text("APP_OWN_CONFIG = True\n")
    shutil.copy(APPS / app, directory / "app.py")
    return directory


def _synth(installed: Installed, directory: Path) -> Path:
    outdir = directory / "cdk.out"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(directory)),
        "CDK_OUTDIR": str(outdir),
        **QUIET_JSII,
    }
    result = _run([str(installed.python), "app.py"], cwd=directory, env=env, timeout=600)
    assert "Traceback" not in result.stderr, result.stderr
    return outdir


def _manifest_kinds(template: dict) -> list[str]:
    """Kinds of the objects the template's Kubernetes manifests apply (their literal parts)."""

    def strings(value: object) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict | list):
            for item in value.values() if isinstance(value, dict) else value:
                yield from strings(item)

    manifests = [
        r["Properties"]["Manifest"]
        for r in template["Resources"].values()
        if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource"
    ]
    return re.findall(r'"kind":"(\w+)"', "".join(s for m in manifests for s in strings(m)))


@pytest.mark.parametrize(
    ("app", "stacks"),
    [
        ("existing_cluster_app.py", {"MlflowData", "MlflowServer"}),
        ("new_cluster_app.py", {"Platform"}),
    ],
)
def test_an_external_app_synthesizes_from_the_wheel(
    installed: Installed, tmp_path: Path, app: str, stacks: set[str]
) -> None:
    directory = _app_dir(tmp_path, app)
    outdir = _synth(installed, directory)
    templates = {p.name.removesuffix(".template.json"): p for p in outdir.glob("*.template.json")}
    assert set(templates) == stacks
    server = json.loads(templates[sorted(stacks)[-1]].read_text())
    kinds = _manifest_kinds(server)
    assert {"Namespace", "Deployment", "Service", "ConfigMap", "NetworkPolicy"} <= set(kinds)
    # The image builds from the wheel's own copy of image/ (no checkout needed).
    assets = json.loads(next(outdir.glob(f"{sorted(stacks)[-1]}.assets.json")).read_text())
    [image] = assets["dockerImages"].values()
    context = outdir / image["source"]["directory"]
    assert (context / "Dockerfile").is_file()
    assert (context / "launcher" / "src" / "mlflow_launcher" / "server.py").is_file()


def test_the_library_installs_no_generic_top_level_names(installed: Installed) -> None:
    probe = (
        "import importlib.util as u; "
        "print([n for n in ('config','stacks','constructs_lib','k8s_charts','image') "
        "if u.find_spec(n)])"
    )
    result = _run([str(installed.python), "-c", probe], cwd="/", env={**os.environ, **QUIET_JSII})
    assert result.stdout.strip() == "[]"


def test_readme_example_is_the_tested_app() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use the constructs in your own CDK app", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert block == (APPS / "existing_cluster_app.py").read_text()
