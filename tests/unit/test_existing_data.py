"""An existing RDS instance and S3 bucket from the config (`database.existing`,
`artifacts.existing`): each value is checked against the rule its owner documents, with the
owner's own example values accepted and one wrong value per rule refused at its key.

The wrong values (EXISTING_DATA_BAD) are part of the bad-input matrix of test_settings.py,
which runs them through the config loader; the accepted ones run here.
"""

from __future__ import annotations

from typing import Any

import pytest

from config import ConfigError, parse_settings

REGION = "us-east-1"
# The RDS User Guide's example endpoint ("Finding the connection information for an Amazon RDS
# DB instance").
ENDPOINT = "mydb.123456789012.us-east-1.rds.amazonaws.com"
# Secrets Manager's documented ARN format, SecretName-6RandomCharacters.
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:SecretName-AbCdEf"
# The KMS API reference's example key ID, in the secret's region.
KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
GROUP = "sg-0123456789abcdef0"
# The S3 User Guide's first example of a valid general purpose bucket name.
BUCKET = "docexamplebucket1"


def database(**existing: object) -> dict[str, Any]:
    """A config with an existing instance (and the connections alarm's figure it then needs)."""
    values = {"endpoint": ENDPOINT, "secret_arn": SECRET, "security_group_id": GROUP}
    return {
        "aws": {"region": REGION},
        "database": {"existing": {**values, **existing}},
        "monitoring": {"max_database_connections": 400},
    }


def bucket(**existing: object) -> dict[str, Any]:
    return {"artifacts": {"existing": {"bucket_name": BUCKET, **existing}}}


def with_database(**settings: object) -> dict[str, Any]:
    raw = database()
    raw["database"] |= settings
    return raw


def with_bucket(**settings: object) -> dict[str, Any]:
    raw = bucket()
    raw["artifacts"] |= settings
    return raw


