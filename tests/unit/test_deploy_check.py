"""The deploy proves itself: the Job waits for the rollout and checks the server, and its
verdict ends the deploy; no custom resource waits for the pods, so a rollback never waits.

What CloudFormation does with these resources is fixed by their types and DependsOn; these
tests pin the wiring a real deploy relies on (no machine here can run one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from mlflow_on_eks.constructs_lib.deploy_check import MAX_WAIT_SECONDS, SIGNAL_MARGIN_SECONDS
from mlflow_on_eks.constructs_lib.review import render_intrinsics
from mlflow_on_eks.k8s_charts import contract
from mlflow_on_eks.k8s_charts.deploy_check_chart import (
    CHECKS_SECONDS,
    JOB_START_SECONDS,
    TARGET_TIMEOUT_SECONDS,
)
from tests.conftest import ROOT, Synth, resources_of

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


# --- order: workload, load balancers, Job, verdict -----------------------------------------


def test_the_steps_run_in_order(synth: SynthFn) -> None:
    s = synth("default")
    (workload_id, _), (check_id, check) = _manifests(s)
    internal = _values(s)["service/mlflow-internal"]
    # The load balancer's name is read once its Service is applied (before the workload,
    # whose ConfigMap names it).
    [load_balancers] = [k for k in resources_of(s.templates["Mlflow"], MANIFEST) if "LoadBal" in k]
    assert _depends_on(internal) == {load_balancers}
    # The Job is applied after the workload, with the load balancer's name in its targets.
    assert workload_id in _depends_on(check)
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


@pytest.mark.parametrize("config", ["existing-cluster", "test-maximal"])
def test_with_tls_the_job_checks_the_certificates_name_at_the_load_balancer(
    synth: SynthFn, config: str
) -> None:
    """HTTPS under the name clients use (the certificate's), reached at the load balancer this
    deploy made: its name from the Service, read back; no DNS record for the certificate's name
    is needed yet. The CAs the check trusts: the configured ones, else none given (the image's
    public roots)."""
    s = synth(config)
    internal = s.settings.exposure.internal
    namespace = s.settings.server.namespace
    read = _values(s)["service/mlflow-internal"]["id"]
    env = _env(_job(s)["spec"]["template"]["spec"]["containers"][0])
    assert env["MLFLOW_VERIFY_TARGETS"] == (
        f"http://mlflow.{namespace}.svc.cluster.local,https://{internal.hostname}"
    )
    assert env["MLFLOW_VERIFY_CONNECT_TO"] == f"{internal.hostname}=${{GetAtt:{read}.Value}}"
    assert env.get("MLFLOW_VERIFY_CA_BUNDLE") == internal.ca_bundle
    assert (internal.ca_bundle is None) == (config == "existing-cluster")
    # The on-demand check (make verify) checks the same way.
    [cron] = [c for c in s.objects("CronJob") if c["metadata"]["name"] == "mlflow-verify"]
    cron_env = _env(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])
    for key in ("MLFLOW_VERIFY_TARGETS", "MLFLOW_VERIFY_CONNECT_TO", "MLFLOW_VERIFY_CA_BUNDLE"):
        assert cron_env.get(key) == env.get(key), key


def test_without_tls_nothing_is_redirected(synth: SynthFn) -> None:
    env = _env(_job(synth("default"))["spec"]["template"]["spec"]["containers"][0])
    assert "MLFLOW_VERIFY_CONNECT_TO" not in env and "MLFLOW_VERIFY_CA_BUNDLE" not in env


def test_no_custom_resource_waits_for_the_pods(each_config: Synth) -> None:
    """A rollback calls each updated custom resource again with its previous properties
    before the previous manifest is applied: a read that waits for the rollout then waits for
    a template that never completes, and the stack ends in UPDATE_ROLLBACK_FAILED. The only
    reads are of what already exists when they run: a load balancer Service's DNS name, or
    the sign-in Ingress's."""
    reads = resources_of(each_config.templates["Mlflow"], OBJECT_VALUE)
    for key, read in reads.items():
        properties = read["Properties"]
        kind = "ingress" if "SsoLoadBalancerHost" in key else "service"
        assert properties["ObjectType"] == kind, (key, properties)
        assert properties["JsonPath"] == ".status.loadBalancer.ingress[0].hostname", key
    kinds = {r["Type"] for r in each_config.templates["Mlflow"]["Resources"].values()}
    custom = {kind for kind in kinds if kind.startswith("Custom::")}
    reads = {"Custom::AWS", "Custom::LoadBalancerDimension"}
    assert custom <= {OBJECT_VALUE, MANIFEST, "Custom::AWSCDKCfnJson", *reads}, custom
    # The one SDK call reads the database's engine version, the lookups a load balancer's
    # name (test_monitoring_templates): neither waits.
    for sdk_call in resources_of(each_config.templates["Mlflow"], "Custom::AWS").values():
        assert "describeDBInstances" in json.dumps(sdk_call["Properties"]["Create"])


def test_the_job_waits_for_this_deploys_template(each_config: Synth) -> None:
    """The Job's rollout wait knows this deploy's pod template by what the workload's
    Deployment carries: its image in every container, and the config digest annotation."""
    if not each_config.settings.deploy_check.enabled:
        return
    deployment = each_config.object("Deployment", "mlflow")
    template = deployment["spec"]["template"]
    env = _env(_job(each_config)["spec"]["template"]["spec"]["containers"][0])
    assert env["MLFLOW_VERIFY_DEPLOYMENT"] == deployment["metadata"]["name"]
    assert env["MLFLOW_VERIFY_NAMESPACE"] == deployment["metadata"]["namespace"]
    containers = [*template["spec"]["initContainers"], *template["spec"]["containers"]]
    assert {c["image"] for c in containers} == {env["MLFLOW_VERIFY_IMAGE"]}
    key, value = env["MLFLOW_VERIFY_POD_ANNOTATION"].split("=", 1)
    assert key == contract.CONFIG_DIGEST_ANNOTATION
    assert template["metadata"]["annotations"][key] == value and len(value) == 16


def test_each_wait_is_bounded_within_what_runs_it(each_config: Synth) -> None:
    if not each_config.settings.deploy_check.enabled:
        return
    for value in _values(each_config).values():
        assert 0 < value["Properties"]["TimeoutSeconds"] < LAMBDA_LIMIT_SECONDS, value["id"]
    job = _job(each_config)
    env = _env(job["spec"]["template"]["spec"]["containers"][0])
    targets = env["MLFLOW_VERIFY_TARGETS"].split(",")
    rollout = int(env["MLFLOW_VERIFY_ROLLOUT_TIMEOUT_SECONDS"])
    per_target = int(env["MLFLOW_VERIFY_TIMEOUT_SECONDS"])
    assert per_target == TARGET_TIMEOUT_SECONDS
    # The Job's deadline: its own start, the rollout, each target, the checks.
    deadline = job["spec"]["activeDeadlineSeconds"]
    assert deadline == (JOB_START_SECONDS + rollout + len(targets) * per_target + CHECKS_SECONDS)
    # The wait condition outlives the Job's deadline, so a Job that is stopped, or never
    # starts, still ends the wait (with "timed out") instead of holding the stack; and it
    # stays within what a wait condition allows.
    _, condition = _one(each_config, "AWS::CloudFormation::WaitCondition")
    timeout = int(condition["Properties"]["Timeout"])
    assert timeout == deadline + SIGNAL_MARGIN_SECONDS <= MAX_WAIT_SECONDS == 43200


def _millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else round(float(quantity) * 1000)


def test_the_rollout_budget_covers_a_first_deploy(each_config: Synth) -> None:
    """A new cluster's first deploy: a node of a new NodeClass launched, the image pulled, the
    database waited for, a snapshot (with the guard on) and the migration, the server's start
    within its startup probe. The Deployment's progress deadline is that first pod's budget
    (the controller gives up on a rollout idle that long), and the Job waits at least as long,
    and for one more pod's start per further replica."""
    deployment = each_config.object("Deployment", "mlflow")
    spec = deployment["spec"]
    [server] = [c for c in spec["template"]["spec"]["containers"] if c["name"] == "server"]
    [wait_schema] = spec["template"]["spec"]["initContainers"]
    config = each_config.object("ConfigMap")["data"]
    snapshot = "MLFLOW_DB_INSTANCE_ID" in config
    terms = {
        "workers": int(config["MLFLOW_WORKERS"]),
        "cpu_millis": _millicores(server["resources"]["requests"]["cpu"]),
        "snapshot": snapshot,
    }
    first = contract.pod_start_budget(first=True, **terms)
    probe = server["startupProbe"]
    assert first["server: the start the startup probe allows"] == (
        (probe["failureThreshold"] - 1) * probe["periodSeconds"]
    )
    assert first["a node launched for it"] == contract.NODE_LAUNCH_SECONDS > 0
    assert first["the image pulled"] == contract.IMAGE_PULL_SECONDS > 0
    assert first["the migration Job: the migration"] == contract.MIGRATION_SECONDS > 0
    assert first["the migration Job: secret reads, then the database wait"] > float(
        config["MLFLOW_DB_WAIT_SECONDS"]
    )
    assert ("the migration Job: the snapshot before the upgrade" in first) is snapshot
    # What the first pod waits for: the Job that migrates, with the snapshot guard's settings.
    assert wait_schema["args"] == ["wait-schema"]
    [job] = [j for j in each_config.objects("Job") if "-migrate-" in j["metadata"]["name"]]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate"]
    cpu = _millicores(migrate["resources"]["requests"]["cpu"])
    assert first["the migration Job: Python and MLflow started"] == (
        contract.START_CPU_SECONDS / (cpu / 1000)
    )
    assert spec["progressDeadlineSeconds"] >= sum(first.values())
    if not each_config.settings.deploy_check.enabled:
        return
    env = _env(_job(each_config)["spec"]["template"]["spec"]["containers"][0])
    later = sum(contract.pod_start_budget(first=False, **terms).values())
    replicas = each_config.object("HorizontalPodAutoscaler")["spec"]["maxReplicas"]
    wanted = sum(first.values()) + (replicas - 1) * later
    rollout = int(env["MLFLOW_VERIFY_ROLLOUT_TIMEOUT_SECONDS"])
    # All of it, unless a wait condition's 12 hours cannot hold it (then as much as they can).
    deadline = _job(each_config)["spec"]["activeDeadlineSeconds"]
    assert rollout >= wanted or deadline + SIGNAL_MARGIN_SECONDS == MAX_WAIT_SECONDS
    assert rollout >= spec["progressDeadlineSeconds"]


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
    [container] = spec["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert container["args"] == ["verify"] and "command" not in container
    server = each_config.object("Deployment", "mlflow")["spec"]["template"]["spec"]
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
    # The internal load balancer (addresses known only in the VPC): port 80 only while it
    # serves plain HTTP. 443: HTTPS to it, the Kubernetes API, S3 for presigned downloads and
    # the CloudFormation signal.
    internal = each_config.settings.exposure.internal
    plain = internal.enabled and not internal.tls
    assert rules == {
        (("TCP", 53), ("UDP", 53)): None,
        (("TCP", 5000),): [{"podSelector": {"matchLabels": server_labels}}],
        (("TCP", 80), ("TCP", 443)) if plain else (("TCP", 443),): None,
    }


# --- the Job's identity: its own ServiceAccount, Role and IRSA role ----------------------


def test_the_job_reads_its_rollout_as_its_own_service_account(each_config: Synth) -> None:
    if not each_config.settings.deploy_check.enabled:
        assert not [o for o in each_config.manifests if o["kind"] in ("Role", "RoleBinding")]
        return
    spec = _job(each_config)["spec"]["template"]["spec"]
    # Its own account, never the server's; the API token mounted for this pod only.
    assert spec["serviceAccountName"] == "mlflow-verify"
    assert spec["automountServiceAccountToken"] is True
    account = each_config.object("ServiceAccount", "mlflow-verify")
    assert account["automountServiceAccountToken"] is False
    # Exactly the reads of the wait: the server's Deployment by name, the namespace's pods.
    namespace = each_config.settings.server.namespace
    role = each_config.object("Role", "mlflow-verify")
    assert role["metadata"]["namespace"] == namespace
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["mlflow"],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    ]
    binding = each_config.object("RoleBinding", "mlflow-verify")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "mlflow-verify",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlflow-verify", "namespace": namespace}
    ]
    assert not each_config.objects("ClusterRole") and not each_config.objects("ClusterRoleBinding")
    # Applied before the Job, in the same manifest: its pod starts with its account in place.
    kinds = [o["kind"] for o in each_config.manifests]
    names = [o["metadata"]["name"] for o in each_config.manifests]
    job = names.index(_job(each_config)["metadata"]["name"])
    assert {"ServiceAccount", "Role", "RoleBinding"} <= set(
        kinds[kinds.index("HorizontalPodAutoscaler") : job]
    )


