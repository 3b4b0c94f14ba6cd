"""`cdk deploy` proves the server works, or fails.

Three waits, in the order a deploy meets them, each a resource CloudFormation creates only
after the one before:
1. the rollout: the Deployment reports its new ReplicaSet available (kubectl provider read);
2. the load balancers: each LB Service has its DNS name (read by MlflowTrackingServer);
3. the check: a Job (k8s_charts.DeployCheckChart) uses the server through every in-VPC name
   and PUTs its verdict to a CloudFormation wait condition, whose failure carries the Job's
   one-line reason and its `kubectl logs` command into the stack's events.

A wait condition rather than a second read of the Job's status: a read can only time out, so a
failure would surface late and without its reason; a failure signal ends the wait at once.
"""

from __future__ import annotations

import cdk8s
from aws_cdk import Duration
from aws_cdk import aws_cloudformation as cfn
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct
from mlflow_on_eks.k8s_charts import (
    DEADLINE_SECONDS,
    DeployCheckChart,
    DeployCheckChartProps,
    MlflowChartProps,
)

ROLLOUT_TIMEOUT = Duration.minutes(13)
"""Nodes, image pull, migration and start on a first deploy. The kubectl provider's Lambda
runs at most 15 minutes, so a read cannot wait longer than this."""
SIGNAL_MARGIN_SECONDS = 120
"""After the Job's deadline Kubernetes stops it; the wait condition outlives it by this much,
so a Job that never signals (image pull error, refused at admission) still ends the wait."""


def read_object_value(
    scope: Construct,
    id: str,
    *,
    cluster: eks.ICluster,
    object_type: str,
    object_name: str,
    namespace: str,
    json_path: str,
    timeout: Duration,
    revision: str | None,
) -> eks.KubernetesObjectValue:
    """A kubectl read that runs again on every deploy that changes what it reads (`revision`,
    or later through `read_again_on`)."""
    value = eks.KubernetesObjectValue(
        scope,
        id,
        cluster=cluster,
        object_type=object_type,
        object_name=object_name,
        object_namespace=namespace,
        json_path=json_path,
        timeout=timeout,
    )
    if revision is not None:
        read_again_on(value, revision)
    return value


def read_again_on(value: eks.KubernetesObjectValue, revision: str) -> None:
    """CloudFormation calls a custom resource again only when its properties change; a read's
    properties never do, so the revision of what it reads is added as one."""
    resource = value.node.find_child("Resource").node.default_child
    resource.add_property_override("Revision", revision)  # type: ignore[union-attr]


class DeployCheck(Construct):
    """Waits for the rollout, then runs the verification Job and waits for its verdict.

    Attributes: `rollout`, `chart`, `job_name`, `manifest`, `condition`, `logs_command`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        server: MlflowChartProps,
        workload_manifest: eks.KubernetesManifest,
        load_balancer_hosts: dict[str, str],
        revision: str,
    ) -> None:
        """
        :param cluster: the cluster the workload runs on.
        :param server: the props the server's chart was built from.
        :param workload_manifest: the server's manifest; everything here follows it.
        :param load_balancer_hosts: Service kind -> its load balancer's DNS name (deploy time).
        :param revision: a digest of the workload; a new one runs a new check.
        """
        super().__init__(scope, id)
        self.rollout = read_object_value(
            self,
            "Rollout",
            cluster=cluster,
            object_type="deployment",
            object_name=server.instance,
            namespace=server.namespace,
            # The Progressing condition's reason once every new pod is available. The
            # Deployment controller records a new rollout within moments of the apply,
            # long before this read starts.
            json_path='.status.conditions[?(@.reason=="NewReplicaSetAvailable")].type',
            timeout=ROLLOUT_TIMEOUT,
            revision=revision,
        )
        self.rollout.node.add_dependency(workload_manifest)

        # Updates are not supported for wait conditions: each revision gets its own handle and
        # condition (AWS::CloudFormation::WaitConditionHandle in the CloudFormation docs).
        handle = cfn.CfnWaitConditionHandle(self, f"Signal{revision}")
        self.job_name = f"{server.instance}-verify-{revision}"
        self.logs_command = f"kubectl -n {server.namespace} logs job/{self.job_name}"
        self.chart = DeployCheckChart(
            cdk8s.App(),
            "DeployCheck",
            props=DeployCheckChartProps(
                server=server,
                job_name=self.job_name,
                load_balancer_hosts=load_balancer_hosts,
                signal_url=handle.ref,
            ),
        )
        self.manifest = eks.KubernetesManifest(
            self,
            "Manifest",
            cluster=cluster,
            manifest=self.chart.to_json(),
            overwrite=True,
            # No pruning: a failed check's Job must survive the rollback that follows, so its
            # logs can be read; ttlSecondsAfterFinished removes it a day later.
            prune=False,
        )
        self.manifest.node.add_dependency(self.rollout)
        self.condition = cfn.CfnWaitCondition(
            self,
            f"Verified{revision}",
            handle=handle.ref,
            count=1,
            timeout=str(DEADLINE_SECONDS + SIGNAL_MARGIN_SECONDS),
        )
        self.condition.node.add_dependency(self.manifest)
