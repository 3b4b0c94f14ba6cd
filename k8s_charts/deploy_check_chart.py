"""The deploy check: a Job that uses the server the way a user does, once per deploy.

It runs `mlflow-launcher verify` from the server's own image against every name the
deployment serves inside the VPC (the cluster Service, the internal load balancer), then
signals the outcome to CloudFormation, whose deploy fails on a failure signal. The chart knows
nothing of CloudFormation: the load balancer names and the signal URL are plain string props.
"""

from __future__ import annotations

from dataclasses import dataclass

import cdk8s
import cdk8s_plus_27 as kplus
from constructs import Construct
from mlflow_on_eks.k8s_charts.contract import CONTAINER_PORT, verify_environment
from mlflow_on_eks.k8s_charts.hardening import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    TMP_PATH,
    harden,
    small_resources,
)
from mlflow_on_eks.k8s_charts.mlflow_chart import MlflowChartProps, selector_labels
from mlflow_on_eks.k8s_charts.policy import dns, egress, egress_only, tcp

TARGET_TIMEOUT_SECONDS = 600
"""How long each target may take to answer: a new NLB's DNS name propagates and its targets
pass health checks within a few minutes (a 30 s drain plus 3 checks of 10 s on update)."""
DEADLINE_SECONDS = TARGET_TIMEOUT_SECONDS + 300
"""The Job's activeDeadlineSeconds: the wait above, scheduling, an image pull and the checks."""
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


class DeployCheckChart(cdk8s.Chart):
    """The verification Job and a NetworkPolicy that lets it reach only what it tests.

    Attributes: `job`, `targets` (the base URLs it checks).
    """

    def __init__(self, scope: Construct, id: str, *, props: DeployCheckChartProps) -> None:
        server = props.server
        super().__init__(scope, id, namespace=server.namespace, labels=_labels(server))
        self.targets = check_targets(server, props.load_balancer_hosts)
        tmp = kplus.Volume.from_empty_dir(
            self, "TmpVolume", "tmp", size_limit=cdk8s.Size.gibibytes(1)
        )
        self.job = kplus.Job(
            self,
            "Job",
            metadata=cdk8s.ApiObjectMetadata(name=props.job_name),
            # Once: the command retries within its own deadline, and a second pod would only
            # repeat a verdict (the wait condition takes the first signal).
            backoff_limit=0,
            active_deadline=cdk8s.Duration.seconds(DEADLINE_SECONDS),
            ttl_after_finished=cdk8s.Duration.seconds(KEEP_FINISHED_SECONDS),
            select=False,
            pod_metadata=cdk8s.ApiObjectMetadata(labels=_labels(server)),
            restart_policy=kplus.RestartPolicy.NEVER,
            # No Kubernetes API token: it calls none. With authentication on it reads the
            # admin login from Secrets Manager as the server's IRSA role; otherwise it calls no
            # AWS API either (artifact downloads use the server's presigned URLs).
            service_account=kplus.ServiceAccount.from_service_account_name(
                self, "ServerAccount", server.service_account_name
            )
            if server.auth
            else None,
            automount_service_account_token=False,
            security_context=POD_SECURITY,
            volumes=[tmp],
            containers=[
                kplus.ContainerProps(
                    name="verify",
                    image=server.image,
                    image_pull_policy=kplus.ImagePullPolicy.IF_NOT_PRESENT,
                    args=["verify"],
                    env_variables={
                        key: kplus.EnvValue.from_value(value)
                        for key, value in verify_environment(
                            targets=self.targets,
                            timeout_seconds=TARGET_TIMEOUT_SECONDS,
                            signal_url=props.signal_url,
                            logs_command=(
                                f"kubectl -n {server.namespace} logs job/{props.job_name}"
                            ),
                            admin_secret_id=server.auth.admin_secret_id if server.auth else None,
                            region=server.region,
                        ).items()
                    },
                    security_context=CONTAINER_SECURITY,
                    volume_mounts=[kplus.VolumeMount(path=TMP_PATH, volume=tmp)],
                    # The MLflow client and one small artifact: 185 MiB at most, measured
                    # (`/usr/bin/time -v mlflow-launcher verify` against `local`).
                    resources=small_resources(cpu_millis=100, memory_mib=384),
                )
            ],
        )
        harden(
            self.job,
            architecture=server.workload.architecture,
            node_pool=server.node_pool,
            node_labels=server.node_labels,
        )
        self._network_policy(server)

    def _network_policy(self, server: MlflowChartProps) -> None:
        """DNS; the server pods; HTTP to the internal load balancer (its addresses are only
        known in the VPC); HTTPS for presigned S3 downloads and the signal. Nothing inbound."""
        egress_only(
            self,
            "NetworkPolicy",
            name=f"{server.instance}-deploy-check",
            pods=_selector(server),
            rules=[
                dns(),
                egress(tcp(CONTAINER_PORT), to_pods=selector_labels(server)),
                egress(tcp(80, 443)),
            ],
        )


def check_targets(server: MlflowChartProps, load_balancer_hosts: dict[str, str]) -> list[str]:
    """The base URLs a user inside the VPC would use: the Service's cluster DNS name and the
    internal load balancer's. (The external one answers under the certificate's name, which
    only the user's DNS knows, and to the allowed CIDRs only.)"""
    targets = [f"http://{server.service_names['cluster']}.{server.namespace}.svc.cluster.local"]
    if "internal" in server.service_names:
        targets.append(f"http://{load_balancer_hosts['internal']}")
    return targets


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
