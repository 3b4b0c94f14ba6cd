"""`cdk deploy` proves the server works, or fails.

After the workload's manifest is applied, two steps, each a resource CloudFormation creates
only after the one before:
1. the load balancers: each LB Service has its DNS name (kubectl reads by MlflowTrackingServer);
2. the check: a Job (k8s_charts.DeployCheckChart) waits inside the cluster until the Deployment
   has rolled out this deploy's pod template, uses the server through every in-VPC name, and
   PUTs its verdict to a CloudFormation wait condition, whose failure carries the Job's
   one-line reason and its `kubectl logs` command into the stack's events.

No custom resource waits for the pods. CloudFormation rolls a failed update back in reverse
order and calls each updated custom resource again with its previous properties, before the
previous manifest is re-applied: a kubectl read that waits for the rollout (the `Rollout` read
this replaces, 13 min) finds the failing template still there, waits out its timeout and fails
the rollback (UPDATE_ROLLBACK_FAILED, then `continue-update-rollback` by hand). A wait condition
is only created and deleted; a rollback never waits on it, and the Job it awaited does not
stop the re-applied manifest. A read of what exists (a Service's load balancer name) returns at
once, in a rollback too.

A wait condition rather than a read of the Job's status: a read can only time out, so a failure
would surface late and without its reason; a failure signal ends the wait at once.
"""

from __future__ import annotations

import cdk8s
from aws_cdk import Duration
from aws_cdk import aws_cloudformation as cfn
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from ..k8s_charts import DeployCheckChart, DeployCheckChartProps, MlflowChartProps
from ..k8s_charts.deploy_check_chart import on_demand_name, verify_service_account_name
from .irsa import irsa_principal

SIGNAL_MARGIN_SECONDS = 120
"""After the Job's deadline Kubernetes stops it; the wait condition outlives it by this much,
so a Job that never signals (image pull error, refused at admission) still ends the wait."""
MAX_WAIT_SECONDS = 43200
"""The longest an AWS::CloudFormation::WaitCondition may wait: its Timeout's maximum, 12 hours
(CloudFormation Template Reference, AWS::CloudFormation::WaitCondition). The Job's rollout
budget is cut so that its deadline and the margin fit under it."""


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
    or later through `read_again_on`). Read only what already exists when the read runs: the
    handler waits up to `timeout` for a value, in a rollback too (module docstring)."""
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
    """Runs the verification Job after the workload and waits for its verdict.

    With authentication on, the Job's ServiceAccount (`<instance>-verify`) gets its own IRSA
    role (`role`), trusted for exactly `system:serviceaccount:<namespace>:<instance>-verify`
    and allowed to read the admin login's secret only.

    Attributes: `chart`, `job_name`, `manifest`, `role` (or None), `condition`, `logs_command`,
    `verify_command` (the kubectl line that runs the check again, from its on-demand CronJob).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        oidc_provider: iam.IOpenIdConnectProvider,
        server: MlflowChartProps,
        workload_manifest: eks.KubernetesManifest,
        load_balancer_hosts: dict[str, str],
        revision: str,
        config_digest: str | None = None,
        admin_secret: secretsmanager.ISecret | None = None,
    ) -> None:
        """
        :param cluster: the cluster the workload runs on.
        :param oidc_provider: the cluster's IAM OIDC provider (IRSA trust of the Job's role).
        :param server: the props the server's chart was built from.
        :param workload_manifest: the server's manifest; everything here follows it.
        :param load_balancer_hosts: Service kind -> its load balancer's DNS name (deploy time).
        :param revision: a digest of the workload; a new one runs a new check.
        :param config_digest: the config digest in the server's pod template, by which the Job
            knows this deploy's template. Default: none (the image alone).
        :param admin_secret: the admin login the Job signs in with; required when
            sign-in is on (`server.sign_in`). Default: none.
        """
        super().__init__(scope, id)
        if server.sign_in and admin_secret is None:
            raise ValueError("DeployCheck: admin_secret is required with sign-in on")
        self.role: iam.Role | None = None
        if admin_secret is not None:
            account = verify_service_account_name(server)
            self.role = iam.Role(
                self,
                "Role",
                assumed_by=irsa_principal(self, oidc_provider, server.namespace, account),
                description=f"MLflow deploy check ({server.namespace}/{account}) through IRSA",
            )
            admin_secret.grant_read(self.role)

        # Updates are not supported for wait conditions: each revision gets its own handle and
        # condition (AWS::CloudFormation::WaitConditionHandle in the CloudFormation docs).
        handle = cfn.CfnWaitConditionHandle(self, f"Signal{revision}")
        self.job_name = f"{server.instance}-verify-{revision}"
        self.logs_command = f"kubectl -n {server.namespace} logs job/{self.job_name}"
        on_demand = on_demand_name(server.instance)
        self.verify_command = (
            f"kubectl -n {server.namespace} create job --from=cronjob/{on_demand} "
            f"{on_demand}-manual-$(date +%s)"
        )
        self.chart = DeployCheckChart(
            cdk8s.App(),
            "DeployCheck",
            props=DeployCheckChartProps(
                server=server,
                job_name=self.job_name,
                load_balancer_hosts=load_balancer_hosts,
                signal_url=handle.ref,
                config_digest=config_digest,
                role_arn=self.role.role_arn if self.role else None,
                deadline_limit_seconds=MAX_WAIT_SECONDS - SIGNAL_MARGIN_SECONDS,
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
        self.manifest.node.add_dependency(workload_manifest)
        if self.role is not None:
            # The role's policy, not only the role its ARN names, before the Job reads.
            self.manifest.node.add_dependency(self.role)
        self.condition = cfn.CfnWaitCondition(
            self,
            f"Verified{revision}",
            handle=handle.ref,
            count=1,
            timeout=str(self.chart.deadline_seconds + SIGNAL_MARGIN_SECONDS),
        )
        self.condition.node.add_dependency(self.manifest)
