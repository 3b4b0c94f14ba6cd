"""DataStack: the stateful half (database and artifact bucket), kept apart and protected."""

from __future__ import annotations

from aws_cdk import Annotations, Environment, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from mlflow_on_eks.constructs_lib import (
    ExistingVpc,
    MlflowArtifactStore,
    MlflowAuth,
    MlflowDatabase,
)
from mlflow_on_eks.constructs_lib.artifact_store import ArtifactProps
from mlflow_on_eks.constructs_lib.database_props import DatabaseProps
from mlflow_on_eks.k8s_charts import AuthProps
from stacks.network_stack import guard_vpc

DESTROY_FLAG = "allow_data_destroy"
"""Context flag that, with a `removal_policy: destroy` setting, lets data be deleted."""


class DataStack(Stack):
    """RDS backend store and S3 artifact store, with termination protection (or, with
    `database.existing` / `artifacts.existing`, imports of the instance and bucket you own: the
    stack then creates neither, and deletes neither).

    Data outlives the stack by default: the database leaves a final snapshot and has deletion
    protection, the bucket is retained. Deleting data needs two switches, the setting and the
    `allow_data_destroy` context flag; the setting alone gives a warning and keeps the data.

    The basic-auth secrets live here too: the admin password and the KEK passphrase belong to
    what the database holds, and go only when it goes.

    Attributes: `vpc`, `database`, `artifact_store`, `auth` (None when authentication is off).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        stack_name: str,
        vpc: ec2.IVpc | ExistingVpc,
        database: DatabaseProps,
        artifacts: ArtifactProps,
        auth: AuthProps,
        allow_destroy: bool = False,
        vpc_id_import: str | None = None,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            id,
            stack_name=stack_name,
            env=env,
            description="MLflow on EKS: backend database and artifact bucket (stateful)",
        )
        self.vpc = vpc.import_into(self) if isinstance(vpc, ExistingVpc) else vpc
        guard_vpc(self, vpc_id_import)
        database_removal = self._removal(
            database.removal_policy == "destroy", allow_destroy, RemovalPolicy.SNAPSHOT, "database"
        )
        artifacts_removal = self._removal(
            artifacts.removal_policy == "destroy", allow_destroy, RemovalPolicy.RETAIN, "artifacts"
        )
        self.termination_protection = RemovalPolicy.DESTROY not in (
            database_removal,
            artifacts_removal,
        )
        # `destroy` only with the context flag as well (a warning otherwise, above). Replaced
        # only then: an existing instance or bucket refuses a removal policy set at all.
        self.database = MlflowDatabase(
            self,
            "Database",
            vpc=self.vpc,
            props=database
            if database_removal == RemovalPolicy.DESTROY or database.removal_policy != "destroy"
            else database.replace(removal_policy="snapshot"),
        )
        self.artifact_store = MlflowArtifactStore(
            self,
            "Artifacts",
            props=artifacts
            if artifacts_removal == RemovalPolicy.DESTROY or artifacts.removal_policy != "destroy"
            else artifacts.replace(removal_policy="retain"),
        )
        self.auth = (
            MlflowAuth(
                self,
                "Auth",
                props=auth,
                removal_policy=RemovalPolicy.DESTROY
                if database_removal == RemovalPolicy.DESTROY
                else RemovalPolicy.RETAIN,
            )
            if auth.enabled
            else None
        )

    def _removal(
        self, requested: bool, allowed: bool, keep: RemovalPolicy, what: str
    ) -> RemovalPolicy:
        if not requested:
            return keep
        if allowed:
            return RemovalPolicy.DESTROY
        Annotations.of(self).add_warning_v2(
            f"mlflow:{what}-destroy-not-allowed",
            f"{what}.removal_policy is destroy, but the context flag {DESTROY_FLAG}=true is not "
            f"set: keeping the {what} ({keep.name}). Pass -c {DESTROY_FLAG}=true to delete data "
            "with the stack.",
        )
        return keep
