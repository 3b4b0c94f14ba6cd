"""One IAM role per workload of the chart (IRSA), each allowed exactly what that workload does.

- the server (ServiceAccount `mlflow`): read, write, list and delete objects under the artifact
  prefix, the S3 actions named one by one (no object versions, retention, legal holds or bucket
  settings), and with an existing bucket's own KMS key, data keys and decryption through S3;
  read the server's database login and the sign-in secrets;
- the migration Job (`mlflow-migrate`): read the instance's master login (decrypting it through
  Secrets Manager when an existing secret has a key of its own) and the server's login (it makes
  the latter); create, tag and list the snapshots it takes before a schema change;
- the gc CronJob (`mlflow-gc`): read the server's database login and the admin login (it
  deletes through the server, which deletes the artifacts);
- the sign-in load balancer's secret sync (`mlflow-sso-sync`, with auth.sso): read the IdP
  client's secret;
- the job runner (`mlflow-jobs`, with jobs.enabled): what the server may (it is an MLflow
  server whose jobs read and write the store and the artifacts), and nothing more. A role of its
  own, so what judges need besides (an LLM on Amazon Bedrock, say) is granted to it alone:
  `MlflowTrackingServer.roles.jobs.add_to_principal_policy(...)`.

The deploy check's role is DeployCheck's. tests/unit/test_least_privilege.py reads every role's
policy from the synthesized template and fails on an action outside its workload's list.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from .acknowledgements import acknowledge_wildcard_resources
from .artifact_store import MlflowArtifactStore
from .auth import MlflowAuth
from .database import MlflowDatabase
from .irsa import irsa_principal

SNAPSHOT_PREFIX = "mlflow-before-"
"""Snapshots the launcher takes before a schema change (its snapshot module's PREFIX)."""

ARTIFACT_OBJECT_ACTIONS = (
    "s3:GetObject",  # downloads and HeadObject; presigned download URLs
    "s3:PutObject",  # uploads, and every step of a (presigned) multipart upload
    "s3:DeleteObject",  # a deleted artifact's current version; versioning keeps the rest
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
"""What MLflow's S3 artifact repository calls on objects (mlflow/store/artifact/
s3_artifact_repo.py), by the IAM action each S3 operation needs (Amazon S3 API reference:
"Policy actions for Amazon S3")."""
ARTIFACT_BUCKET_ACTIONS = ("s3:ListBucket",)
"""ListObjectsV2, to list a run's artifacts; under the prefix only (s3:prefix condition)."""
ARTIFACT_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
"""On the bucket's own KMS key (SSE-KMS), what uploads (multipart too) and downloads need: "To
upload or download an object encrypted with an AWS KMS key ... you need kms:GenerateDataKey and
kms:Decrypt permissions on the key" (S3 User Guide, Using server-side encryption with AWS KMS
keys; Multipart upload API and permissions)."""


class WorkloadRoles(Construct):
    """The IRSA roles of the server, the migration Job, the gc CronJob, the sign-in secret
    sync and the job runner.

    Attributes: `server`, `migrate`, `gc`, `sso_sync`, `jobs` (iam.Role; the last three None
    when their workload does not run), and the ServiceAccount names each trusts
    (`server_account`, `migrate_account`, `gc_account`, `sso_sync_account`, `jobs_account`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        oidc_provider: iam.IOpenIdConnectProvider,
        namespace: str,
        instance: str,
        database: MlflowDatabase,
        artifact_store: MlflowArtifactStore,
        auth: MlflowAuth | None,
        snapshots: bool,
        gc: bool,
        sso_client_secret_arn: str | None = None,
        jobs: bool = False,
    ) -> None:
        """
        :param oidc_provider: the cluster's IAM OIDC provider (IRSA trust).
        :param namespace: of the ServiceAccounts.
        :param instance: the chart's instance name; the ServiceAccounts are `<instance>`,
            `<instance>-migrate` and `<instance>-gc`.
        :param snapshots: the migration Job takes snapshots before a schema change.
        :param gc: the gc CronJob runs (it has no role otherwise).
        :param sso_client_secret_arn: the IdP client's secret, which the sign-in load
            balancer's sync copies into the cluster (`<instance>-sso-sync`; no role without).
        :param jobs: the job runner runs (`<instance>-jobs`; no role without).
        """
        super().__init__(scope, id)
        self.server_account = instance
        self.migrate_account = f"{instance}-migrate"
        self.gc_account = f"{instance}-gc"

        def role(id: str, account: str, what: str) -> iam.Role:
            return iam.Role(
                self,
                id,
                assumed_by=irsa_principal(self, oidc_provider, namespace, account, id),
                description=f"MLflow {what} ({namespace}/{account}) through IRSA",
            )

        self.server = role("Server", self.server_account, "server pods")
        _grant_server(self.server, database, artifact_store, auth)

        self.migrate = role("Migrate", self.migrate_account, "migration Job")
        database.secret.grant_read(self.migrate)
        if database.secret.encryption_key is not None:  # a secret of your own, with a KMS key
            _allow_key(
                self.migrate, database.secret.encryption_key, "secretsmanager", ("kms:Decrypt",)
            )
        database.server_login_secret.grant_read(self.migrate)
        if snapshots:
            self._grant_snapshots(database)

        self.sso_sync_account = f"{instance}-sso-sync"
        self.sso_sync: iam.Role | None = None
        if sso_client_secret_arn:
            self.sso_sync = role("SsoSync", self.sso_sync_account, "sign-in secret sync")
            self.sso_sync.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=[sso_client_secret_arn]
                )
            )
        self.jobs_account = f"{instance}-jobs"
        self.jobs: iam.Role | None = None
        if jobs:
            self.jobs = role("Jobs", self.jobs_account, "job runner")
            _grant_server(self.jobs, database, artifact_store, auth)
        self.gc: iam.Role | None = None
        if gc:
            self.gc = role("Gc", self.gc_account, "gc CronJob")
            database.server_login_secret.grant_read(self.gc)
            if auth:
                auth.admin_secret.grant_read(self.gc)

    def _grant_snapshots(self, database: MlflowDatabase) -> None:
        """Find the instance's snapshots, and create and tag the launcher's own
        (SNAPSHOT_PREFIX)."""
        stack = Stack.of(self)

        def snapshots(name: str) -> str:
            return stack.format_arn(
                service="rds",
                resource="snapshot",
                resource_name=name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )

        instance = database.instance.instance_arn
        own, any_snapshot = snapshots(f"{SNAPSHOT_PREFIX}*"), snapshots("*")
        # CreateDBSnapshot needs the instance and the new snapshot ("db*" and "snapshot*" in
        # the Service Authorization Reference, list_amazonrds.html).
        self.migrate.add_to_principal_policy(
            iam.PolicyStatement(actions=["rds:CreateDBSnapshot"], resources=[instance, own])
        )
        # Tags land on the launcher's snapshots only: the instance's, copied by RDS
        # (copy_tags_to_snapshot), are authorized as AddTagsToResource on the new snapshot,
        # and the launcher then tags it with the upgrade it precedes. Never the instance.
        # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/security_iam_id-based-policy-examples-grant-permissions-tags-on-create.html
        self.migrate.add_to_principal_policy(
            iam.PolicyStatement(actions=["rds:AddTagsToResource"], resources=[own])
        )
        self.migrate.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["rds:DescribeDBSnapshots"], resources=[instance, any_snapshot]
            )
        )
        acknowledge_wildcard_resources(
            _default_policy(self.migrate),
            lambda: [own, any_snapshot],
            "Snapshots before a schema change: the launcher creates only snapshots named "
            f"{SNAPSHOT_PREFIX}* of this instance, and lists the instance's snapshots (names it "
            "cannot know in advance: an operator's count too); describing reads no data.",
        )


def _grant_server(
    role: iam.Role,
    database: MlflowDatabase,
    artifact_store: MlflowArtifactStore,
    auth: MlflowAuth | None,
) -> None:
    """What an MLflow server process needs: the artifacts, its database login, the sign-in
    secrets."""
    _grant_artifacts(role, artifact_store)
    database.server_login_secret.grant_read(role)
    for secret in auth.secrets if auth else ():
        secret.grant_read(role)


def _grant_artifacts(role: iam.Role, artifact_store: MlflowArtifactStore) -> None:
    bucket, prefix = artifact_store.bucket, artifact_store.prefix
    objects = bucket.arn_for_objects(f"{prefix}/*")
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=list(ARTIFACT_OBJECT_ACTIONS), resources=[objects])
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=list(ARTIFACT_BUCKET_ACTIONS),
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
        )
    )
    if bucket.encryption_key is not None:  # a bucket of your own, with a KMS key
        _allow_key(role, bucket.encryption_key, "s3", ARTIFACT_KEY_ACTIONS)
    acknowledge_wildcard_resources(
        _default_policy(role),
        lambda: [objects],
        "MLflow's artifact proxy reads, writes and deletes any artifact under the "
        "bucket's artifact prefix (object names are run IDs and paths it cannot know in "
        "advance); the actions are listed one by one.",
    )


def _allow_key(role: iam.Role, key: kms.IKey, service: str, actions: tuple[str, ...]) -> None:
    """`actions` on `key` for `role`, when `service` uses the key on its behalf (kms:ViaService,
    written as CDK's own grants write it). In the role's policy: CDK's key grants through a
    ViaServicePrincipal go to the key's policy only, which an imported key does not take (the
    role would get nothing); the key's own policy must still let IAM policies allow it (a KMS
    key's default policy does)."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=list(actions),
            resources=[key.key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": f"{service}.{Stack.of(role).region}.amazonaws.com"
                }
            },
        )
    )


def _default_policy(role: iam.Role) -> iam.Policy:
    policy = role.node.try_find_child("DefaultPolicy")
    assert isinstance(policy, iam.Policy), "a grant above creates the role's default policy"
    return policy
