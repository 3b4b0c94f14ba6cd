"""Compliance fixtures: each configuration synthesized once more, with cdk-nag as a plugin."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cdk_nag import AwsSolutionsChecks

from config import Settings
from tests.conftest import CONFIGS, ROOT, per_config, share_staged_files, synth_app

VALIDATION_REPORT = "validation-report.json"
"""Where CDK's policy validation writes its report in the cloud assembly."""


class NagFindings(Exception):
    """The synth failed validation; the message is CDK's report of the findings."""


def synth_with_nag(settings: Settings, outdir: Path, *, allow_destroy: bool = False) -> Path:
    """Synthesize `settings` with AwsSolutions registered as CDK validation plugin.

    The plugin must be registered before `app.synth()`. Under pytest CDK runs in-memory mode:
    any unacknowledged finding makes synth raise, with the report as message.
    Returns the cloud assembly directory.
    """
    try:
        _, assembly = synth_app(
            settings, outdir, allow_destroy=allow_destroy, plugins=(AwsSolutionsChecks,)
        )
    except Exception as error:  # jsii re-raises CDK's ValidationError as a RuntimeError
        if "AwsSolutions-" in str(error):
            raise NagFindings(str(error)) from None
        raise
    return Path(assembly.directory)


@pytest.fixture(scope="session")
def nag_synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`nag_synth("postgres")`: the assembly of that configuration synthesized with cdk-nag."""
    return per_config(
        tmp_path_factory, "nag", lambda _name, settings, outdir: synth_with_nag(settings, outdir)
    )


def assembly_messages(outdir: Path, level: str = "warning") -> dict[str, list[str]]:
    """`aws:cdk:<level>` messages of each stack, from the manifest and the metadata files."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    messages: dict[str, list[str]] = {}
    for artifact_id, artifact in manifest["artifacts"].items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        metadata = dict(artifact.get("metadata") or {})
        if "additionalMetadataFile" in artifact:
            extra = json.loads((outdir / artifact["additionalMetadataFile"]).read_text())
            for path, entries in extra.items():
                metadata[path] = [*metadata.get(path, []), *entries]
        messages[artifact_id] = [
            str(entry["data"])
            for entries in metadata.values()
            for entry in entries
            if entry["type"] == f"aws:cdk:{level}"
        ]
    return messages


@dataclass
class CliSynth:
    returncode: int
    output: str
    outdir: Path


def _env() -> dict[str, str]:
    # Without pytest's variables, so CDK runs the app as the CLI does (not "in-memory" mode).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env.pop("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", None)
    return env


@pytest.fixture(scope="session")
def cli_synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliSynth]:
    """Every configuration synthesized by the CLI, all started at once (they wait on I/O)."""
    running = {}
    for name, path in sorted(CONFIGS.items()):
        outdir = tmp_path_factory.mktemp(f"cli-{name}")
        command = ["npx", "--no-install", "cdk", "synth", "--quiet", "-o", str(outdir)]
        if path is not None:
            command += ["-c", f"config={path.relative_to(ROOT)}"]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running[name] = (process, outdir)
    results = {}
    for name, (process, outdir) in running.items():
        output, _ = process.communicate(timeout=600)
        results[name] = CliSynth(process.returncode, output, outdir)
        share_staged_files(outdir)
    return results