EXISTING_DATA_BAD: list[tuple[object, str, str]] = [
    # The instance's endpoint: <identifier>.<hash>.<region>.rds.amazonaws.com[.cn].
    (database(endpoint="mydb.us-east-1.rds.amazonaws.com"), "database.existing.endpoint", "RDS"),
    (database(endpoint=ENDPOINT + ":3306"), "database.existing.endpoint", "existing.port"),
    (database(endpoint=ENDPOINT.upper()), "database.existing.endpoint", "lower case"),
    (database(endpoint="my--db" + ENDPOINT[4:]), "database.existing.endpoint", "RDS instance"),
    (database(endpoint="1mydb" + ENDPOINT[4:]), "database.existing.endpoint", "RDS instance"),
    (database(endpoint="a" * 64 + ENDPOINT[4:]), "database.existing.endpoint", "RDS instance"),
    (
        database(endpoint="mydb.123456789012.us-east-1.rds.example.com"),
        "database.existing.endpoint",
        "RDS instance endpoint",
    ),
    (
        database(endpoint="mycluster.cluster-c7tj4example.us-east-1.rds.amazonaws.com"),
        "database.existing.endpoint",
        "an Aurora cluster endpoint",
    ),
    (
        database(endpoint="test-proxy.proxy-xxxxxxxxxxxxx.us-east-1.rds.amazonaws.com"),
        "database.existing.endpoint",
        "an RDS Proxy endpoint",
    ),
    (
        {**database(), "aws": {"region": "eu-west-1"}},
        "database.existing.endpoint",
        "is in region us-east-1, but aws.region says eu-west-1",
    ),
    # The port: RDS's 1150-65535.
    (database(port=1149), "database.existing.port", "greater than or equal to 1150"),
    (database(port=65536), "database.existing.port", "less than or equal to 65535"),
    # The secret: a complete Secrets Manager ARN, in the instance's region.
    (
        database(secret_arn=SECRET.removesuffix("-AbCdEf")),
        "database.existing.secret_arn",
        "give the complete ARN",
    ),
    (
        database(secret_arn=SECRET.replace("secretsmanager", "ssm")),
        "database.existing.secret_arn",
        "expected a Secrets Manager secret ARN",
    ),
    (
        database(secret_arn=SECRET.replace("us-east-1", "eu-west-1")),
        "database.existing.secret_arn",
        "is in region eu-west-1, the instance (endpoint) in us-east-1",
    ),
    (database(secret_arn=None), "database.existing.secret_arn", "is needed with endpoint"),
    # The secret's key: a key ARN (not an alias's), in the secret's region.
    (
        database(secret_kms_key_arn="arn:aws:kms:us-east-1:111122223333:alias/mlflow"),
        "database.existing.secret_kms_key_arn",
        "an alias ARN",
    ),
    (
        database(secret_kms_key_arn="1234abcd-12ab-34cd-56ef-1234567890ab"),
        "database.existing.secret_kms_key_arn",
        "expected a KMS key ARN",
    ),
    (
        database(secret_kms_key_arn=KEY.replace("us-east-1", "us-east-2")),
        "database.existing.secret_kms_key_arn",
        "is in region us-east-2, the secret in us-east-1",
    ),
    # The security group: sg- and 8 or 17 hexadecimal digits.
    (database(security_group_id="sg-0123456789"), "database.existing.security_group_id", "match"),
    (database(security_group_id=None), "database.existing.security_group_id", "is needed with"),
    # Keys of an existing instance without one.
    (
        {"database": {"existing": {"port": 5433}}},
        "database.existing.port",
        "applies only with endpoint",
    ),
    # What only an instance this app creates has.
    (
        with_database(instance_type="m7g.large"),
        "database.instance_type",
        "applies only to an instance this app creates",
    ),
    # The connections alarm cannot size itself on an instance of unknown class.
    (
        {**database(), "monitoring": {}},
        "monitoring.max_database_connections",
        "names an instance of unknown class",
    ),
    # Bucket names the S3 User Guide lists as invalid, and one per rule it states.
    (bucket(bucket_name="doc_example_bucket"), "artifacts.existing.bucket_name", "S3 bucket"),
    (bucket(bucket_name="DocExampleBucket"), "artifacts.existing.bucket_name", "S3 bucket"),
    (bucket(bucket_name="doc-example-bucket-"), "artifacts.existing.bucket_name", "S3 bucket"),
    (bucket(bucket_name="ab"), "artifacts.existing.bucket_name", "3-63"),
    (bucket(bucket_name="a" * 64), "artifacts.existing.bucket_name", "3-63"),
    (bucket(bucket_name="s3://docexamplebucket1"), "artifacts.existing.bucket_name", "not an"),
    (bucket(bucket_name="doc..example"), "artifacts.existing.bucket_name", "adjacent dots"),
    (bucket(bucket_name="192.168.5.4"), "artifacts.existing.bucket_name", "IP address"),
    (bucket(bucket_name="xn--bucket"), "artifacts.existing.bucket_name", "prefix 'xn--'"),
    (bucket(bucket_name="sthree-bucket"), "artifacts.existing.bucket_name", "'sthree-'"),
    (bucket(bucket_name="amzn-s3-demo-bucket"), "artifacts.existing.bucket_name", "demo"),
    (bucket(bucket_name="bucket-s3alias"), "artifacts.existing.bucket_name", "'-s3alias'"),
    (bucket(bucket_name="bucket--ol-s3"), "artifacts.existing.bucket_name", "'--ol-s3'"),
    (bucket(bucket_name="bucket.mrap"), "artifacts.existing.bucket_name", "'.mrap'"),
    (bucket(bucket_name="bucket--x-s3"), "artifacts.existing.bucket_name", "'--x-s3'"),
    (bucket(bucket_name="bucket--table-s3"), "artifacts.existing.bucket_name", "'--table-s3'"),
    # The prefix: a key's start, in S3's safe characters, no IAM wildcard.
    (bucket(prefix="/mlflow"), "artifacts.existing.prefix", "no leading or trailing '/'"),
    (bucket(prefix="mlflow/"), "artifacts.existing.prefix", "no leading or trailing '/'"),
    (bucket(prefix="teams//mlflow"), "artifacts.existing.prefix", "no empty"),
    (bucket(prefix="teams/../mlflow"), "artifacts.existing.prefix", "'..'"),
    (bucket(prefix="mlflow*"), "artifacts.existing.prefix", "no '*'"),
    (bucket(prefix="ml flow"), "artifacts.existing.prefix", "safe characters"),
    (bucket(prefix="m" * 513), "artifacts.existing.prefix", "at most 512"),
    (
        {"artifacts": {"existing": {"prefix": "mlflow"}}},
        "artifacts.existing.prefix",
        "applies only with bucket_name",
    ),
    (
        bucket(kms_key_arn="arn:aws:kms:us-east-1:111122223333:alias/aws/s3"),
        "artifacts.existing.kms_key_arn",
        "an alias ARN",
    ),
    # What only a bucket this app creates has.
    (
        with_bucket(versioned=False),
        "artifacts.versioned",
        "applies only to a bucket this app creates",
    ),
]


