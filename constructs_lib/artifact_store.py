"""MlflowArtifactStore: the S3 bucket the server proxies artifacts to."""

from __future__ import annotations

from typing import Literal

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct
from pydantic import Field

from ..k8s_charts.model import Props
from ..k8s_charts.rules import Rule
from .acknowledgements import acknowledge


class ArtifactProps(Props):
    """The S3 artifact store: the config file's `artifacts` section and MlflowArtifactStore's
    props (for a bucket it creates)."""

    versioned: bool = Field(True, description="S3 versioning: an overwritten artifact is kept.")
    noncurrent_version_expiration_days: int | None = Field(
        90,
        ge=1,
        le=3650,
        description="Days an overwritten or deleted version is kept; null keeps them forever.",
    )
    removal_policy: Literal["retain", "destroy"] = Field(
        "retain",
        description="On stack deletion: keep the bucket (default), or `destroy` (empties it). "
        "This app also needs `-c allow_data_destroy=true` for `destroy`.",
    )

    RULES = (
        Rule(
            "noncurrent_version_expiration_days",
            ("versioned", "noncurrent_version_expiration_days"),
            lambda a: (
                "applies only with versioned: true"
                if not a.versioned
                and a.given("noncurrent_version_expiration_days")
                and a.noncurrent_version_expiration_days
                else None
            ),
        ),
    )


class MlflowArtifactStore(Construct):
    """A private, encrypted, TLS-only S3 bucket for MLflow artifacts.

    Public access is blocked, requests without TLS are denied by the bucket policy, objects
    are encrypted with S3-managed keys, ACLs are disabled (bucket owner enforced), incomplete
    multipart uploads are cleaned after 7 days.

    Or bring your own bucket (`bucket=`): it is used as is, under `prefix`, and nothing is
    created; its protections are yours.

    Attributes: `props`, `bucket` (the primary child, id "Resource", when created), `prefix`,
    `destination` (the `s3://` URI the server writes under).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        props: ArtifactProps | None = None,
        prefix: str = "artifacts",
        bucket: s3.IBucket | None = None,
    ) -> None:
        """
        :param props: the config file's `artifacts` section: versioning, how long
            overwritten versions are kept, and `removal_policy` (`retain` keeps the bucket
            when the stack is deleted, `destroy` empties and deletes it).
            Default: `ArtifactProps()`.
        :param prefix: Key prefix of the artifacts. Default: artifacts.
        :param bucket: an existing bucket to use instead of a new one (the settings above
            then do not apply). Default: a new bucket.
        """
        super().__init__(scope, id)
        props = props or ArtifactProps()
        self.props = props
        self.prefix = prefix
        if bucket is not None:
            self.bucket: s3.IBucket = bucket
            self.destination = f"s3://{bucket.bucket_name}/{prefix}"
            return
        rules = [s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7))]
        days = props.noncurrent_version_expiration_days
        if props.versioned and days is not None:
            rules.append(s3.LifecycleRule(noncurrent_version_expiration=Duration.days(days)))
        destroy = props.removal_policy == "destroy"
        self.bucket = s3.Bucket(
            self,
            "Resource",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=props.versioned,
            lifecycle_rules=rules,
            removal_policy=RemovalPolicy.DESTROY if destroy else RemovalPolicy.RETAIN,
            auto_delete_objects=destroy,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "No server access logs: only the server's IRSA role can read or write (bucket policy "
            "denies non-TLS, public access is blocked), and API-level audit of that role is "
            "CloudTrail's (S3 data events, an account-wide choice), not a log bucket per "
            "deployment.",
        )
        self.destination = f"s3://{self.bucket.bucket_name}/{prefix}"
