"""Shared fixtures: each example configuration is synthesized once per test session."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# One V8 background thread for jsii's node process, as app.py gives it: the workers' in-process
# synths then cost about a fifth less CPU (docs/testing.md), and the suite is CPU-bound.
if "--v8-pool-size" not in os.environ.get("NODE_OPTIONS", ""):  # xdist's workers inherit it
    os.environ["NODE_OPTIONS"] = f"{os.environ.get('NODE_OPTIONS', '')} --v8-pool-size=1".strip()

import aws_cdk as cdk
import pytest
from aws_cdk import assertions

from config import Settings, load_settings
from stacks import Deployment, build_deployment

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "config" / "examples"
TEST_CONFIGS = ROOT / "tests" / "configs"
CONFIGS: dict[str, Path | None] = {
    "default": None,
    **{path.stem: path for path in sorted(EXAMPLES.glob("*.yaml"))},
    **{f"test-{path.stem}": path for path in sorted(TEST_CONFIGS.glob("*.yaml"))},
}
"""Every configuration the product promises to synthesize: the defaults, each example, and the
test-only ones (tests/configs: maximal, minimal, private) that together set every documented
setting to a non-default value (tests/compliance/test_settings_coverage.py), so that every gate
sees them."""


# `make test` runs the suite on two pytest-xdist workers with `--dist loadgroup`: tests are
# handed out one by one, except those of one xdist_group, which run on one worker in a row. Each
# worker has its own session fixtures (synths, database servers, moto), so a fixture built for
# several tests is built once only where all of them are in one group.
SHARED_SESSION_FIXTURES = ("cli_synths", "nag_synth", "replicated_db")
"""Session fixtures costly enough to keep their tests on one worker: every configuration
through the CDK CLI, every configuration with cdk-nag, the primary-and-replica pairs."""
XDIST_GROUPS = "xdist-groups.json"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups every test of a module that uses a module-scoped fixture (built once, not once
    per worker) or one of SHARED_SESSION_FIXTURES; a group a module names itself (the
    port-80 modules' `PORT_80`) is kept. A worker also writes the groups where the
    controller's scheduler reads them (`pytest_xdist_make_scheduler`)."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    for module, its_items in modules.items():
        if any(item.get_closest_marker("xdist_group") for item in its_items):
            continue
        group = None
        for item in its_items:
            defs = item._fixtureinfo.name2fixturedefs  # pytest offers no public view of these
            shared = sorted(set(SHARED_SESSION_FIXTURES) & set(defs))
            if shared:
                group = shared[0]
                break
            if any(d.scope in ("module", "class") for fds in defs.values() for d in fds):
                group = module
        if group:
            for item in its_items:
                item.add_marker(pytest.mark.xdist_group(group))
    if hasattr(config, "workerinput"):
        groups = {
            item.nodeid: str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for item in items
            if (mark := item.get_closest_marker("xdist_group"))
        }
        # Each worker collects the same tests: the last to write writes what the first wrote.
        shared_dir = config._tmp_path_factory.getbasetemp().parent  # type: ignore[attr-defined]
        written = shared_dir / f".{XDIST_GROUPS}.{config.workerinput['workerid']}"
        written.write_text(json.dumps(groups))
        written.replace(shared_dir / XDIST_GROUPS)


@pytest.hookimpl(optionalhook=True)  # only with pytest-xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` that reads the groups from the workers' file. xdist 3.8 hands the
    groups to its scheduler as a suffix of each test's id, which pytest 9.2 no longer lets
    it change (pytest-xdist issue 1386: the groups are silently ignored)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    path = config._tmp_path_factory.getbasetemp() / XDIST_GROUPS  # type: ignore[attr-defined]

    class FileGroupScheduling(LoadGroupScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first asked once every worker has collected
                self.groups = json.loads(path.read_text())
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return FileGroupScheduling(config, log)


def cdk_json_context() -> dict[str, Any]:
    """The feature flags from cdk.json, so in-process synths match `cdk synth`."""
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


@dataclass
class Synth:
    """One synthesized configuration."""

    name: str
    settings: Settings
    deployment: Deployment
    outdir: Path
    templates: dict[str, dict[str, Any]]
    """Template JSON by stack id (Network, Data, Cluster, Mlflow)."""
    manifests: list[dict[str, Any]]
    """The Kubernetes objects the server stack applies, intrinsics as ${...} placeholders."""

    def template(self, stack_id: str) -> assertions.Template:
        return assertions.Template.from_json(self.templates[stack_id])

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.manifests if obj["kind"] == kind]

    def object(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.objects(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]


def synthesize(
    name: str,
    settings: Settings,
    outdir: Path,
    *,
    allow_destroy: bool = False,
) -> Synth:
    deployment, assembly = synth_app(settings, outdir, allow_destroy=allow_destroy)
    templates = {
        stack.node.id: assembly.get_stack_by_name(stack.stack_name).template
        for stack in _stacks(deployment)
    }
    return Synth(
        name=name,
        settings=settings,
        deployment=deployment,
        outdir=Path(assembly.directory),
        templates=templates,
        manifests=deployment.mlflow.tracking_server.review_manifests(),
    )


def synth_app(
    settings: Settings,
    outdir: Path,
    *,
    allow_destroy: bool = False,
    plugins: tuple[Callable[[cdk.App], Any], ...] = (),
) -> tuple[Deployment, Any]:
    """`settings`' deployment synthesized into `outdir` (CDK validation `plugins` registered
    first, each made from the app), its staged files shared (share_staged_files); the
    deployment and the cloud assembly."""
    app = cdk.App(outdir=str(outdir), context=cdk_json_context())
    for plugin in plugins:
        cdk.Validations.of(app).add_plugins(plugin(app))
    deployment = build_deployment(app, settings, allow_destroy=allow_destroy)
    assembly = app.synth()
    share_staged_files(outdir)
    return deployment, assembly


def _stacks(deployment: Deployment) -> list[cdk.Stack]:
    stacks = [deployment.network, deployment.data, deployment.cluster, deployment.mlflow]
    return [stack for stack in stacks if stack is not None]


def per_config(
    tmp_path_factory: pytest.TempPathFactory,
    prefix: str,
    build: Callable[[str, Settings, Path], T],
) -> Callable[[str], T]:
    """A by-name getter that builds each configuration once, in its own temporary outdir."""
    cache: dict[str, T] = {}

    def get(name: str) -> T:
        if name not in cache:
            outdir = tmp_path_factory.mktemp(f"{prefix}-{name}")
            cache[name] = build(name, load_settings(CONFIGS[name]), outdir)
        return cache[name]

    return get


def share_staged_files(outdir: Path) -> None:
    """Every staged asset file in `outdir` made a hard link to one copy beside it (outdirs are
    made in a worker's basetemp, so one store per worker). Each synth stages the kubectl and AWS
    CLI layers, 57 MB of zips; a session keeps dozens of synths, and CI's disk ran out (ENOSPC)
    with a copy in each. An asset's name holds its content's hash, so one name is one content,
    and the files read the same as before."""
    store = outdir.parent / "staged-assets"
    store.mkdir(exist_ok=True)
    for staged in outdir.glob("asset.*"):
        if not staged.is_file():
            continue
        shared = store / staged.name
        if not shared.exists():
            os.link(staged, shared)
            continue
        linked = staged.with_name(staged.name + ".link")
        os.link(shared, linked)
        os.replace(linked, staged)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Synth]:
    """`synth("postgres")`: that configuration synthesized (cached for the session)."""
    return per_config(tmp_path_factory, "cdk", synthesize)


@pytest.fixture(scope="session", params=sorted(CONFIGS))
def each_config(request: pytest.FixtureRequest, synth: Callable[[str], Synth]) -> Synth:
    """Parametrizes a test over every configuration."""
    return synth(request.param)


def resources_of(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by logical ID."""
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_}