def _trust(role: dict[str, Any]) -> dict[str, Any]:
    [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return statement


def test_with_authentication_the_jobs_irsa_role_reads_the_admin_login_only(
    each_config: Synth,
) -> None:
    mlflow = each_config.templates["Mlflow"]
    roles = {k: r for k, r in resources_of(mlflow, "AWS::IAM::Role").items() if "DeployCheck" in k}
    if not (each_config.settings.deploy_check.enabled and each_config.settings.auth.enabled):
        assert roles == {}
        if each_config.settings.deploy_check.enabled:
            account = each_config.object("ServiceAccount", "mlflow-verify")
            assert "annotations" not in account["metadata"]  # no AWS identity at all
        return
    [(role_id, role)] = roles.items()
    account = each_config.object("ServiceAccount", "mlflow-verify")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": f"${{GetAtt:{role_id}.Arn}}"
    }
    # Trusted for exactly this account, with the STS audience.
    trust = _trust(role)
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions_id = trust["Condition"]["StringEquals"]["Fn::GetAtt"][0]
    conditions = mlflow["Resources"][conditions_id]["Properties"]["Value"]
    values = sorted(json.loads(render_intrinsics(conditions)).values())
    namespace = each_config.settings.server.namespace
    assert values == ["sts.amazonaws.com", f"system:serviceaccount:{namespace}:mlflow-verify"]
    # One policy: read the admin login's secret, nothing else.
    policies = [
        p
        for p in resources_of(mlflow, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    [policy] = policies
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == [
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
    ]
    resource = render_intrinsics(statement["Resource"])
    assert "AuthAdminCredentials" in resource, resource
    env = _env(_job(each_config)["spec"]["template"]["spec"]["containers"][0])
    config = each_config.object("ConfigMap")["data"]
    assert env["MLFLOW_AUTH_ADMIN_SECRET_ID"] == config["MLFLOW_AUTH_ADMIN_SECRET_ID"]
    # The manifest that starts the Job waits for the role's policy, not only for its ARN.
    (_, _), (_, check) = _manifests(each_config)
    policy_ids = [k for k, p in resources_of(mlflow, "AWS::IAM::Policy").items() if p is policy]
    assert set(policy_ids) <= _depends_on(check)


# --- settings and outputs ------------------------------------------------------------------


def test_turning_it_off_leaves_the_addresses(synth: SynthFn) -> None:
    s = synth("test-minimal")
    assert s.settings.deploy_check.enabled is False
    assert not resources_of(s.templates["Mlflow"], "AWS::CloudFormation::WaitCondition")
    assert not resources_of(s.templates["Mlflow"], "AWS::CloudFormation::WaitConditionHandle")
    assert not [j for j in s.objects("Job") if "-verify-" in j["metadata"]["name"]]
    assert not s.objects("Role")
    assert "DeployCheckLogsCommand" not in s.templates["Mlflow"]["Outputs"]
    assert s.deployment.mlflow.tracking_server.deploy_check is None


@pytest.mark.parametrize(
    ("config", "outputs"),
    [
        ("default", {"InternalTrackingUri": "http://${GetAtt:%(internal)s.Value}"}),
        (
            # TLS on the internal load balancer: the certificate's name, and where to point it.
            "existing-cluster",
            {
                "InternalTrackingUri": "https://mlflow.internal.example.com",
                "InternalLoadBalancerDnsName": "${GetAtt:%(internal)s.Value}",
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
    for key in ("InternalLoadBalancerDnsName", "ExternalLoadBalancerDnsName"):
        assert (key in rendered) == (key in outputs), key
    revision = s.deployment.mlflow.tracking_server.revision
    assert (
        rendered["DeployCheckLogsCommand"] == f"kubectl -n mlflow logs job/mlflow-verify-{revision}"
    )
    # No "kubectl get svc" hints left: the addresses themselves are there.
    assert not [k for k in rendered if k.endswith("ServiceName")]


def test_the_operations_guide_gives_the_default_budgets(synth: SynthFn) -> None:
    """docs/operations.md, "Bounds on every wait", as the default config synthesizes them."""
    s = synth("default")
    guide = (ROOT / "docs" / "operations.md").read_text()
    rows = dict(re.findall(r"^\| (.+?) \| (\d+) \|", guide, flags=re.MULTILINE))
    job = _job(s)
    env = _env(job["spec"]["template"]["spec"]["containers"][0])
    _, condition = _one(s, "AWS::CloudFormation::WaitCondition")
    deadline = s.object("Deployment", "mlflow")["spec"]["progressDeadlineSeconds"]
    assert int(rows["the Deployment's `progressDeadlineSeconds`"]) == deadline
    assert int(rows["total: `progressDeadlineSeconds`"]) == deadline
    rollout = "the deploy check's rollout wait (`MLFLOW_VERIFY_ROLLOUT_TIMEOUT_SECONDS`)"
    assert rows[rollout] == env["MLFLOW_VERIFY_ROLLOUT_TIMEOUT_SECONDS"]
    job_deadline = "the deploy check Job's `activeDeadlineSeconds`"
    assert int(rows[job_deadline]) == job["spec"]["activeDeadlineSeconds"]
    assert rows["the wait condition's `Timeout`"] == condition["Properties"]["Timeout"]
    # README's first-deploy table states the same four bounds.
    readme = (ROOT / "README.md").read_text()
    stated = re.search(
        r"the first pod (\d+) s, the whole rollout wait (\d+) s, the Job (\d+) s, "
        r"the wait condition (\d+) s",
        readme,
    )
    assert stated, "README's first-deploy table lost the check's bounds"
    assert stated.groups() == (
        str(deadline),
        env["MLFLOW_VERIFY_ROLLOUT_TIMEOUT_SECONDS"],
        str(job["spec"]["activeDeadlineSeconds"]),
        condition["Properties"]["Timeout"],
    )
