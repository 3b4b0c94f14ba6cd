"""MlflowArtifactStore: the S3 bucket the server proxies artifacts to."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct
from pydantic import AfterValidator, Field

from ..k8s_charts.model import Props
from ..k8s_charts.rules import KmsKeyArn, Rule, refused_while
from .acknowledgements import acknowledge
from .references import imported_key

DEFAULT_PREFIX = "artifacts"
"""The key prefix artifacts go under when none is given."""

# General purpose bucket naming rules, as the S3 User Guide lists them
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html): 3-63
# characters; lower-case letters, digits, dots and hyphens; a letter or digit first and last; no
# two adjacent dots; not shaped like an IP address; none of the reserved prefixes and suffixes.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _check_bucket_name(value: str) -> str:
    if not _BUCKET_NAME.fullmatch(value):
        raise ValueError(
            "expected an S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit (the name, not an ARN or s3:// URI)"
        )
    if ".." in value:
        raise ValueError("a bucket name has no two adjacent dots")
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        pass
    else:
        raise ValueError("a bucket name is not formatted as an IP address")
    for prefix in _RESERVED_PREFIXES:
        if value.startswith(prefix):
            raise ValueError(f"S3 reserves the prefix {prefix!r}: no bucket is named so")
    for suffix in _RESERVED_SUFFIXES:
        if value.endswith(suffix):
            raise ValueError(
                f"S3 reserves the suffix {suffix!r} (access point and other aliases): name "
                "the bucket itself"
            )
    return value


# Object keys: S3's "safe characters" (letters, digits and !-_.*'() with '/' between
# prefixes; Object key naming guidelines:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html), without '*', which
# the IAM policy granting `<prefix>/*` would read as a wildcard.
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9!_.'()-]+")
MAX_PREFIX_LENGTH = 512
"""Half of S3's 1,024-byte key limit; MLflow's experiment, run and artifact path follow it."""


def _check_prefix(value: str) -> str:
    if value.startswith("/") or value.endswith("/"):
        raise ValueError(
            "no leading or trailing '/': the prefix is a key's start, the server adds the '/'"
        )
    if len(value) > MAX_PREFIX_LENGTH:
        raise ValueError(f"at most {MAX_PREFIX_LENGTH} characters")
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError("no empty, '.' or '..' part between '/'")
        if not _PREFIX_SEGMENT.fullmatch(segment):
            raise ValueError(
                "letters, digits and !-_.'() between '/' only (S3's safe characters; no '*', "
                "which IAM would read as a wildcard)"
            )
    return value


BucketName = Annotated[str, AfterValidator(_check_bucket_name)]
KeyPrefix = Annotated[str, AfterValidator(_check_prefix)]


class ExistingBucket(Props):
    """An S3 bucket this app uses under a prefix and does not create, manage or delete: the
    config file's `artifacts.existing` section. Unset (no `bucket_name`): the app creates the
    bucket."""

    bucket_name: BucketName | None = Field(
        None,
        description="An existing S3 bucket's name (in the deployment's region). The server's "
        "role may read, write, list and delete only under `prefix`; the bucket's policy, "
        "versioning, lifecycle and encryption stay its owner's. Default: none, a new bucket.",
    )
    prefix: KeyPrefix = Field(
        DEFAULT_PREFIX,
        description="The key prefix MLflow writes under (`s3://<bucket_name>/<prefix>`; "
        "no leading or trailing `/`, S3's safe characters).",
    )
    kms_key_arn: KmsKeyArn | None = Field(
        None,
        description="Optional: the customer-managed KMS key of the bucket's default "
        "encryption (SSE-KMS); the server's role may then generate data keys and decrypt with "
        "it, through S3 only. Default: none (SSE-S3 or the AWS-managed `aws/s3` key).",
    )

    RULES = tuple(
        Rule(
            key,
            ("bucket_name", key),
            lambda b, key=key: (
                "applies only with bucket_name (an existing bucket)"
                if not b.bucket_name and b.given(key)
                else None
            ),
        )
        for key in ("prefix", "kms_key_arn")
    )


class ArtifactProps(Props):
    """The S3 artifact store: the config file's `artifacts` section and MlflowArtifactStore's
    props: a bucket it creates, or with `existing.bucket_name` one it uses."""

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
    existing: ExistingBucket = Field(default_factory=ExistingBucket)

    RULES = (
        *refused_while(
            "existing.bucket_name",
            ("versioned", "noncurrent_version_expiration_days", "removal_policy"),
            "applies only to a bucket this app creates; existing.bucket_name names one it "
            "does not manage (its owner sets this there)",
        ),
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

    Or use an existing bucket: `props.existing` names it (as the config file does), or pass
    the bucket itself (`bucket=`, with `prefix=`). It is used as is, under the prefix, and
    nothing is created; its protections are yours.

    Attributes: `props`, `bucket` (the primary child, id "Resource", when created), `prefix`,
    `destination` (the `s3://` URI the server writes under).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        props: ArtifactProps | None = None,
        prefix: str | None = None,
        bucket: s3.IBucket | None = None,
    ) -> None:
        """
        :param props: the config file's `artifacts` section: versioning, how long
            overwritten versions are kept, and `removal_policy` (`retain` keeps the bucket
            when the stack is deleted, `destroy` empties and deletes it); or
            `existing.bucket_name`, `existing.prefix` and `existing.kms_key_arn`, an existing
            bucket imported here (then leave `bucket` and `prefix` out).
            Default: `ArtifactProps()`.
        :param prefix: Key prefix of the artifacts. Default: artifacts.
        :param bucket: an existing bucket to use instead of a new one (the settings above
            then do not apply; give its `encryption_key` if SSE-KMS uses a key of yours).
            Default: a new bucket.
        """
        super().__init__(scope, id)
        props = props or ArtifactProps()
        self.props = props
        existing = props.existing
        if existing.bucket_name:
            if bucket is not None or prefix is not None:
                raise ValueError(
                    "props.existing names the bucket and its prefix: leave bucket= and prefix= out"
                )
            bucket = s3.Bucket.from_bucket_attributes(
                self,
                "Bucket",
                bucket_name=existing.bucket_name,
                encryption_key=imported_key(self, "Key", existing.kms_key_arn),
            )
            prefix = existing.prefix
        prefix = prefix or DEFAULT_PREFIX
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
