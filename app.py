#!/usr/bin/env python3
"""CDK entry point: read the config file, validate it, build the stacks, write review manifests.

cdk synth                              # the defaults: a complete new deployment
cdk synth -c config=config/examples/postgres.yaml
cdk deploy --all -c config=my.yaml [-c allow_data_destroy=true]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# jsii prints an 11-line Node 20 end-of-life banner when its runtime starts (at the import of
# aws_cdk below); `npx cdk ...` run directly, not through make, would show it on every command.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# V8 gives that node process a pool of background threads, one per core, for its garbage
# collector and compiler; on a synth they burn more CPU than they save. With one thread a
# `python app.py` took 5.6 s of node CPU and 5.9 s of wall time, against 9.2 s and 7.2 s (2 cores,
# docs/testing.md). A --v8-pool-size the user gives in NODE_OPTIONS is kept.
if "--v8-pool-size" not in os.environ.get("NODE_OPTIONS", ""):
    os.environ["NODE_OPTIONS"] = f"{os.environ.get('NODE_OPTIONS', '')} --v8-pool-size=1".strip()

import aws_cdk as cdk
import yaml

from config import ConfigError, check_context, load_settings
from mlflow_on_eks.constructs_lib.review import review_header
from stacks import DESTROY_FLAG, Deployment, build_deployment


def main() -> int:
    app = cdk.App()
    config_path = app.node.try_get_context("config")
    try:
        check_context(app.node.get_all_context())
        settings = load_settings(config_path)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    allow_destroy = _flag(app.node.try_get_context(DESTROY_FLAG))
    deployment = build_deployment(app, settings, allow_destroy=allow_destroy)
    assembly = app.synth()
    outdir = Path(assembly.directory)
    prune_stale_outputs(outdir, {stack.id for stack in assembly.stacks})
    write_review_manifests(deployment, outdir)
    return 0


def prune_stale_outputs(outdir: Path, stack_ids: set[str]) -> None:
    """Remove what an earlier synth (another config) left in cdk.out, so a reviewer reads
    this run's templates and manifests only."""
    for kind in ("template", "assets", "metadata"):
        for path in outdir.glob(f"*.{kind}.json"):
            if path.name.removesuffix(f".{kind}.json") not in stack_ids:
                path.unlink()
    for path in (outdir / "manifests").glob("*.yaml"):
        path.unlink()


def write_review_manifests(deployment: Deployment, outdir: Path) -> Path:
    """Write the chart's objects as YAML beside the templates (cdk.out/manifests/)."""
    target = outdir / "manifests"
    target.mkdir(exist_ok=True)
    objects = deployment.mlflow.tracking_server.review_manifests()
    stack_name = deployment.mlflow.stack_name
    body = yaml.safe_dump_all(objects, sort_keys=False)
    path = target / f"{stack_name}.yaml"
    header = review_header(stack_name, f"{deployment.mlflow.artifact_id}.template.json", body)
    path.write_text(header + body, encoding="utf-8")
    return path


def _flag(value: object) -> bool:
    """Context values arrive as strings from -c and as JSON values from cdk.json."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value) if value is not None else False


if __name__ == "__main__":
    sys.exit(main())
