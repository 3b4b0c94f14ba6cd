"""The optional gc CronJob: off by default; when on, one run at a time with the server's
identity, never selected as a server, fenced by its own NetworkPolicy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config import Settings
from tests.conftest import Synth

SynthFn = Callable[[str], Synth]


def _cron_job(synth: Synth) -> dict[str, Any]:
    return synth.object("CronJob", "mlflow-gc")


def _pod(synth: Synth) -> dict[str, Any]:
    return _cron_job(synth)["spec"]["jobTemplate"]["spec"]["template"]


def test_off_by_default(each_config: Synth) -> None:
    assert Settings().gc.enabled is False
    if not each_config.settings.gc.enabled:
        # Only the deploy check's on-demand template (suspended) remains.
        names = [c["metadata"]["name"] for c in each_config.objects("CronJob")]
        assert names == ["mlflow-verify"] * each_config.settings.deploy_check.enabled


def test_runs_the_launcher_on_schedule_one_at_a_time(synth: SynthFn) -> None:
    s = synth("test-maximal")
    job = _cron_job(s)["spec"]
    assert job["schedule"] == "30 2 * * 0"
    assert job["concurrencyPolicy"] == "Forbid"
    assert job["startingDeadlineSeconds"] == 3600
    [container] = _pod(s)["spec"]["containers"]
    assert container["args"] == ["gc"] and "command" not in container
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "MLFLOW_GC_OLDER_THAN": "7d12h",
        "MLFLOW_GC_TRACKING_URI": "http://mlflow.team-ml.svc.cluster.local",
        "MLFLOW_GC_TIMEOUT_SECONDS": "3000",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "120",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    }
    # The server's settings (store, bucket, auth secrets) and identity (IRSA).
    assert container["envFrom"] == [{"configMapRef": {"name": "mlflow-config"}}]
    # Its own identity (tests/unit/test_least_privilege.py: the server's login and the admin's).
    assert _pod(s)["spec"]["serviceAccountName"] == "mlflow-gc"
    server = s.object("Deployment", "mlflow")["spec"]["template"]["spec"]
    assert container["image"] == server["containers"][0]["image"]


def test_a_hung_run_cannot_hold_the_schedule(synth: SynthFn) -> None:
    """With one run at a time (Forbid), a run that never ends would make Kubernetes skip every
    later one. The Job has a deadline over all its tries, each try ends itself earlier with the
    launcher's message, and the deadline is well under the schedule's period."""
    s = synth("test-maximal")
    job = _cron_job(s)["spec"]["jobTemplate"]["spec"]
    [container] = _pod(s)["spec"]["containers"]
    own_limit = int({e["name"]: e["value"] for e in container["env"]}["MLFLOW_GC_TIMEOUT_SECONDS"])
    tries = job["backoffLimit"] + 1
    assert job["activeDeadlineSeconds"] >= tries * own_limit + tries * 60  # pod start, each try
    assert job["activeDeadlineSeconds"] <= 2 * 3600  # weekly here; daily by default
    assert _cron_job(s)["spec"]["concurrencyPolicy"] == "Forbid"


def test_meets_the_restricted_standard(synth: SynthFn) -> None:
    spec = _pod(synth("test-maximal"))["spec"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    context = spec["containers"][0]["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert spec["nodeSelector"]["kubernetes.io/arch"] == "arm64"


def test_never_selected_as_a_server_and_fenced(synth: SynthFn) -> None:
    s = synth("test-maximal")
    labels = _pod(s)["metadata"]["labels"]
    for service in s.objects("Service"):
        selector = service["spec"]["selector"]
        assert not all(labels.get(k) == v for k, v in selector.items())
    policy = s.object("NetworkPolicy", "mlflow-gc")["spec"]
    assert all(labels[k] == v for k, v in policy["podSelector"]["matchLabels"].items())
    assert "ingress" not in policy and policy["policyTypes"] == ["Ingress", "Egress"]
    rules = {
        tuple(sorted((p["protocol"], p["port"]) for p in rule["ports"])): rule.get("to")
        for rule in policy["egress"]
    }
    server_labels = s.object("Service", "mlflow")["spec"]["selector"]
    assert rules == {
        (("TCP", 53), ("UDP", 53)): None,
        # the database (postgres here), AWS APIs (Secrets Manager, S3)
        (("TCP", 443), ("TCP", 5432)): None,
        (("TCP", 5000),): [{"podSelector": {"matchLabels": server_labels}}],
    }