def only_resource(template: dict[str, Any], type_: str) -> tuple[str, dict[str, Any]]:
    """The one resource of `type_` (logical ID, resource); fails unless there is exactly one."""
    found = resources_of(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def primary_database(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The one RDS instance that is not a read replica (logical ID, resource)."""
    instances = resources_of(template, "AWS::RDS::DBInstance")
    primaries = [
        (key, r)
        for key, r in instances.items()
        if "SourceDBInstanceIdentifier" not in r["Properties"]
    ]
    assert len(primaries) == 1, f"expected one primary RDS instance, found {sorted(instances)}"
    return primaries[0]


_ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def normalise_assets(value: Any, revision: str | None = None) -> Any:
    """Asset hashes replaced, so snapshots change only when the deployment does; and the
    workload's revision (a digest that covers the image, so changes with any edit under
    image/), with the logical-ID hash CDK derives from it, in keys and values alike."""

    def text(item: str) -> str:
        item = _ASSET_HASH.sub("<asset-hash>", item)
        if revision:
            item = re.sub(rf"{revision}([0-9A-F]{{8}})?", "<revision>", item)
        return item

    if isinstance(value, str):
        return text(value)
    if isinstance(value, list):
        return [normalise_assets(item, revision) for item in value]
    if isinstance(value, dict):
        return {text(key): normalise_assets(item, revision) for key, item in value.items()}
    return value
