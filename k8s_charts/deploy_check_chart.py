"""The deploy check: a Job that waits for the server's rollout, then uses the server the way a
user does, once per deploy.

It runs `mlflow-launcher verify` from the server's own image: it waits (through the Kubernetes
API, as its own ServiceAccount) until the Deployment has rolled out the pod template this deploy
applied, then checks every name the deployment serves inside the VPC (the cluster Service, the
internal load balancer), then signals the outcome to CloudFormation, whose deploy fails on a
failure signal. The chart knows nothing of CloudFormation: the load balancer names, the signal
URL and the IAM role are plain string props.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cdk8s
import cdk8s_plus_27 as kplus
from cdk8s_plus_27 import k8s
from constructs import Construct

from .contract import (
    CONFIG_DIGEST_ANNOTATION,
    CONTAINER_PORT,
    IMAGE_PULL_SECONDS,
    NODE_LAUNCH_SECONDS,
    SERVICE_PORT,
    TLS_SERVICE_PORT,
    pod_start_budget,
    verify_environment,
)
from .hardening import (
    api_job_pod,
    container_resources,
    harden,
    launcher_container,
)
from .launcher_contract import launcher
from .mlflow_chart import MlflowChartProps, _millicores, selector_labels
from .policy import dns, egress, egress_only, tcp

TARGET_TIMEOUT_SECONDS = int(launcher.VERIFY_TIMEOUT_SECONDS.default)
"""How long each target may take to answer (`verify`'s own default): a new NLB's DNS name
propagates and its targets pass health checks within a few minutes (a 30 s drain plus 3 checks
of 10 s on update)."""
CHECKS_SECONDS = 300
"""The checks themselves once the targets answer, and the MLflow client's last request that
may outlast a target's deadline (30 s, 3 tries, backoff)."""
JOB_START_SECONDS = NODE_LAUNCH_SECONDS + IMAGE_PULL_SECONDS
"""The Job's own pod scheduled (a node of MLflow's pool, maybe a new one) and its image pulled:
activeDeadlineSeconds counts from the Job's start, before its pod runs."""
KEEP_FINISHED_SECONDS = 24 * 3600
"""Finished Jobs stay a day, so their logs can be read after a failed deploy, then go."""


@dataclass(frozen=True)
class DeployCheckChartProps:
    """What the check needs beyond the server's own props; strings may be CDK tokens."""

    server: MlflowChartProps
    job_name: str
    """Unique per revision of the workload: a Job's pod template cannot change."""
    load_balancer_hosts: dict[str, str]
    """Service kind (internal) -> the DNS name its load balancer got."""
    signal_url: str | None = None
    """Where the outcome is PUT (a CloudFormation wait condition handle). Default: none."""
    config_digest: str | None = None
    """The config digest this deploy put in the server's pod template (the
    `mlflow-on-eks/config-digest` annotation): with the image, how the Job knows the
    Deployment's template is this deploy's. Default: none (the image alone)."""
    role_arn: str | None = None
    """IAM role of the Job's ServiceAccount (IRSA), which may read the admin login's secret;
    required when the server signs users in. Default: none (the Job calls no AWS API)."""
    deadline_limit_seconds: int | None = None
    """The Job must end within this (whoever awaits its verdict waits no longer): the rollout's
    budget is cut to fit. Default: no limit."""

    def __post_init__(self) -> None:
        if self.server.sign_in and not self.role_arn:
            raise ValueError(
                "DeployCheckChartProps.role_arn is required with authentication on: the Job "
                "reads the admin login from Secrets Manager through its own IRSA role"
            )


class DeployCheckChart(cdk8s.Chart):
    """The verification Job, its ServiceAccount with a Role to read the rollout, and a
    NetworkPolicy that lets it reach only what it tests.

    Attributes: `job`, `service_account`, `role`, `targets` (the base URLs it checks),
    `rollout_timeout_seconds` (its wait for the rollout), `deadline_seconds` (the Job's).
    """

    def __init__(self, scope: Construct, id: str, *, props: DeployCheckChartProps) -> None:
        server = props.server
        super().__init__(scope, id, namespace=server.namespace, labels=_labels(server))
        self.targets = check_targets(server, props.load_balancer_hosts)
        checks = len(self.targets) * TARGET_TIMEOUT_SECONDS + CHECKS_SECONDS
        self.rollout_timeout_seconds = rollout_budget_seconds(server)
        if props.deadline_limit_seconds is not None:
            fixed = JOB_START_SECONDS + checks
            room = props.deadline_limit_seconds - fixed
            if room <= 0:
                raise ValueError(
                    f"deadline_limit_seconds {props.deadline_limit_seconds} leaves no time to "
                    f"wait for the rollout (the Job's start and checks take {fixed} s)"
                )
            self.rollout_timeout_seconds = min(self.rollout_timeout_seconds, room)
        self.deadline_seconds = JOB_START_SECONDS + self.rollout_timeout_seconds + checks
        self.service_account, self.role = self._rollout_reader(server, props.role_arn)
        tmp = kplus.Volume.from_empty_dir(
            self, "TmpVolume", "tmp", size_limit=cdk8s.Size.gibibytes(1)
        )
        annotation = (
            f"{CONFIG_DIGEST_ANNOTATION}={props.config_digest}" if props.config_digest else None
        )
        # What both the Job and the on-demand CronJob check, and how they sign in.
        checks_environment: dict[str, Any] = {
            "targets": self.targets,
            "timeout_seconds": TARGET_TIMEOUT_SECONDS,
            "admin_secret_id": (
                server.auth_secrets.admin if server.sign_in and server.auth_secrets else None
            ),
            "region": server.region,
            "connect_to": connect_to(server, props.load_balancer_hosts),
            "ca_bundle": (
                server.exposure.internal.ca_bundle if "internal" in server.service_names else None
            ),
        }
        # After a deploy: wait for this deploy's rollout, then check, and signal the verdict.
        self.job = kplus.Job(
            self,
            "Job",
            metadata=cdk8s.ApiObjectMetadata(name=props.job_name),
            # Once: the command retries within its own deadline, and a second pod would only
            # repeat a verdict (the wait condition takes the first signal).
            backoff_limit=0,
            active_deadline=cdk8s.Duration.seconds(self.deadline_seconds),
            ttl_after_finished=cdk8s.Duration.seconds(KEEP_FINISHED_SECONDS),
            **self._pod(
                server,
                tmp,
                verify_environment(
                    **checks_environment,
                    signal_url=props.signal_url,
                    logs_command=f"kubectl -n {server.namespace} logs job/{props.job_name}",
                    deployment=server.instance,
                    namespace=server.namespace,
                    image=server.image,
                    pod_annotation=annotation,
                    rollout_timeout_seconds=self.rollout_timeout_seconds,
                ),
            ),
        )
        # On demand (`make verify`, the VerifyCommand output): the same checks of the server as
        # it runs now, after a change made outside CDK; no rollout wait, no signal. A
        # suspended CronJob that never fires is Kubernetes' template for `kubectl create job
        # --from=cronjob/...`.
        self.on_demand = kplus.CronJob(
            self,
            "OnDemand",
            metadata=cdk8s.ApiObjectMetadata(name=on_demand_name(server.instance)),
            schedule=cdk8s.Cron.schedule(minute="0", hour="0", day="31", month="2"),
            suspend=True,
            backoff_limit=0,
            active_deadline=cdk8s.Duration.seconds(JOB_START_SECONDS + checks),
            ttl_after_finished=cdk8s.Duration.seconds(KEEP_FINISHED_SECONDS),
            **self._pod(
                server,
                tmp,
                verify_environment(
                    **checks_environment,
                    signal_url=None,
                    logs_command=(
                        f"kubectl -n {server.namespace} logs --selector=job-name=<the Job>"
                    ),
                ),
            ),
        )
        for workload, pod_spec in (
            (self.job, "/spec/template/spec"),
            (self.on_demand, "/spec/jobTemplate/spec/template/spec"),
        ):
            harden(
                workload,
                placement=server.placement,
                pod_spec=pod_spec,
            )
        self._network_policy(server)

    def _pod(
        self, server: MlflowChartProps, tmp: kplus.Volume, environment: dict[str, str]
    ) -> dict[str, Any]:
        """The check's pod, as the Job and the on-demand CronJob share it. Its own
        ServiceAccount, never the server's: its token may read the rollout (the Role below) and
        nothing else; with authentication on, its IRSA role may read the admin login's secret
        and nothing else (DeployCheck). Artifact downloads use the server's presigned URLs, so
        no other AWS access."""
        return api_job_pod(
            labels=_labels(server),
            account=self.service_account,
            tmp=tmp,
            container=launcher_container(
                name="verify",
                image=server.image,
                config_map=None,
                environment=environment,
                tmp=tmp,
                # The MLflow client and one small artifact: 185 MiB at most, measured
                # (`/usr/bin/time -v mlflow-launcher verify` against `local`).
                resources=container_resources(cpu_millis=100, memory_mib=384),
            ),
        )

    def _rollout_reader(
        self, server: MlflowChartProps, role_arn: str | None
    ) -> tuple[kplus.ServiceAccount, k8s.KubeRole]:
        """The Job's ServiceAccount, allowed exactly the reads of its rollout wait: get the
        server's Deployment (by name) and list the namespace's pods (a list cannot be narrowed
        by name; the Job reads the pods' status to say why a rollout is stuck). No secrets, no
        writes, nothing cluster-wide."""
        name = verify_service_account_name(server)
        account = kplus.ServiceAccount(
            self,
            "ServiceAccount",
            metadata=cdk8s.ApiObjectMetadata(
                name=name,
                annotations={"eks.amazonaws.com/role-arn": role_arn} if role_arn else None,
            ),
            # Only the Job's pod mounts the token (it asks for it); nothing else that might use
            # this account gets one by default.
            automount_token=False,
        )
        role = k8s.KubeRole(
            self,
            "Role",
            metadata=k8s.ObjectMeta(name=name),
            rules=[
                k8s.PolicyRule(
                    api_groups=["apps"],
                    resources=["deployments"],
                    resource_names=[server.instance],
                    verbs=["get"],
                ),
                k8s.PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"]),
            ],
        )
        k8s.KubeRoleBinding(
            self,
            "RoleBinding",
            metadata=k8s.ObjectMeta(name=name),
            role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[k8s.Subject(kind="ServiceAccount", name=name, namespace=server.namespace)],
        )
        return account, role

    def _network_policy(self, server: MlflowChartProps) -> None:
        """DNS; the server pods; the internal load balancer (its addresses are only known in
        the VPC): HTTPS, or HTTP when it serves plain HTTP (port 80 only then); HTTPS for the
        Kubernetes API (the `kubernetes` Service's endpoints: EKS's control plane ENIs, on
        443), presigned S3 downloads and the signal. Nothing inbound."""
        plain = "internal" in server.service_names and not server.exposure.internal.tls
        egress_only(
            self,
            "NetworkPolicy",
            name=f"{server.instance}-deploy-check",
            pods=_selector(server),
            rules=[
                dns(),
                egress(tcp(CONTAINER_PORT), to_pods=selector_labels(server)),
                egress(tcp(SERVICE_PORT, TLS_SERVICE_PORT) if plain else tcp(TLS_SERVICE_PORT)),
            ],
        )


def verify_service_account_name(server: MlflowChartProps) -> str:
    """`<instance>-verify`: the name the Job's IRSA role trusts."""
    return f"{server.instance}-verify"


def on_demand_name(instance: str) -> str:
    """`<instance>-verify`: the suspended CronJob `make verify` creates a check Job from."""
    return f"{instance}-verify"


def rollout_budget_seconds(server: MlflowChartProps) -> int:
    """How long the Job waits for the rollout: the first new pod's budget (it migrates), then
    one more for each further replica, up to the autoscaler's maximum (maxSurge 1: the
    Deployment replaces pods one at a time). The progress deadline stops a stuck rollout long
    before; this ends one that keeps moving without ever completing (pods that become ready,
    then crash)."""
    workload = server.workload
    replicas = workload.max_replicas or workload.replicas
    terms = {
        "workers": workload.workers,
        "cpu_millis": _millicores(workload.resources.cpu),
        "snapshot": server.db_instance_id is not None,
    }
    first = sum(pod_start_budget(first=True, **terms).values())
    later = sum(pod_start_budget(first=False, **terms).values())
    return math.ceil(first + (replicas - 1) * later)


def check_targets(server: MlflowChartProps, load_balancer_hosts: dict[str, str]) -> list[str]:
    """The base URLs a user inside the VPC would use: the Service's cluster DNS name (the
    first) and the internal load balancer's, or with TLS on the certificate's name
    (`exposure.internal.hostname`), which the Job reaches at the load balancer (connect_to).
    (The external one answers to the allowed CIDRs only.)"""
    targets = [f"http://{server.service_names['cluster']}.{server.namespace}.svc.cluster.local"]
    if "internal" in server.service_names:
        internal = server.exposure.internal
        if internal.tls:
            targets.append(f"https://{internal.hostname}")
        else:
            targets.append(f"http://{load_balancer_hosts['internal']}")
    return targets


def connect_to(server: MlflowChartProps, load_balancer_hosts: dict[str, str]) -> dict[str, str]:
    """With TLS on the internal load balancer: its certificate's name -> the load balancer's
    DNS name. The Job verifies the certificate for the name clients use, at the load balancer
    this deploy made, before (or whether or not) the team's DNS points that name there."""
    internal = server.exposure.internal
    if "internal" in server.service_names and internal.tls and internal.hostname:
        return {internal.hostname: load_balancer_hosts["internal"]}
    return {}


def _selector(server: MlflowChartProps) -> dict[str, str]:
    # Not the server's selector labels: the Services, the PDB and the server's policy must
    # never select this pod.
    return {
        "app.kubernetes.io/name": "mlflow-deploy-check",
        "app.kubernetes.io/instance": server.instance,
    }


def _labels(server: MlflowChartProps) -> dict[str, str]:
    return {
        **_selector(server),
        "app.kubernetes.io/component": "deploy-check",
        "app.kubernetes.io/part-of": "mlflow",
        "app.kubernetes.io/managed-by": "cdk8s",
    }
