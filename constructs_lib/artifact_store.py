"""MlflowArtifactStore: the S3 bucket the server proxies artifacts to."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .acknowledgements import acknowledge

DEFAULT_NONCURRENT_EXPIRATION = Duration.days(90)


class MlflowArtifactStore(Construct):
    """A private, encrypted, TLS-only S3 bucket for MLflow artifacts.

    Public access is blocked, requests without TLS are denied by the bucket policy, objects
    are encrypted with S3-managed keys, ACLs are disabled (bucket owner enforced), incomplete
    multipart uploads are cleaned after 7 days.

    Or bring your own bucket (`bucket=`): it is used as is, under `prefix`, and nothing is
    created; its protections are yours.

    Attributes: `bucket` (the primary child, id "Resource", when created), `prefix`,
    `destination` (the `s3://` URI the server writes under).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        versioned: bool = True,
        noncurrent_version_expiration: Duration | None = DEFAULT_NONCURRENT_EXPIRATION,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        prefix: str = "artifacts",
        bucket: s3.IBucket | None = None,
    ) -> None:
        """
        :param versioned: Keep overwritten and deleted objects. Default: true.
        :param noncurrent_version_expiration: How long such versions are kept; None keeps
            them forever. Default: 90 days. Ignored when not versioned.
        :param removal_policy: RETAIN (default) keeps the bucket when the stack is deleted;
            DESTROY empties and deletes it.
        :param prefix: Key prefix of the artifacts. Default: artifacts.
        :param bucket: an existing bucket to use instead of a new one (the settings above
            then do not apply). Default: a new bucket.
        """
        super().__init__(scope, id)
        self.prefix = prefix
        if bucket is not None:
            self.bucket: s3.IBucket = bucket
            self.destination = f"s3://{bucket.bucket_name}/{prefix}"
            return
        rules = [s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(7))]
        if versioned and noncurrent_version_expiration is not None:
            rules.append(
                s3.LifecycleRule(noncurrent_version_expiration=noncurrent_version_expiration)
            )
        destroy = removal_policy == RemovalPolicy.DESTROY
        self.bucket = s3.Bucket(
            self,
            "Resource",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=versioned,
            lifecycle_rules=rules,
            removal_policy=removal_policy,
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
