"""The deploy proves itself: the waits, their order and bounds, the Job and its verdict.

What CloudFormation does with these resources is fixed by their types and DependsOn; these
tests pin the wiring a real deploy relies on (no machine here can run one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from mlflow_on_eks.constructs_lib.deploy_check import ROLLOUT_TIMEOUT, SIGNAL_MARGIN_SECONDS
from mlflow_on_eks.constructs_lib.review import render_intrinsics
from mlflow_on_eks.k8s_charts import DEADLINE_SECONDS

from tests.conftest import Synth, resources_of

SynthFn = Callable[[str], Synth]
OBJECT_VALUE = "Custom::AWSCDK-EKS-KubernetesObjectValue"
MANIFEST = "Custom::AWSCDK-EKS-KubernetesResource"
# The kubectl provider's handler is a Lambda function with a 15-minute limit (aws-eks-v2
# KubectlProvider); a read that waits longer is killed without its own error message.
LAMBDA_LIMIT_SECONDS = 15 * 60


def _mlflow(synth: Synth) -> dict[str, dict[str, Any]]:
    return synth.templates["Mlflow"]["Resources"]


def _values(synth: Synth) -> dict[str, dict[str, Any]]:
    """Object value reads by what they read: `<type>/<name>`."""
    found = resources_of(synth.templates["Mlflow"], OBJECT_VALUE)
    return {
        f"{r['Properties']['ObjectType']}/{r['Properties']['ObjectName']}": {"id": key, **r}
        for key, r in found.items()
    }


def _one(synth: Synth, type_: str) -> tuple[str, dict[str, Any]]:
    found = resources_of(synth.templates["Mlflow"], type_)
    assert len(found) == 1, sorted(found)
    return next(iter(found.items()))


def _manifests(synth: Synth) -> tuple[tuple[str, dict], tuple[str, dict]]:
    """(workload manifest, deploy check manifest), told apart by what they apply."""
    found = resources_of(synth.templates["Mlflow"], MANIFEST)
    check = [(k, r) for k, r in found.items() if "-verify-" in json.dumps(r)]
    # The load balancers' own manifest, applied before both, aside.
    workload = [
        (k, r) for k, r in found.items() if (k, r) not in check and "LoadBalancers" not in k
    ]
    assert len(check) == 1 and len(workload) == 1, sorted(found)
    return workload[0], check[0]


def _depends_on(resource: dict[str, Any]) -> set[str]:
    return set(resource.get("DependsOn", []))


def _job(synth: Synth) -> dict[str, Any]:
    """The deploy check's Job (the migration Job is the chart's other one)."""
    [job] = _verify_jobs(synth)
    return job


def _verify_jobs(synth: Synth) -> list[dict[str, Any]]:
    return [j for j in synth.objects("Job") if "-verify-" in j["metadata"]["name"]]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


# --- order: rollout, load balancers, Job, verdict ------------------------------------------


def test_the_waits_run_in_order(synth: SynthFn) -> None:
    s = synth("default")
    (workload_id, _), (check_id, check) = _manifests(s)
    values = _values(s)
    rollout, internal = values["deployment/mlflow"], values["service/mlflow-internal"]
    # The rollout is read once the workload is applied; the load balancer's name once its
    # Service is (before the workload, whose ConfigMap names it).
    assert workload_id in _depends_on(rollout)
    [load_balancers] = [k for k in resources_of(s.templates["Mlflow"], MANIFEST) if "LoadBal" in k]
    assert _depends_on(internal) == {load_balancers}
    # The Job is applied after the rollout, with the load balancer's name in its targets.
    assert rollout["id"] in _depends_on(check)
    targets = _env(_job(s)["spec"]["template"]["spec"]["containers"][0])["MLFLOW_VERIFY_TARGETS"]
    assert targets == (
        f"http://mlflow.mlflow.svc.cluster.local,http://${{GetAtt:{internal['id']}.Value}}"
    )
    # The verdict is awaited after the Job exists, on the handle the Job signals.
    condition_id, condition = _one(s, "AWS::CloudFormation::WaitCondition")
    handle_id, _ = _one(s, "AWS::CloudFormation::WaitConditionHandle")
    assert _depends_on(condition) == {check_id}
    assert condition["Properties"]["Handle"] == {"Ref": handle_id}
    assert condition["Properties"]["Count"] == 1
    job_env = _env(_job(s)["spec"]["template"]["spec"]["containers"][0])
    assert job_env["MLFLOW_VERIFY_SIGNAL_URL"] == f"${{Ref:{handle_id}}}"
    # Nothing else waits on the verdict: the stack's last step.
    assert not [k for k, r in _mlflow(s).items() if condition_id in _depends_on(r)]


def test_rollout_waits_for_every_new_pod(synth: SynthFn) -> None:
    rollout = _values(synth("default"))["deployment/mlflow"]["Properties"]
    assert rollout["ObjectNamespace"] == "mlflow"
    # Deployment condition Progressing gets reason NewReplicaSetAvailable once the new
    # ReplicaSet's pods are all available (Kubernetes' Deployment status documentation).
    assert rollout["JsonPath"] == '.status.conditions[?(@.reason=="NewReplicaSetAvailable")].type'


def test_each_wait_is_bounded_within_what_runs_it(synth: SynthFn) -> None:
    s = synth("default")
    values = _values(s)
    for value in values.values():
        assert 0 < value["Properties"]["TimeoutSeconds"] < LAMBDA_LIMIT_SECONDS, value["id"]
    assert values["deployment/mlflow"]["Properties"]["TimeoutSeconds"] == (
        ROLLOUT_TIMEOUT.to_seconds()
    )
    # The wait condition outlives the Job's deadline, so a Job that is stopped, or never
    # starts, still ends the wait (with "timed out") instead of holding the stack.
    job = _job(s)
    assert job["spec"]["activeDeadlineSeconds"] == DEADLINE_SECONDS
    _, condition = _one(s, "AWS::CloudFormation::WaitCondition")
    timeout = int(condition["Properties"]["Timeout"])
    assert timeout == DEADLINE_SECONDS + SIGNAL_MARGIN_SECONDS
    # The Job's own wait for its targets fits inside its deadline.
    env = _env(job["spec"]["template"]["spec"]["containers"][0])
    assert int(env["MLFLOW_VERIFY_TIMEOUT_SECONDS"]) < DEADLINE_SECONDS


# --- a fresh check per revision ----------------------------------------------------------


def test_every_read_and_the_job_follow_the_revision(synth: SynthFn) -> None:
    s = synth("default")
    revision = s.deployment.mlflow.tracking_server.revision
    assert len(revision) == 12 and int(revision, 16) >= 0
    # CloudFormation re-runs a custom resource only when a property changes.
    # (The load balancers' names follow their own Services: test_stacks.)
    for value in _values(s).values():
        if value["Properties"]["ObjectType"] != "service":
            assert value["Properties"]["Revision"] == revision
    job = _job(s)
    assert job["metadata"]["name"] == f"mlflow-verify-{revision}"
    # Wait conditions cannot be updated: new logical IDs per revision.
    condition_id, _ = _one(s, "AWS::CloudFormation::WaitCondition")
    handle_id, _ = _one(s, "AWS::CloudFormation::WaitConditionHandle")
    assert revision in condition_id and revision in handle_id


def test_revision_differs_between_workloads(synth: SynthFn) -> None:
    revisions = {
        synth(c).deployment.mlflow.tracking_server.revision for c in ("default", "postgres")
    }
    assert len(revisions) == 2


def test_finished_jobs_are_removed_but_survive_a_rollback(synth: SynthFn) -> None:
    s = synth("default")
    assert _job(s)["spec"]["ttlSecondsAfterFinished"] == 24 * 3600
    assert _job(s)["spec"]["backoffLimit"] == 0
    _, (_, check) = _manifests(s)
    # Without a prune label, the rollback's apply of the old manifest does not delete the
    # failed Job, whose logs explain the failure.
    assert "PruneLabel" not in check["Properties"]
    assert check["Properties"]["Overwrite"] is True


# --- the Job honours the namespace's rules -----------------------------------------------


def test_job_is_never_selected_as_a_server(each_config: Synth) -> None:
    if not each_config.settings.deploy_check.enabled:
        assert not _verify_jobs(each_config)
        return
    labels = _job(each_config)["spec"]["template"]["metadata"]["labels"]
    selectors = [s["spec"]["selector"] for s in each_config.objects("Service")]
    selectors += [
        o["spec"]["selector"]["matchLabels"] for o in each_config.objects("PodDisruptionBudget")
    ]
    selectors.append(
        each_config.object("NetworkPolicy", "mlflow")["spec"]["podSelector"]["matchLabels"]
    )
    for selector in selectors:
        assert not all(labels.get(k) == v for k, v in selector.items()), selector


def test_job_meets_the_restricted_pod_security_standard(each_config: Synth) -> None:
    if not each_config.settings.deploy_check.enabled:
        return
    spec = _job(each_config)["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    [container] = spec["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert container["args"] == ["verify"] and "command" not in container
    server = each_config.object("Deployment")["spec"]["template"]["spec"]
    assert container["image"] == server["containers"][0]["image"]
    assert spec["nodeSelector"] == server["nodeSelector"]


def test_job_may_reach_only_what_it_checks(each_config: Synth) -> None:
    if not each_config.settings.deploy_check.enabled:
        return
    policy = each_config.object("NetworkPolicy", "mlflow-deploy-check")["spec"]
    labels = _job(each_config)["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in policy["podSelector"]["matchLabels"].items())
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy  # nothing may connect to it
    server_labels = each_config.object("Service", "mlflow")["spec"]["selector"]
    rules = {
        tuple(sorted((p["protocol"], p["port"]) for p in rule["ports"])): rule.get("to")
        for rule in policy["egress"]
    }
    assert rules == {
        (("TCP", 53), ("UDP", 53)): None,
        (("TCP", 5000),): [{"podSelector": {"matchLabels": server_labels}}],
        # The internal load balancer (addresses known only in the VPC); S3 for presigned
        # downloads and the CloudFormation signal.
        (("TCP", 80), ("TCP", 443)): None,
    }


# --- settings and outputs ------------------------------------------------------------------


def test_turning_it_off_leaves_the_addresses(synth: SynthFn) -> None:
    s = synth("test-minimal")
    assert s.settings.deploy_check.enabled is False
    assert not resources_of(s.templates["Mlflow"], "AWS::CloudFormation::WaitCondition")
    assert not resources_of(s.templates["Mlflow"], "AWS::CloudFormation::WaitConditionHandle")
    assert "deployment/mlflow" not in _values(s)
    assert "DeployCheckLogsCommand" not in s.templates["Mlflow"]["Outputs"]
    assert s.deployment.mlflow.tracking_server.deploy_check is None


@pytest.mark.parametrize(
    ("config", "outputs"),
    [
        ("default", {"InternalTrackingUri": "http://${GetAtt:%(internal)s.Value}"}),
        (
            "existing-cluster",
            {
                "InternalTrackingUri": "http://${GetAtt:%(internal)s.Value}",
                "ExternalLoadBalancerDnsName": "${GetAtt:%(external)s.Value}",
            },
        ),
    ],
)
def test_outputs_give_the_real_addresses(synth: SynthFn, config: str, outputs: dict) -> None:
    s = synth(config)
    values = _values(s)
    ids = {
        kind: values[f"service/mlflow-{kind}"]["id"]
        for kind in ("internal", "external")
        if f"service/mlflow-{kind}" in values
    }
    for service in ids:
        read = values[f"service/mlflow-{service}"]["Properties"]
        assert read["JsonPath"] == ".status.loadBalancer.ingress[0].hostname"
    rendered = {
        key: render_intrinsics(output["Value"])
        for key, output in s.templates["Mlflow"]["Outputs"].items()
    }
    for key, value in outputs.items():
        assert rendered[key] == value % ids
    revision = s.deployment.mlflow.tracking_server.revision
    assert (
        rendered["DeployCheckLogsCommand"] == f"kubectl -n mlflow logs job/mlflow-verify-{revision}"
    )
    # No "kubectl get svc" hints left: the addresses themselves are there.
    assert not [k for k in rendered if k.endswith("ServiceName")]
