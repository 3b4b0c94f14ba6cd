"""MLflow's GenAI jobs: on by default, the server pods submit and one job-runner pod runs them
(k8s_charts/job_runner.py); its identity, its fence and its settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from config.loader import ConfigError, load_settings
from tests.conftest import Synth

SynthFn = Callable[[str], Synth]


def _runner(synth: Synth) -> dict[str, Any]:
    return synth.object("Deployment", "mlflow-jobs")


def _pod(synth: Synth) -> dict[str, Any]:
    return _runner(synth)["spec"]["template"]


def _config(synth: Synth) -> dict[str, str]:
    return synth.object("ConfigMap", "mlflow-config")["data"]


def test_on_by_default_and_the_server_pods_submit(synth: SynthFn) -> None:
    assert Settings().jobs.enabled is True
    s = synth("default")
    assert _config(s)["MLFLOW_JOB_ROLE"] == "submit"
    # Custom scorers run code a user sends: off unless asked for; so is trace archival.
    assert "MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS" not in _config(s)
    assert not [k for k in _config(s) if k.startswith("MLFLOW_TRACE_ARCHIVAL")]
    assert _runner(s)["spec"]["replicas"] == 1


def test_off_leaves_no_runner_no_role_and_no_submission(synth: SynthFn) -> None:
    s = synth("test-minimal")
    assert s.settings.jobs.enabled is False
    assert [d["metadata"]["name"] for d in s.objects("Deployment")] == ["mlflow"]
    assert "MLFLOW_JOB_ROLE" not in _config(s)  # the launcher's default: off
    names = {o["metadata"]["name"] for o in s.manifests}
    assert not {n for n in names if n.startswith("mlflow-jobs")}


def test_one_runner_at_a_time_that_runs_what_the_servers_submit(synth: SynthFn) -> None:
    """MLflow's executor engine is documented for one runner without overlapping restarts:
    one replica, and Recreate (the old pod is gone before the new one starts)."""
    s = synth("test-maximal")
    runner = _runner(s)["spec"]
    assert runner["replicas"] == 1 and runner["strategy"] == {"type": "Recreate"}
    [container] = _pod(s)["spec"]["containers"]
    assert container["args"] == ["serve"] and "command" not in container
    env = {e["name"]: e["value"] for e in container["env"]}
    # Jobs of each kind at once, from its 3072 MiB: 720 for itself, 180 per job, 2 prompt
    # optimizations, five kinds at two each (MLflow's own 10 and 5 would need 6.4 GiB).
    assert env == {
        "MLFLOW_JOB_ROLE": "run",
        "MLFLOW_WORKERS": "1",
        "MLFLOW_SERVER_JUDGE_INVOKE_MAX_WORKERS": "2",
        "MLFLOW_SERVER_ONLINE_SCORING_MAX_WORKERS": "2",
    }
    assert 720 + (3 * 2 + 2 * 2 + 2) * 180 <= 3072
    # The server's settings (store, bucket, sign-in), which set `submit`; its own env wins.
    assert container["envFrom"] == [{"configMapRef": {"name": "mlflow-config"}}]
    assert _config(s)["MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS"] == "true"
    server = s.object("Deployment", "mlflow")["spec"]["template"]
    assert container["image"] == server["spec"]["containers"][0]["image"]
    assert container["resources"]["requests"]["cpu"] == "1000m"
    memory = container["resources"]["limits"]["memory"]
    assert memory == container["resources"]["requests"]["memory"] == "3072Mi"
    # It starts on migrated schemas only, and tells the operator where the migration's log is.
    [wait] = _pod(s)["spec"]["initContainers"]
    [server_wait] = server["spec"]["initContainers"]
    assert wait["args"] == ["wait-schema"] and wait["env"] == server_wait["env"]
    # A settings change rolls it as it rolls the servers (the ConfigMap is read at start).
    digest = "mlflow-on-eks/config-digest"
    assert _pod(s)["metadata"]["annotations"][digest] == server["metadata"]["annotations"][digest]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    # MLflow never watches the runner it starts: the launcher's check does.
    assert container["livenessProbe"]["exec"]["command"] == ["mlflow-launcher", "runner-alive"]


def test_trace_archival_goes_under_the_artifact_prefix_the_roles_may_write(
    synth: SynthFn,
) -> None:
    """Every pod reads the settings (each answers reads of archived traces); the place is under
    the artifact destination, which the server's and the runner's roles may write, and no
    experiment's artifacts can be called that."""
    s = synth("test-maximal")
    config = _config(s)
    assert config["MLFLOW_TRACE_ARCHIVAL_RETENTION"] == "30d"
    destination = config["MLFLOW_ARTIFACTS_DESTINATION"]
    assert config["MLFLOW_TRACE_ARCHIVAL_LOCATION"] == f"{destination}/trace-archive"
    assert destination.startswith("s3://") and destination.endswith("/artifacts")


