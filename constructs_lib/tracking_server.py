"""MlflowTrackingServer: identity, image and Kubernetes workloads of the MLflow server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import cdk8s
from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from ..k8s_charts import (
    AuthProps,
    ExposureProps,
    GcProps,
    JobsProps,
    MlflowChart,
    MlflowChartProps,
    WorkloadProps,
)
from ..k8s_charts.auth import AUTH_DATABASE_NAME, anonymous_problem, sign_in_sso
from ..k8s_charts.contract import CONFIG_DIGEST_ANNOTATION
from ..k8s_charts.rules import arn_region_and_account
from ..k8s_charts.sso_chart import SsoNames
from .artifact_store import MlflowArtifactStore
from .auth import MlflowAuth
from .cluster import ClusterHandle
from .database import MlflowDatabase
from .deploy_check import (
    DeployCheck,
    read_again_on,
    read_object_value,
)
from .load_balancer_dimension import LoadBalancerDimension
from .references import same_place
from .review import resolve_for_review
from .workload_roles import WorkloadRoles

INSTANCE = "mlflow"
"""The chart's instance: its objects' names and the ServiceAccounts' (`mlflow`,
`mlflow-migrate`, `mlflow-gc`)."""

PLAIN_HTTP_SIGN_IN = "mlflow:sign-in-over-plain-http"
"""The warning's ID: a CDK app that accepts plain HTTP inside its VPC acknowledges it by this
(`Annotations.of(server).acknowledge_warning(...)`)."""
PLAIN_HTTP_SIGN_IN_WARNING = (
    "Sign-in is on (auth.enabled) but the internal load balancer serves plain HTTP: every "
    "request's basic-auth password crosses the VPC in clear. Set "
    "exposure.internal.certificate_arn (an ACM certificate, public or from AWS Private CA) and "
    "exposure.internal.hostname to serve HTTPS (docs/operations.md, TLS on the load balancers)."
)

LOAD_BALANCER_TIMEOUT = Duration.minutes(10)
"""A new NLB gets its DNS name within a few minutes of its Service."""

_PLATFORMS = {"amd64": ecr_assets.Platform.LINUX_AMD64, "arm64": ecr_assets.Platform.LINUX_ARM64}

IMAGE_DIRECTORY = Path(__file__).resolve().parent.parent / "image"
"""image/ of this repository: the Dockerfile, its lock file and the launcher."""


class MlflowTrackingServer(Construct):
    """The MLflow tracking server on an EKS cluster, wired to a database and an artifact store.

    Creates the IRSA role (trusted for exactly `system:serviceaccount:<namespace>:<name>` with
    the `sts.amazonaws.com` audience) with read/write on the artifact prefix and read on the
    database secret only; the server image as a CDK Docker asset (built and pushed at deploy
    time); the database's one ingress rule: from `database_client_security_group`, on the
    database port; and the cdk8s chart (MlflowChart) applied as one manifest.

    Unless `deploy_check` is off, the deploy then waits for the rollout and runs a check that
    uses the server as a user would, failing the deploy with its reason (DeployCheck).

    Attributes: `role`, `image`, `chart`, `manifest`, `database_ingress`, `workload`,
    `namespace`, `service_account_name`, `service_names`, `exposure`, `auth`, `auth_secrets`,
    `revision`, `load_balancer_hosts` (kind -> DNS name, resolved at deploy time),
    `deploy_check` (or None).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: ClusterHandle,
        database: MlflowDatabase,
        artifact_store: MlflowArtifactStore,
        auth: AuthProps | None = None,
        auth_secrets: MlflowAuth | None = None,
        workload: WorkloadProps | None = None,
        exposure: ExposureProps | None = None,
        image_directory: Path = IMAGE_DIRECTORY,
        deploy_check: bool = True,
        gc: GcProps | None = None,
        jobs: JobsProps | None = None,
    ) -> None:
        """
        :param cluster: the cluster and what runs there (ClusterHandle: its kubectl-ready
            cluster, OIDC provider, the one group the database admits, MLflow's node pool and
            labels), from `AutoModeCluster.handle`, `ImportedCluster.handle` or your own.
        :param database: the backend store.
        :param artifact_store: the artifact bucket.
        :param auth: sign-in (the config file's `auth` section). Default: `AuthProps()`, on.
            With `enabled: false`, anyone who reaches the server may read, change and delete
            everything: `allow_anonymous_through` must then name every way in the server has
            (cluster, internal, external), so leaving sign-in out is a decision.
        :param auth_secrets: the sign-in secrets (an MlflowAuth, usually in the data stack),
            required with `auth.enabled`. MLflow's admin is the one its secret names.
        :param workload: how the server runs (namespace, replicas and autoscaling, workers,
            resources, allowed hosts, architecture, scratch space, drain); passed to the chart
            unchanged. Default: `WorkloadProps()`, the config file's defaults.
        :param exposure: the load balancers (the config file's `exposure` section): an
            internal NLB (plain HTTP, or HTTPS with `internal.certificate_arn`; with sign-in on
            over plain HTTP, synth warns: PLAIN_HTTP_SIGN_IN), and with `external.enabled` an
            internet-facing TLS NLB; the cluster's controller (`cluster.load_balancer_class`)
            provisions them. Default: `ExposureProps()`, the internal one only, plain HTTP.
        :param image_directory: Docker build context. Default: this repository's image/.
        :param deploy_check: wait for the rollout and verify the server through its names
            before the deploy succeeds. Default: true.
        :param gc: with `gc.enabled` (the config file's `gc` section), a CronJob that
            permanently removes runs and experiments deleted longer ago than `gc.older_than`,
            with their artifacts. Default: none (deleted stays recoverable).
        :param jobs: MLflow's GenAI jobs (the config file's `jobs` section): the server pods
            record them, one job-runner pod with an IAM role of its own (`roles.jobs`) runs
            them and the periodic tasks. Default: `JobsProps()`, on.
        """
        super().__init__(scope, id)
        exposure = exposure or ExposureProps()
        for key, section in (("internal", exposure.internal), ("external", exposure.external)):
            if section.enabled and section.certificate_arn:
                _certificate_here(Stack.of(self), section.certificate_arn, f"exposure.{key}")
        auth = auth or AuthProps()
        sso = sign_in_sso(auth)
        if sso is not None and sso.certificate_arn:
            _certificate_here(Stack.of(self), sso.certificate_arn, "auth.sso")
        if auth.enabled and auth_secrets is None:
            raise ValueError(
                "auth_secrets is required with auth.enabled: an MlflowAuth (the sign-in "
                "secrets, usually made in the data stack)"
            )
        if not auth.enabled and auth_secrets is not None:
            raise ValueError("auth_secrets is given but auth.enabled is false: leave it out")
        workload = workload or WorkloadProps()
        jobs = jobs or JobsProps()
        namespace = workload.namespace
        self.workload = workload
        self.namespace = namespace
        self.roles = WorkloadRoles(
            self,
            "Roles",
            oidc_provider=cluster.oidc_provider,
            namespace=namespace,
            instance=INSTANCE,
            database=database,
            artifact_store=artifact_store,
            auth=auth_secrets,
            snapshots=database.props.snapshot_before_upgrade,
            gc=gc is not None and gc.enabled,
            sso_client_secret_arn=sso.client_secret_arn if sso else None,
            jobs=jobs.enabled,
        )
        self.role = self.roles.server
        self.service_account_name = self.roles.server_account

        if workload.architecture not in _PLATFORMS:
            raise ValueError(
                f"workload.architecture must be one of {sorted(_PLATFORMS)}, "
                f"got {workload.architecture!r}"
            )
        if not (image_directory / "Dockerfile").is_file():
            raise ValueError(
                f"image_directory {image_directory} has no Dockerfile: pass a Docker build "
                "context like mlflow_on_eks/image (the default, which the package ships)"
            )
        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(image_directory),
            platform=_PLATFORMS[workload.architecture],
        )

        # The database's security group is imported here so the rule belongs to this
        # (stateless) stack: the data stack never depends on the cluster.
        database_group = ec2.SecurityGroup.from_security_group_id(
            self,
            "DatabaseSecurityGroup",
            database.security_group.security_group_id,
            mutable=True,
            allow_all_outbound=False,
        )
        database_group.add_ingress_rule(
            cluster.database_client_security_group,
            ec2.Port.tcp(database.port),
            "MLflow server pods",
        )
        self.database_ingress = database_group

        props = MlflowChartProps(
            image=self.image.image_uri,
            role_arn=self.role.role_arn,
            migrate_role_arn=self.roles.migrate.role_arn,
            gc_role_arn=self.roles.gc.role_arn if self.roles.gc else None,
            sso_sync_role_arn=self.roles.sso_sync.role_arn if self.roles.sso_sync else None,
            db_engine=database.engine,
            db_host=database.endpoint_address,
            db_port=database.port,
            db_name=database.database_name,
            db_secret_id=database.server_login_secret.secret_arn,
            db_admin_secret_id=database.secret.secret_arn,
            db_read_host=database.read_endpoint_address,
            db_instance_id=database.instance.instance_identifier
            if database.props.snapshot_before_upgrade
            else None,
            artifacts_destination=artifact_store.destination,
            region=Stack.of(self).region,
            url_suffix=Stack.of(self).url_suffix,
            instance=INSTANCE,
            service_account_name=self.service_account_name,
            workload=workload,
            node_pool=cluster.node_pool,
            node_labels=dict(cluster.node_labels),
            exposure=exposure,
            load_balancer_class=cluster.load_balancer_class,
            auth=auth,
            auth_secrets=auth_secrets.secret_ids if auth_secrets else None,
            gc=gc,
            jobs=jobs,
            jobs_role_arn=self.roles.jobs.role_arn if self.roles.jobs else None,
        )
        anonymous = anonymous_problem(auth, list(props.service_names))
        if anonymous:
            raise ValueError(f"auth.allow_anonymous_through {anonymous}")
        if props.sign_in and "internal" in props.service_names and not exposure.internal.tls:
            Annotations.of(self).add_warning_v2(PLAIN_HTTP_SIGN_IN, PLAIN_HTTP_SIGN_IN_WARNING)
        self.service_names = props.service_names
        self.exposure = exposure
        hosts = self._load_balancer_hosts(cluster.cluster)
        self.sso_host = self._sso_host(cluster.cluster) if sso else None
        # The ALB the sign-in Ingress got: its DNS name (the target of the team's record for
        # auth.sso.hostname), its ARN (the signer of the identity it passes to MLflow) and its
        # subnets (the only addresses that identity may come from).
        self.sso_load_balancer = (
            LoadBalancerDimension(
                self, "SsoLoadBalancer", dns_name=self.sso_host.value, subnets=True
            )
            if self.sso_host
            else None
        )
        props = replace(
            props,
            migration_revision=self._migration_revision(props),
            load_balancer_dns_names={kind: value.value for kind, value in hosts.items()},
            sso_signer_arn=self.sso_load_balancer.arn if self.sso_load_balancer else None,
            sso_trusted_cidrs=(
                self.sso_load_balancer.subnet_cidrs if self.sso_load_balancer else None
            ),
        )
        self.auth = auth
        self.auth_secrets = auth_secrets
        self.chart = MlflowChart(cdk8s.App(), "Mlflow", props=props)
        self.load_balancer_manifest = self._apply_load_balancers(
            cluster.cluster, [*hosts.values(), *([self.sso_host] if self.sso_host else [])]
        )
        # Pods read the ConfigMap only at start: a digest of its (resolved) data in the pod
        # template makes a settings change roll the pods, as an image change does.
        resolved = Stack.of(self).resolve(dict(self.chart.config_map.data))
        digest = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()
        for workload_ in (self.chart.deployment, self.chart.job_runner):
            if workload_ is not None:
                workload_.pod_metadata.add_annotation(CONFIG_DIGEST_ANNOTATION, digest[:16])
        # Created here, not with cluster.add_cdk8s_chart: that puts the manifest in the
        # cluster's stack, which would then depend on this stack's role and image (a cycle).
        self.manifest = eks.KubernetesManifest(
            self,
            "Manifest",
            cluster=cluster.cluster,
            manifest=self.chart.to_json(),
            # `kubectl apply` on create too: a re-deploy over objects an earlier, failed
            # attempt left behind must not stop at "already exists".
            overwrite=True,
        )
        if self.load_balancer_manifest is not None:
            # Implied by the names in the ConfigMap; said here for the reader.
            self.manifest.node.add_dependency(self.load_balancer_manifest)
        # Everything the manifest applies, the image included: a new value means pods change.
        self.revision = _revision(self, self.chart.to_json())
        self.load_balancer_hosts = {kind: value.value for kind, value in hosts.items()}
        self.deploy_check = (
            DeployCheck(
                self,
                "DeployCheck",
                cluster=cluster.cluster,
                oidc_provider=cluster.oidc_provider,
                server=props,
                workload_manifest=self.manifest,
                load_balancer_hosts=self.load_balancer_hosts,
                revision=self.revision,
                config_digest=digest[:16],
                admin_secret=auth_secrets.admin_secret if auth_secrets else None,
            )
            if deploy_check
            else None
        )

    def _load_balancer_hosts(self, cluster: eks.ICluster) -> dict[str, eks.KubernetesObjectValue]:
        """Reads of the DNS name each load balancer Service gets, at deploy time; they run
        once `_apply_load_balancers` has applied the Services."""
        return {
            kind: read_object_value(
                self,
                f"{kind.capitalize()}LoadBalancerHost",
                cluster=cluster,
                object_type="service",
                object_name=name,
                namespace=self.namespace,
                json_path=".status.loadBalancer.ingress[0].hostname",
                timeout=LOAD_BALANCER_TIMEOUT,
                revision=None,
            )
            for kind, name in self.service_names.items()
            if kind != "cluster"
        }

    def _sso_host(self, cluster: eks.ICluster) -> eks.KubernetesObjectValue:
        """The sign-in ALB's DNS name, from its Ingress, once `_apply_load_balancers` has
        applied it."""
        return read_object_value(
            self,
            "SsoLoadBalancerHost",
            cluster=cluster,
            object_type="ingress",
            object_name=SsoNames(INSTANCE).ingress,
            namespace=self.namespace,
            json_path=".status.loadBalancer.ingress[0].hostname",
            timeout=LOAD_BALANCER_TIMEOUT,
            revision=None,
        )

    def _apply_load_balancers(
        self, cluster: eks.ICluster, hosts: Sequence[eks.KubernetesObjectValue]
    ) -> eks.KubernetesManifest | None:
        """The Namespace and the load balancer Services, applied before the rest: the
        ConfigMap the rest applies names the DNS names these get (the server allows exactly
        those as Host and browser origin, not every load balancer of the region).

        The main manifest applies the same objects again, so it keeps owning them: its
        deletion (the stack's) removes them, and its prune removes a Service turned off. This
        one is retained when CloudFormation removes it: in the rollback of the deploy that
        added it, its deletion would take the namespace and every object in it."""
        if not hosts:
            return None
        objects = self.chart.load_balancer_objects()
        manifest = eks.KubernetesManifest(
            self, "LoadBalancers", cluster=cluster, manifest=objects, overwrite=True
        )
        manifest.node.find_child("Resource").apply_removal_policy(RemovalPolicy.RETAIN)
        revision = _revision(self, objects)
        for value in hosts:
            value.node.add_dependency(manifest)
            read_again_on(value, revision)
        return manifest

    def _migration_revision(self, props: MlflowChartProps) -> str:
        """What the migration Job migrates with: the image (MLflow's migrations, the
        launcher), where the databases are and who logs in. A new value, a new Job."""
        inputs = {
            "image": props.image,
            "db": [props.db_engine, props.db_host, props.db_port, props.db_name],
            "logins": [props.db_secret_id, props.db_admin_secret_id],
            "auth": AUTH_DATABASE_NAME if props.sign_in else None,
            "snapshot": props.db_instance_id,
        }
        resolved = json.dumps(Stack.of(self).resolve(inputs), sort_keys=True)
        return hashlib.sha256(resolved.encode()).hexdigest()[:10]

    def review_manifests(self) -> list[dict[str, Any]]:
        """The Kubernetes objects this applies, in order (the deploy check's Job last),
        deploy-time values shown as placeholders."""
        objects = self.chart.to_json()
        if self.deploy_check is not None:
            objects += self.deploy_check.chart.to_json()
        return list(resolve_for_review(self, objects))


def _revision(scope: Construct, objects: list[dict[str, Any]]) -> str:
    resolved = json.dumps(Stack.of(scope).resolve(objects), sort_keys=True)
    return hashlib.sha256(resolved.encode()).hexdigest()[:12]


def _certificate_here(stack: Stack, certificate_arn: str, section: str) -> None:
    """A load balancer serves ACM certificates of its own account and region only; where the
    stack's environment is known at synth, one from elsewhere is refused here rather than by
    the load balancer controller after the deploy."""
    region, account = arn_region_and_account(certificate_arn)
    same_place(
        stack,
        f"{section}.certificate_arn",
        "the load balancer can serve certificates of its own account and region only",
        region=region,
        account=account,
    )
