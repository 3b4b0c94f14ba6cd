"""`make verify` (scripts/verify.py) against a stand-in kubectl, and the CronJob it starts from.

No machine here runs a Kubernetes API server: the stand-in answers `create job --from`, `get
job -o json` (a Job's status as the batch/v1 reference documents it: conditions of type
Complete or Failed) and `logs` as kubectl does, and records what it was asked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Synth

ROOT = Path(__file__).resolve().parents[2]

FAKE_KUBECTL = """#!{python}
import json, pathlib, sys
state = pathlib.Path({state!r})
calls = json.loads(state.read_text()) if state.exists() else []
calls.append(sys.argv[1:])
state.write_text(json.dumps(calls))
args = sys.argv[1:]
if "create" in args:
    if {missing!r}:
        sys.stderr.write('Error from server (NotFound): cronjobs.batch "mlflow-verify" not found')
        sys.exit(1)
    print("job.batch/" + args[-1] + " created")
elif "get" in args:
    asked = sum(1 for c in calls if "get" in c)
    ended = {{"conditions": [{{"type": {verdict!r}, "status": "True"}}]}}
    status = {{}} if asked < {polls} else ended
    print(json.dumps({{"kind": "Job", "status": status}}))
elif "logs" in args:
    print("internal http://mlflow-internal...: signed in, created a run, read it back")
"""


def _run(
    tmp_path: Path,
    *,
    verdict: str = "Complete",
    missing: bool = False,
    config: str = "",
    polls: int = 1,
):
    """scripts/verify.py with the stand-in kubectl, which gives the verdict at poll `polls`."""
    state = tmp_path / "calls.json"
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(
        FAKE_KUBECTL.format(
            python=sys.executable, state=str(state), verdict=verdict, missing=missing, polls=polls
        )
    )
    kubectl.chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "verify.py"), *([config] if config else [])],
        capture_output=True,
        text=True,
        env={"KUBECTL": str(kubectl), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    calls = json.loads(state.read_text()) if state.exists() else []
    return result, calls


def test_a_passing_check_exits_zero_with_its_log(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, polls=2)
    assert result.returncode == 0, result.stderr
    [create, *gets, logs] = calls
    assert create[:5] == ["-n", "mlflow", "create", "job", "--from=cronjob/mlflow-verify"]
    job = create[5]
    assert job.startswith("mlflow-verify-manual-")
    assert all(g == ["-n", "mlflow", "get", "job", job, "-o", "json"] for g in gets)
    assert len(gets) == 2  # polled until the Job ended
    assert logs == ["-n", "mlflow", "logs", f"job/{job}"]
    assert "signed in, created a run" in result.stdout
    assert f"job/{job}: the check passed" in result.stdout


def test_a_failed_check_exits_non_zero_and_says_how_to_look(tmp_path: Path) -> None:
    result, _ = _run(tmp_path, verdict="Failed")
    assert result.returncode == 1
    assert "signed in, created a run" in result.stdout  # the log is printed either way
    assert "failed: kubectl -n mlflow describe job/mlflow-verify-manual-" in result.stderr


def test_without_the_cronjob_it_says_why(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, missing=True)
    assert result.returncode == 1 and len(calls) == 1
    assert "could not start the check from cronjob/mlflow-verify in namespace mlflow" in (
        result.stderr
    )
    assert "was this version deployed?" in result.stderr


def test_without_kubectl_it_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "verify.py")],
        capture_output=True,
        text=True,
        env={"KUBECTL": str(tmp_path / "no-kubectl"), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "no-kubectl not found: make verify runs kubectl, pointed at the cluster" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_the_configs_namespace_and_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "team.yaml"
    config.write_text("server:\n  namespace: team-ml\n")
    result, calls = _run(tmp_path, config=str(config))
    assert result.returncode == 0 and calls[0][:2] == ["-n", "team-ml"]
    config.write_text("deploy_check:\n  enabled: false\n")
    result, calls = _run(tmp_path, config=str(config))
    assert result.returncode == 2 and "no check is deployed" in result.stderr
    config.write_text("server:\n  replicas: 0\n")
    result, _ = _run(tmp_path, config=str(config))
    assert result.returncode == 2 and "server.replicas" in result.stderr


@pytest.mark.parametrize("config", ["default", "test-private"])
def test_the_cronjob_is_the_checks_pod_without_the_rollout_wait_or_signal(
    config: str, synth: Callable[[str], Synth]
) -> None:
    result = synth(config)
    [job] = [j for j in result.objects("Job") if j["metadata"]["name"].startswith("mlflow-verify")]
    [cron] = [c for c in result.objects("CronJob") if c["metadata"]["name"] == "mlflow-verify"]
    assert cron["spec"]["suspend"] is True
    assert cron["spec"]["schedule"] == "0 0 31 2 *"  # never: started on demand only
    on_demand = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    after_deploy = job["spec"]["template"]["spec"]

    def env(spec: dict) -> dict[str, str]:
        return {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}

    # Without the rollout wait and the CloudFormation signal, and nothing else.
    rollout_and_signal = {
        "MLFLOW_VERIFY_SIGNAL_URL",
        "MLFLOW_VERIFY_DEPLOYMENT",
        "MLFLOW_VERIFY_NAMESPACE",
        "MLFLOW_VERIFY_IMAGE",
        "MLFLOW_VERIFY_ROLLOUT_TIMEOUT_SECONDS",
        "MLFLOW_VERIFY_POD_ANNOTATION",
    }
    assert set(env(after_deploy)) - set(env(on_demand)) == rollout_and_signal & set(
        env(after_deploy)
    )
    assert set(env(on_demand)) <= set(env(after_deploy))
    assert "MLFLOW_VERIFY_SIGNAL_URL" in env(after_deploy)
    assert env(on_demand)["MLFLOW_VERIFY_TARGETS"] == env(after_deploy)["MLFLOW_VERIFY_TARGETS"]
    # The same pod otherwise: account, security, node placement, resources.
    for key in ("serviceAccountName", "securityContext", "nodeSelector", "tolerations"):
        assert on_demand.get(key) == after_deploy.get(key), key
    assert on_demand["containers"][0]["resources"] == after_deploy["containers"][0]["resources"]
    # So the NetworkPolicy that fences the check selects these pods too.
    labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "deploy-check"
    output = result.templates["Mlflow"]["Outputs"]["VerifyCommand"]["Value"]
    assert output == (
        "kubectl -n mlflow create job --from=cronjob/mlflow-verify mlflow-verify-manual-$(date +%s)"
    )