def test_its_own_identity_and_the_restricted_standard(synth: SynthFn) -> None:
    s = synth("test-maximal")
    spec = _pod(s)["spec"]
    # Its own role (tests/unit/test_least_privilege.py: the server's grants, nothing more).
    assert spec["serviceAccountName"] == "mlflow-jobs"
    account = s.object("ServiceAccount", "mlflow-jobs")
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"] + spec["initContainers"]:
        context = container["securityContext"]
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
    server = s.object("Deployment", "mlflow")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == server["nodeSelector"]


def test_never_behind_a_service_and_fenced(synth: SynthFn) -> None:
    s = synth("test-maximal")
    labels = _pod(s)["metadata"]["labels"]
    for service in s.objects("Service"):
        selector = service["spec"]["selector"]
        assert not all(labels.get(k) == v for k, v in selector.items()), service
    for budget in s.objects("PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert not all(labels.get(k) == v for k, v in selector.items()), budget
    policy = s.object("NetworkPolicy", "mlflow-jobs")["spec"]
    assert all(labels[k] == v for k, v in policy["podSelector"]["matchLabels"].items())
    assert "ingress" not in policy and policy["policyTypes"] == ["Ingress", "Egress"]
    rules = {
        tuple(sorted((p["protocol"], p["port"]) for p in rule["ports"])): rule.get("to")
        for rule in policy["egress"]
    }
    # DNS; the database (postgres here); HTTPS: AWS APIs and the LLM providers judges call.
    assert rules == {(("TCP", 53), ("UDP", 53)): None, (("TCP", 443), ("TCP", 5432)): None}


@pytest.mark.parametrize(
    ("jobs", "key"),
    [
        ({"cpu": "0"}, "jobs.cpu"),
        ({"memory_mib": 128}, "jobs.memory_mib"),
        ({"custom_scorer": True}, "jobs.custom_scorer"),
        ({"trace_archival_after": "30"}, "jobs.trace_archival_after"),
        ({"trace_archival_after": "1w"}, "jobs.trace_archival_after"),
        ({"enabled": False, "trace_archival_after": "30d"}, "jobs.enabled"),
        ({"enabled": False, "custom_scorers": True}, "jobs.enabled"),
        ({"memory_mib": 1536}, "jobs.memory_mib"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path, jobs: dict[str, Any], key: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("jobs:\n" + "".join(f"  {k}: {v!r}\n" for k, v in jobs.items()))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(path)


def test_the_default_runner_runs_one_job_of_each_kind_at_once(synth: SynthFn) -> None:
    s = synth("default")
    [container] = _pod(s)["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_SERVER_JUDGE_INVOKE_MAX_WORKERS"] == "1"
    assert env["MLFLOW_SERVER_ONLINE_SCORING_MAX_WORKERS"] == "1"
    assert container["resources"]["limits"]["memory"] == "2048Mi"
    assert 720 + (3 + 2 + 2) * 180 <= 2048