def _refused(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    return str(caught.value).splitlines()


@pytest.mark.parametrize(
    "endpoint",
    [
        ENDPOINT,
        # The Aurora guide's instance endpoint: an instance's shape, hash of letters and digits.
        "mydbinstance.c7tj4example.us-east-1.rds.amazonaws.com",
        "platform-db-1.c9akciq32rlx.us-east-1.rds.amazonaws.com",
        "a" * 63 + ".c9akciq32rlx.us-east-1.rds.amazonaws.com",
    ],
)
def test_rds_instance_endpoints_are_accepted(endpoint: str) -> None:
    settings = parse_settings(database(endpoint=endpoint))
    assert settings.database.existing.endpoint == endpoint


def test_a_china_region_endpoint_is_accepted() -> None:
    raw = database(
        endpoint="mydb.123456789012.cn-north-1.rds.amazonaws.com.cn",
        secret_arn="arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:SecretName-AbCdEf",
    )
    raw["aws"] = {"region": "cn-north-1"}
    assert parse_settings(raw).database.existing.endpoint.endswith(".com.cn")


@pytest.mark.parametrize("port", [1150, 3306, 5432, 65535])
def test_ports_rds_allows_are_accepted(port: int) -> None:
    assert parse_settings(database(port=port)).database.existing.port == port


@pytest.mark.parametrize(
    "secret",
    [
        SECRET,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:platform/mlflow-db-AbCdEf",
        # RDS's own master user secret, named rds!db-<id> (secrets other services manage).
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
        "rds!db-0123abcd-4567-89ef-0123-456789abcdef-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:a_+=.@-AbCdEf",
    ],
)
def test_complete_secret_arns_are_accepted(secret: str) -> None:
    assert parse_settings(database(secret_arn=secret)).database.existing.secret_arn == secret


@pytest.mark.parametrize(
    "key",
    [KEY, "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"],
)
def test_key_arns_are_accepted_for_the_secret_and_the_bucket(key: str) -> None:
    settings = parse_settings({**database(secret_kms_key_arn=key), **bucket(kms_key_arn=key)})
    assert settings.database.existing.secret_kms_key_arn == key
    assert settings.artifacts.existing.kms_key_arn == key


@pytest.mark.parametrize("group", ["sg-01234567", "sg-0123456789abcdef0"])
def test_security_group_ids_old_and_new_are_accepted(group: str) -> None:
    existing = parse_settings(database(security_group_id=group)).database.existing
    assert existing.security_group_id == group


@pytest.mark.parametrize(
    "name",
    # The S3 User Guide's examples of valid names, with and without dots.
    [
        "docexamplebucket1",
        "log-delivery-march-2020",
        "my-hosted-content",
        "docexamplewebsite.com",
        "www.docexamplewebsite.com",
        "my.example.s3.bucket",
        "abc",
        "a" * 63,
    ],
)
def test_bucket_names_s3_allows_are_accepted(name: str) -> None:
    assert parse_settings(bucket(bucket_name=name)).artifacts.existing.bucket_name == name


@pytest.mark.parametrize(
    "prefix", ["mlflow", "teams/forecasting/mlflow", "ml-flow_1.0(prod)!'", "m" * 512]
)
def test_prefixes_of_safe_characters_are_accepted(prefix: str) -> None:
    assert parse_settings(bucket(prefix=prefix)).artifacts.existing.prefix == prefix


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("database", "instance_type", "m7g.large"),
        ("database", "allocated_storage_gib", 100),
        ("database", "multi_az", True),
        ("database", "read_replica", True),
        ("database", "backup_retention_days", 14),
        ("database", "removal_policy", "destroy"),
        # Written at its default, still a setting of an instance this app would create.
        ("database", "multi_az", False),
        ("artifacts", "versioned", False),
        ("artifacts", "noncurrent_version_expiration_days", 30),
        ("artifacts", "noncurrent_version_expiration_days", None),
        ("artifacts", "removal_policy", "destroy"),
    ],
)
def test_settings_of_what_the_app_creates_are_refused_with_an_existing_one(
    section: str, key: str, value: object
) -> None:
    raw, what = (
        (with_database(**{key: value}), "an instance")
        if section == "database"
        else (with_bucket(**{key: value}), "a bucket")
    )
    lines = _refused(raw)
    expected = f"{section}.{key}: applies only to {what} this app creates"
    assert any(line.strip().startswith(expected) for line in lines), lines


def test_what_still_applies_to_an_existing_instance_is_accepted() -> None:
    """The engine (the instance's), the pre-upgrade snapshot (of that instance) and the
    connections alarm's figure; the prefix defaults as the library's does."""
    raw = with_database(engine="postgres", snapshot_before_upgrade=False)
    settings = parse_settings({**raw, **bucket()})
    assert settings.database.engine == "postgres"
    assert settings.database.snapshot_before_upgrade is False
    assert settings.artifacts.existing.prefix == "artifacts"
    assert settings.monitoring.max_database_connections == 400


def test_without_an_endpoint_or_bucket_name_nothing_exists() -> None:
    settings = parse_settings({})
    assert settings.database.existing.endpoint is None
    assert settings.artifacts.existing.bucket_name is None
