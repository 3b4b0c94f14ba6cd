"""`make verify CONFIG=...`: the deploy check again, now, against the live deployment.

After a change made outside CDK (a DNS record, a security group, a certificate), this proves
the server as `cdk deploy` does, without a deploy: it creates a Job from the suspended
`<instance>-verify` CronJob the deploy applied (the check's pod, without the rollout wait and
the CloudFormation signal), waits for it, prints its log and exits 0 only if it passed.
Needs kubectl pointed at the cluster (the KubeconfigCommand output); `KUBECTL` overrides the
command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import ConfigError, load_settings
from mlflow_on_eks.constructs_lib.tracking_server import INSTANCE
from mlflow_on_eks.k8s_charts.deploy_check_chart import on_demand_name

WAIT_SECONDS = 45 * 60
"""Longer than the Job's own deadline (its checks' budget), which ends it first."""
POLL_SECONDS = 5.0


def _kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    command = [os.environ.get("KUBECTL", "kubectl"), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _outcome(namespace: str, job: str) -> str | None:
    """`Complete` or `Failed` once the Job has ended, else None."""
    result = _kubectl("-n", namespace, "get", "job", job, "-o", "json")
    if result.returncode != 0:
        raise RuntimeError(f"kubectl get job {job}: {result.stderr.strip()}")
    conditions = json.loads(result.stdout).get("status", {}).get("conditions", [])
    for condition in conditions:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def verify(config: str | None, *, wait_seconds: float = WAIT_SECONDS) -> int:
    settings = load_settings(None if config in (None, "", "default") else Path(config))
    if not settings.deploy_check.enabled:
        print("deploy_check.enabled is false in this config: no check is deployed", file=sys.stderr)
        return 2
    namespace = settings.server.namespace
    template = on_demand_name(INSTANCE)
    job = f"{template}-manual-{int(time.time())}"
    created = _kubectl("-n", namespace, "create", "job", f"--from=cronjob/{template}", job)
    if created.returncode != 0:
        print(
            f"could not start the check from cronjob/{template} in namespace {namespace}: "
            f"{created.stderr.strip()}\n(Is kubectl pointed at the cluster (KubeconfigCommand), "
            "and was this version deployed? The CronJob comes with the deploy check.)",
            file=sys.stderr,
        )
        return 1
    print(f"started job/{job} in namespace {namespace}; waiting for its verdict")
    deadline = time.monotonic() + wait_seconds
    outcome = None
    while outcome is None and time.monotonic() < deadline:
        outcome = _outcome(namespace, job)
        if outcome is None:
            time.sleep(POLL_SECONDS)
    logs = _kubectl("-n", namespace, "logs", f"job/{job}")
    print(logs.stdout, end="")
    if outcome == "Complete":
        print(f"job/{job}: the check passed")
        return 0
    why = "failed" if outcome == "Failed" else f"had no verdict after {wait_seconds:.0f} s"
    print(f"job/{job} {why}: kubectl -n {namespace} describe job/{job}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    try:
        return verify(argv[1] if len(argv) > 1 else None)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(
            f"{error.filename} not found: make verify runs kubectl, pointed at the cluster "
            "(the KubeconfigCommand output); KUBECTL names another command",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
