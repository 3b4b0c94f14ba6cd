"""MlflowStack: the stateless half (identity, image, workloads) and the outputs users need."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from mlflow_on_eks.constructs_lib import (
    AutoModeCluster,
    ExistingClusterAttributes,
    MlflowArtifactStore,
    MlflowAuth,
    MlflowDatabase,
    MlflowMonitoring,
    MlflowTrackingServer,
)
from mlflow_on_eks.constructs_lib.engine_version import EngineVersionReading
from mlflow_on_eks.constructs_lib.monitoring_props import MonitoringProps, alarm_topic
from mlflow_on_eks.k8s_charts import (
    AuthProps,
    ExposureProps,
    GcProps,
    JobsProps,
    WorkloadProps,
)


class MlflowStack(Stack):
    """The MLflow tracking server on the cluster, and outputs to reach it.

    With an `ExistingClusterAttributes`, the cluster is imported here (with its own kubectl
    provider); with an `AutoModeCluster` from the cluster stack, it is used as is, and
    `cluster_name` (an import of that stack's export) ties this stack's life to it.

    Attributes: `cluster` (eks.ICluster), `tracking_server`, `monitoring` (or None),
    `alarm_topic` (or None).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stack_name: str,
        cluster: AutoModeCluster | ExistingClusterAttributes,
        vpc: ec2.IVpc,
        cluster_name: str | None = None,
        database: MlflowDatabase,
        artifact_store: MlflowArtifactStore,
        auth: AuthProps,
        auth_secrets: MlflowAuth | None,
        server: WorkloadProps,
        exposure: ExposureProps,
        deploy_check: bool = True,
        gc: GcProps | None = None,
        jobs: JobsProps | None = None,
        monitoring: MonitoringProps | None = None,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            id,
            stack_name=stack_name,
            env=env,
            description="MLflow on EKS: tracking server (IRSA role, image, Kubernetes workloads)",
        )
        handle = cluster.handle_in(self, vpc)
        self.cluster = handle.cluster
        self._cluster_name = cluster_name or self.cluster.cluster_name
        self._admin_role_arns = handle.admin_role_arns
        self.tracking_server = MlflowTrackingServer(
            self,
            "TrackingServer",
            cluster=handle,
            database=database,
            artifact_store=artifact_store,
            auth=auth,
            auth_secrets=auth_secrets,
            workload=server,
            exposure=exposure,
            deploy_check=deploy_check,
            gc=gc,
            jobs=jobs,
        )
        monitoring = monitoring or MonitoringProps()
        # The topic is the stack's child, as before the model moved: the same logical ID,
        # so e-mail subscribers need not confirm again.
        self.alarm_topic = alarm_topic(self, monitoring)
        self.monitoring = (
            MlflowMonitoring(
                self,
                "Monitoring",
                database=database,
                load_balancer_hosts=self.tracking_server.load_balancer_hosts,
                alarm_topic=self.alarm_topic,
                props=monitoring,
            )
            if monitoring.enabled
            else None
        )
        self._outputs(database, artifact_store)

    def _outputs(self, database: MlflowDatabase, artifact_store: MlflowArtifactStore) -> None:
        server = self.tracking_server
        namespace = server.namespace
        cluster_service = server.service_names["cluster"]
        values = {
            "Namespace": (namespace, "Kubernetes namespace of the MLflow workloads"),
            "ClusterServiceUrl": (
                f"http://{cluster_service}.{namespace}.svc.cluster.local",
                "Tracking URI for clients inside the cluster",
            ),
            "PortForwardCommand": (
                f"kubectl -n {namespace} port-forward svc/{cluster_service} 5000:80",
                "Then open http://localhost:5000 (after aws eks update-kubeconfig)",
            ),
            "KubeconfigCommand": self._kubeconfig_command(),
            "ArtifactBucketName": (artifact_store.bucket.bucket_name, "S3 artifact bucket"),
            "DatabaseEndpoint": (database.endpoint_address, "RDS endpoint (TLS required)"),
            "DatabaseEngineVersion": (
                EngineVersionReading(
                    self, "EngineVersion", database=database, read_on=server.revision
                ).version,
                "The engine version RDS runs, as of this deploy: the template names the major "
                "version only, RDS picks and patches the minor (docs/operations.md, Database "
                "engine versions)",
            ),
            # MLflow's schema migrations are not transactional on MySQL: a snapshot first is
            # the way back (docs/operations.md, Upgrading).
            "SnapshotCommand": (
                "aws rds create-db-snapshot --db-instance-identifier "
                f"{database.instance.instance_identifier} --db-snapshot-identifier "
                f"mlflow-at-{self.tracking_server.revision}",
                "A snapshot of the database as this deployed revision left it: run it before a "
                "deploy that upgrades MLflow (docs/operations.md, Upgrading)",
            ),
            "DatabaseSecretArn": (
                database.secret.secret_arn,
                "Secrets Manager secret of the DB credentials (the ARN, never the value)",
            ),
            "ServerRoleArn": (server.role.role_arn, "IAM role of the server pods (IRSA)"),
        }
        if database.read_replica is not None:
            values["DatabaseReadEndpoint"] = (
                database.read_replica.db_instance_endpoint_address,
                "RDS read replica endpoint: MLflow's reads go here (TLS required)",
            )
        hosts = server.load_balancer_hosts
        internal = server.exposure.internal
        if "internal" in hosts and internal.tls:
            values["InternalTrackingUri"] = (
                f"https://{internal.hostname}",
                "Tracking URI for clients in the VPC (the internal load balancer, HTTPS), once "
                "the name points at InternalLoadBalancerDnsName",
            )
            values["InternalLoadBalancerDnsName"] = (
                hosts["internal"],
                f"Point {internal.hostname} here (CNAME or alias, in DNS the VPC resolves)",
            )
        elif "internal" in hosts:
            values["InternalTrackingUri"] = (
                f"http://{hosts['internal']}",
                "Tracking URI for clients in the VPC (the internal load balancer, plain HTTP)",
            )
        if "external" in hosts:
            values["ExternalLoadBalancerDnsName"] = (
                hosts["external"],
                "Point the certificate's DNS name here (CNAME or alias); clients then use "
                "https://<that name>",
            )
        if server.sso_host is not None:
            values["SsoLoadBalancerDnsName"] = (
                server.sso_host.value,
                f"Point {server.auth.sso.hostname} here (CNAME or alias record): the sign-in "
                "load balancer",
            )
            values["SsoUrl"] = (
                f"https://{server.auth.sso.hostname}",
                "Where people sign in with the IdP (once the DNS record points at "
                "SsoLoadBalancerDnsName)",
            )
        if server.auth_secrets is not None:
            values["AdminCredentialsCommand"] = (
                "aws secretsmanager get-secret-value --query SecretString --output text "
                f"--secret-id {server.auth_secrets.admin_secret.secret_arn}",
                "Prints the admin login (JSON username, password); sign in with it and create "
                "users (docs/operations.md, Authentication)",
            )
        if self.monitoring is not None:
            values["DashboardName"] = (
                self.monitoring.dashboard.dashboard_name,
                "CloudWatch dashboard of this deployment, with its alarms (docs/operations.md, "
                "Alarms)",
            )
        if server.deploy_check is not None:
            values["VerifyCommand"] = (
                server.deploy_check.verify_command,
                "Run the deploy check again now, after a change outside CDK (or: make verify "
                "CONFIG=...); then kubectl logs job/<that name>",
            )
            values["DeployCheckLogsCommand"] = (
                server.deploy_check.logs_command,
                "What the deploy check did (kept a day)",
            )
        for key, (value, description) in values.items():
            CfnOutput(self, key, value=value, description=description)

    def _kubeconfig_command(self) -> tuple[str, str]:
        # The region named: the CLI's default region may be another, where the cluster's name
        # is not found. The CLI calls eks:DescribeCluster with the caller's own credentials
        # (awscli customizations/eks/update_kubeconfig.py); --role-arn only goes into the
        # kubeconfig, for the token kubectl gets later.
        command = f"aws eks update-kubeconfig --region {self.region} --name {self._cluster_name}"
        needs = "needs eks:DescribeCluster on this cluster for your own identity"
        if not self._admin_role_arns:
            return command, (f"Point kubectl at the cluster ({needs}, and an access entry for it)")
        # A new cluster admits only the roles granted cluster-admin; assume one of them.
        return (
            f"{command} --role-arn {self._admin_role_arns[0]}",
            "Point kubectl at the cluster as its admin role (cluster.admin_role_arns; by "
            "default the CDK deploy role, which whoever can deploy this app may assume); "
            f"{needs}, which the role does not lend",
        )
