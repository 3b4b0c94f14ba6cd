"""The configuration contract: defaults, examples, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, Settings, load_settings, parse_settings
from mlflow_on_eks.k8s_charts import InternalLoadBalancerProps
from mlflow_on_eks.k8s_charts.rules import InvalidProps
from tests.conftest import EXAMPLES, TEST_CONFIGS
from tests.unit.test_existing_data import EXISTING_DATA_BAD

CERT = "arn:aws:acm:eu-west-1:111122223333:certificate/01234567-89ab-cdef-0123-456789abcdef"
EXISTING = {
    "mode": "existing",
    "name": "prod",
    "oidc_provider_arn": (
        "arn:aws:iam::111122223333:oidc-provider/"
        "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
    ),
    "security_group_id": "sg-0123456789abcdef0",
    "vpc_id": "vpc-0123456789abcdef0",
    "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
}


def external(**overrides: object) -> dict[str, object]:
    return {
        "exposure": {
            "external": {
                "enabled": True,
                "allowed_cidrs": ["10.0.0.0/8"],
                "certificate_arn": CERT,
                **overrides,
            }
        }
    }


HOSTNAME = "mlflow.internal.example.com"
CA_BUNDLE = load_settings(TEST_CONFIGS / "maximal.yaml").exposure.internal.ca_bundle
"""A private CA's root certificate (test-maximal's)."""
LEAF = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBxzCCAW6gAwIBAgIUJVqKNx5/qL8H4dJpWLjzduKCmOcwCgYIKoZIzj0EAwIw\n"
    "JjEkMCIGA1UEAwwbbWxmbG93LmludGVybmFsLmV4YW1wbGUuY29tMCAXDTI2MTIw\n"
    "NjE5MjM1NloYDzIxMjYxMTEyMTkyMzU2WjAmMSQwIgYDVQQDDBttbGZsb3cuaW50\n"
    "ZXJuYWwuZXhhbXBsZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ6+K4I\n"
    "M2tdNnpyk5rVWEPceTztwtvkpj6vVdsk9LnDToDPgiPYu2V5k9hYcK/h94s2KAEq\n"
    "q+gqHbeUmfSzwKKno3gwdjAdBgNVHQ4EFgQUcRQThKhaUlydFkXPf1QtoSjrrTsw\n"
    "HwYDVR0jBBgwFoAUcRQThKhaUlydFkXPf1QtoSjrrTswDAYDVR0TAQH/BAIwADAm\n"
    "BgNVHREEHzAdghttbGZsb3cuaW50ZXJuYWwuZXhhbXBsZS5jb20wCgYIKoZIzj0E\n"
    "AwIDRwAwRAIgYBsXloELlC/ysVy8PrfCsH35uyVXJooAtWQqnqluTz4CIFzKpCbe\n"
    "l++ubG8AKHt7UCkH7621vk4Qx92Crr21UiHl\n"
    "-----END CERTIFICATE-----\n"
)
"""A server certificate (CA:FALSE), which is no trust anchor."""


def internal_tls(**overrides: object) -> dict[str, object]:
    return {"exposure": {"internal": {"certificate_arn": CERT, "hostname": HOSTNAME, **overrides}}}


def existing(**overrides: object) -> dict[str, object]:
    return {"cluster": {**EXISTING, **overrides}}


def test_defaults_are_a_complete_new_deployment() -> None:
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.cluster.mode == "new"
    assert settings.database.engine == "mysql"
    assert settings.exposure.internal.enabled is True
    # Plain HTTP inside the VPC unless a certificate is given (synth warns with sign-in on).
    assert settings.exposure.internal.tls is False
    assert settings.exposure.external.enabled is False
    assert settings.database.removal_policy == "snapshot"
    assert settings.artifacts.removal_policy == "retain"


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert load_settings(path) == Settings()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_are_valid(path: Path) -> None:
    assert isinstance(load_settings(path), Settings)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(Exception, match="frozen"):
        settings.server.replicas = 5  # type: ignore[misc]


def test_existing_cluster_is_accepted() -> None:
    settings = parse_settings(existing(kubectl_role_arn="arn:aws:iam::111122223333:role/kubectl"))
    assert settings.cluster.name == "prod"


def test_host_patterns_mlflow_accepts() -> None:
    hosts = ["mlflow.example.com", "*.example.com", "mlflow.example.com:8443", "mlflow:*"]
    settings = parse_settings({"server": {"allowed_hosts": hosts}})
    assert settings.server.allowed_hosts == tuple(hosts)


def test_new_cluster_defaults_are_stated() -> None:
    cluster = Settings().cluster
    assert cluster.kubernetes_version == "1.36"
    assert cluster.endpoint_access == "public_and_private"
    assert cluster.public_access_cidrs == ["0.0.0.0/0"]
    assert cluster.network_policy is True
    assert cluster.admin_role_arns == []


def test_authentication_is_on_by_default() -> None:
    auth = Settings().auth
    assert (auth.enabled, auth.default_permission, auth.admin_username) == (True, "READ", "admin")


def test_sign_in_off_is_confirmed_for_every_way_in() -> None:
    everything = ["cluster", "internal", "external"]
    raw = {**external(), "auth": {"enabled": False, "allow_anonymous_through": everything}}
    assert parse_settings(raw).auth.allow_anonymous_through == everything
    # In the cluster only: the one way in is named.
    raw = {
        "exposure": {"internal": False},
        "auth": {"enabled": False, "allow_anonymous_through": ["cluster"]},
    }
    assert parse_settings(raw).auth.enabled is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # The internal load balancer alone used to pass unconfirmed: the whole VPC got in.
        ({}, "does not name cluster, internal while auth.enabled is false"),
        ({"allow_anonymous_through": ["cluster"]}, "the VPC and every network routed to it"),
        ({"allow_anonymous_through": ["internal"]}, "every pod of the cluster"),
        (
            {**external(), "allow_anonymous_through": ["cluster", "internal"]},
            "anyone from the external load balancer's allowed_cidrs",
        ),
        (
            {"allow_anonymous_through": ["cluster", "internal", "external"]},
            "names external, which this deployment does not have",
        ),
    ],
)
def test_an_unconfirmed_way_in_fails_with_what_to_set(raw: dict, message: str) -> None:
    exposure = raw.pop("exposure", {})
    raw = {"exposure": exposure, "auth": {"enabled": False, **raw}}
    with pytest.raises(ConfigError) as error:
        parse_settings(raw)
    assert "auth.allow_anonymous_through: " in str(error.value)
    assert message in str(error.value)
    if "does not name" in message:
        assert "confirm with allow_anonymous_through: [cluster, internal" in str(error.value)


def test_the_old_external_confirmation_says_where_it_went() -> None:
    raw = {**external(allow_anonymous=True), "auth": {"enabled": False}}
    with pytest.raises(ConfigError) as error:
        parse_settings(raw)
    assert (
        "exposure.external.allow_anonymous: unknown key; sign-in off is now confirmed for "
        "every way in" in str(error.value)
    )
    assert "auth.allow_anonymous_through" in str(error.value)


def test_open_internet_needs_the_explicit_opt_in() -> None:
    settings = parse_settings(external(allowed_cidrs=["0.0.0.0/0"], allow_internet=True))
    assert settings.exposure.external.allowed_cidrs == ("0.0.0.0/0",)


ZONES_EU = ["eu-west-1a", "eu-west-1b"]

# (config, key path the message must name, words the message must contain)
BAD = [
    ({"servr": {}}, "servr", "did you mean 'server'"),
    ({"server": {"replcas": 3}}, "server.replcas", "did you mean 'replicas'"),
    ({"database": {"engnie": "postgres"}}, "database.engnie", "did you mean 'engine'"),
    (
        {"exposure": {"external": {"allowed_cidr": []}}},
        "exposure.external.allowed_cidr",
        "did you mean 'allowed_cidrs'",
    ),
    ({"server": {"replicas": "two"}}, "server.replicas", "valid integer"),
    ({"server": {"replicas": 0}}, "server.replicas", "greater than or equal to 1"),
    ({"server": {"replicas": 3, "max_replicas": 2}}, "server.max_replicas", "below replicas"),
    ({"server": {"namespace": "MLflow"}}, "server.namespace", "DNS-1123 label"),
    ({"server": {"namespace": "kube-system"}}, "server.namespace", "reserved"),
    ({"server": {"allowed_hosts": ["bad host"]}}, "server.allowed_hosts[0]", "DNS name"),
    ({"server": {"allowed_hosts": ["*"]}}, "server.allowed_hosts[0]", "DNS rebinding"),
    (
        {"server": {"allowed_hosts": ["https://mlflow.example.com"]}},
        "server.allowed_hosts[0]",
        "not a URL",
    ),
    ({"server": {"allowed_hosts": ["mlflow.example.com:x"]}}, "server.allowed_hosts[0]", "port"),
    ({"server": {"allowed_hosts": ["mlflow?.example.com"]}}, "server.allowed_hosts[0]", "DNS"),
    ({"server": {"architecture": "x86_64"}}, "server.architecture", "'amd64' or 'arm64'"),
    ({"server": {"max_proxied_artifact_gib": 0}}, "server.max_proxied_artifact_gib", "equal to 1"),
    ({"server": {"drain_seconds": 1}}, "server.drain_seconds", "greater than or equal to 5"),
    # Label selectors as Kubernetes accepts them (Labels and Selectors, syntax).
    (
        {"server": {"metrics_scrapers": {"namespace_labels": {"team name": "ml"}}}},
        "server.metrics_scrapers.namespace_labels",
        "label key 'team name': the name must be 1-63",
    ),
    (
        {"server": {"metrics_scrapers": {"namespace_labels": {"Example.com/team": "ml"}}}},
        "server.metrics_scrapers.namespace_labels",
        "before '/' must be a DNS subdomain",
    ),
    (
        {"server": {"metrics_scrapers": {"pod_labels": {"app": "x" * 64}}}},
        "server.metrics_scrapers.pod_labels",
        "must be empty or 1-63",
    ),
    (
        {"server": {"metrics_scrapers": {"pod_labels": {"app": "-prometheus"}}}},
        "server.metrics_scrapers.pod_labels",
        "starting and ending with a letter or digit",
    ),
    (
        {"server": {"metrics_scrapers": {"namespace_labels": {"monitoring": True}}}},
        "server.metrics_scrapers.namespace_labels",
        "write it in quotes",
    ),
    (
        {"server": {"metrics_scrapers": {"namespace_labels": "monitoring"}}},
        "server.metrics_scrapers.namespace_labels",
        "valid dictionary",
    ),
    # The extras: nothing the launcher sets, nothing that looks like a secret, text only.
    (
        {"server": {"extra_args": ["--x-frame-options", "DENY", "--host=0.0.0.0"]}},
        "server.extra_args[2]",
        "--host is the launcher's",
    ),
    ({"server": {"extra_args": ["-w8"]}}, "server.extra_args[0]", "--workers is the launcher's"),
    (
        {"server": {"extra_args": ["--disable-security-middleware"]}},
        "server.extra_args[0]",
        "is refused: it turns off MLflow's Host and origin checks",
    ),
    (
        {"server": {"extra_args": ["--workspace-store-uri", "mysql://u:pw@db/ws"]}},
        "server.extra_args[1]",
        "looks like a secret (a URL with a password)",
    ),
    ({"server": {"extra_args": [8]}}, "server.extra_args[0]", "write it in quotes"),
    (
        {"server": {"extra_env": {"MLFLOW_PORT": "80"}}},
        "server.extra_env.MLFLOW_PORT",
        "is not yours to set",
    ),
    (
        {"server": {"extra_env": {"AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/x"}}},
        "server.extra_env.AWS_ROLE_ARN",
        "IAM role (IRSA)",
    ),
    (
        {"server": {"extra_env": {"OPENAI_API_KEY": "x"}}},
        "server.extra_env.OPENAI_API_KEY",
        "looks like it holds a secret",
    ),
    (
        {"server": {"extra_env": {"MLFLOW_X": "AKIAIOSFODNN7EXAMPLE"}}},
        "server.extra_env.MLFLOW_X",
        "an AWS access key ID",
    ),
    ({"server": {"extra_env": {"bad-name": "x"}}}, "server.extra_env.bad-name", "variable name"),
    ({"server": {"extra_env": {"MLFLOW_X": 5}}}, "server.extra_env.MLFLOW_X", "in quotes"),
    (
        {"server": {"service_monitor": {"labels": {"release": "kube-prometheus-stack"}}}},
        "server.service_monitor.enabled",
        "is false but labels are set",
    ),
    (
        {"server": {"service_monitor": {"enabled": True, "interval_seconds": 10}}},
        "server.service_monitor.interval_seconds",
        "greater than or equal to 15",
    ),
    (
        {"cluster": {"endpoint_access": "private", "public_access_cidrs": ["10.0.0.0/8"]}},
        "cluster.public_access_cidrs",
        "only with endpoint_access: public_and_private",
    ),
    ({"cluster": {"public_access_cidrs": []}}, "cluster.public_access_cidrs", "is empty"),
    ({"cluster": {"endpoint_access": "public"}}, "cluster.endpoint_access", "'public_and_priv"),
    (
        {"server": {"resources": {"memory_mib": 64}}},
        "server.resources.memory_mib",
        "greater than or equal to 256",
    ),
    ({"database": {"engine": "oracle"}}, "database.engine", "'mysql' or 'postgres'"),
    (
        {"database": {"instance_type": "db.t4g.medium"}},
        "database.instance_type",
        "without the 'db.' prefix",
    ),
    ({"database": {"instance_type": "huge"}}, "database.instance_type", "t4g.medium"),
    (
        {"database": {"allocated_storage_gib": 5}},
        "database.allocated_storage_gib",
        "greater than or equal to 20",
    ),
    (
        {"database": {"backup_retention_days": 0}},
        "database.backup_retention_days",
        "greater than or equal to 1",
    ),
    ({"database": {"multi_az": "maybe"}}, "database.multi_az", "valid boolean"),
    ({"database": {"removal_policy": "delete"}}, "database.removal_policy", "'snapshot' or"),
    (
        {"artifacts": {"versioned": False, "noncurrent_version_expiration_days": 30}},
        "artifacts.noncurrent_version_expiration_days",
        "only with versioned: true",
    ),
    ({"cluster": {"mode": "imported"}}, "cluster.mode", "'new' or 'existing'"),
    ({"cluster": {"kubernetes_version": "1.29"}}, "cluster.kubernetes_version", "1.36"),
    ({"cluster": {"kubernetes_version": 1.3}}, "cluster.kubernetes_version", "in quotes"),
    ({"cluster": {"mode": "existing"}}, "cluster.availability_zones", "is needed"),
    ({"cluster": {"name": "prod"}}, "cluster.name", "only applies with mode: existing"),
    (
        {"cluster": {"load_balancer_controller": "aws-load-balancer-controller"}},
        "cluster.load_balancer_controller",
        "Auto Mode",
    ),
    (
        existing(oidc_provider_arn="arn:aws:iam::123:oidc-provider/x"),
        "cluster.oidc_provider_arn",
        "pattern",
    ),
    (
        # Not an EKS issuer: any path used to pass.
        existing(oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/token.example.com"),
        "cluster.oidc_provider_arn",
        "pattern",
    ),
    (
        existing(
            oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/"
            "oidc.eks.eu-west-1.amazonaws.com/id/ABC"
        ),
        "cluster.oidc_provider_arn",
        "pattern",
    ),
    (existing(security_group_id="sg-xyz"), "cluster.security_group_id", "pattern"),
    (
        existing(database_client_security_group_id="sg-12345"),
        "cluster.database_client_security_group_id",
        "pattern",
    ),
    (
        existing(database_client_security_group_id=EXISTING["security_group_id"]),
        "cluster.database_client_security_group_id",
        "is the cluster security group itself",
    ),
    (
        {"cluster": {"database_client_security_group_id": "sg-0123456789abcdef1"}},
        "cluster.database_client_security_group_id",
        "only applies with mode: existing",
    ),
    (existing(vpc_id="vpc-123"), "cluster.vpc_id", "pattern"),
    (
        existing(private_subnet_ids=["subnet-0123456789abcdef0", "subnet-12"]),
        "cluster.private_subnet_ids[1]",
        "pattern",
    ),
    (
        existing(
            private_subnet_ids=["subnet-0123456789abcdef0"], availability_zones=["eu-west-1a"]
        ),
        "cluster.private_subnet_ids",
        "at least two",
    ),
    (existing(availability_zones=["eu-west-1a"]), "cluster.availability_zones", "same order"),
    (
        existing(availability_zones=["eu-west-1a", "eu-west-1a"]),
        "cluster.availability_zones",
        "two AZs",
    ),
    (
        existing(kubectl_role_arn="arn:aws:iam::111122223333:user/bob"),
        "cluster.kubectl_role_arn",
        "pattern",
    ),
    (
        existing(admin_role_arns=["arn:aws:iam::111122223333:role/admin"]),
        "cluster.admin_role_arns",
        "only applies with mode: new",
    ),
    (existing(network_policy=False), "cluster.network_policy", "only applies with mode: new"),
    (external(allowed_cidrs=["0.0.0.0/0"]), "exposure.external.allowed_cidrs", "allow_internet"),
    (external(allowed_cidrs=["::/0"]), "exposure.external.allowed_cidrs", "allow_internet"),
    (external(allowed_cidrs=[]), "exposure.external.allowed_cidrs", "is empty"),
    (external(allowed_cidrs=["10.0.0.1/8"]), "exposure.external.allowed_cidrs[0]", "host bits set"),
    (external(allowed_cidrs=["10.0.0.0/33"]), "exposure.external.allowed_cidrs[0]", "not a CIDR"),
    (external(certificate_arn=None), "exposure.external.certificate_arn", "HTTPS only"),
    (
        external(certificate_arn="arn:aws:acm:eu-west-1:1:certificate/x"),
        "exposure.external.certificate_arn",
        "pattern",
    ),
    (
        {"exposure": {"external": {"allowed_cidrs": ["10.0.0.0/8"]}}},
        "exposure.external.enabled",
        "is false but allowed_cidrs",
    ),
    ({"auth": {"default_permission": "WRITE"}}, "auth.default_permission", "READ"),
    ({"auth": {"admin_username": "ad min"}}, "auth.admin_username", "pattern"),
    ({"auth": {"admin_username": "a:b"}}, "auth.admin_username", "pattern"),
    ({"auth": {"enabeld": False}}, "auth.enabeld", "did you mean 'enabled'"),
    (
        {**external(), "auth": {"enabled": False}},
        "auth.allow_anonymous_through",
        "anyone from every pod of the cluster",
    ),
    (
        {"auth": {"allow_anonymous_through": ["cluster"]}},
        "auth.allow_anonymous_through",
        "nothing anonymous",
    ),
    ({"gc": {"schedule": "daily"}}, "gc.schedule", "five cron fields"),
    ({"gc": {"schedule": "17 3 * *"}}, "gc.schedule", "five cron fields"),
    ({"gc": {"older_than": "30 days"}}, "gc.older_than", "#d#h#m#s"),
    ({"gc": {"older_than": ""}}, "gc.older_than", "#d#h#m#s"),
    (
        {
            "monitoring": {
                "alarm_email": "ml@example.com",
                "alarm_topic_arn": "arn:aws:sns:eu-west-1:111122223333:ml-oncall",
            }
        },
        "monitoring.alarm_topic_arn",
        "choose one",
    ),
    (
        {"monitoring": {"enabled": False, "alarm_email": "ml@example.com"}},
        "monitoring.enabled",
        "no alarms to send",
    ),
    ({"monitoring": {"alarm_email": "ml-team"}}, "monitoring.alarm_email", "should match pattern"),
    (
        {"monitoring": {"alarm_topic_arn": "arn:aws:sns:eu-west-1:111122223333:ml.fifo"}},
        "monitoring.alarm_topic_arn",
        "should match pattern",
    ),
    (
        {"database": {"instance_type": "x2g.large"}},
        "monitoring.max_database_connections",
        "not a t, m or r class",
    ),
    (
        {"monitoring": {"max_database_connections": 0}},
        "monitoring.max_database_connections",
        "greater than or equal to 1",
    ),
    ({"aws": {"account": "12345"}}, "aws.account", "pattern"),
    ({"aws": {"region": "Europe"}}, "aws.region", "pattern"),
    ({"name": "My_MLflow"}, "name", "pattern"),
    # Ranges that add up to the whole internet need the same opt-in as 0.0.0.0/0.
    (
        external(allowed_cidrs=["0.0.0.0/1", "128.0.0.0/1"]),
        "exposure.external.allowed_cidrs",
        "together cover 0.0.0.0/0",
    ),
    (
        external(allowed_cidrs=["10.0.0.0/8", "::/1", "8000::/1"]),
        "exposure.external.allowed_cidrs",
        "together cover ::/0",
    ),
    # The load balancers are IPv4 only; the controller would refuse the Service after deploy.
    (
        external(allowed_cidrs=["10.0.0.0/8", "2001:db8::/32"], allow_internet=True),
        "exposure.external.allowed_cidrs",
        "2001:db8::/32: IPv6 ranges cannot reach the load balancer",
    ),
    # Places that contradict aws.region/aws.account, or each other.
    (
        {"aws": {"region": "us-east-1"}, "cluster": {"availability_zones": ZONES_EU}},
        "cluster.availability_zones",
        "is in region eu-west-1, but aws.region says us-east-1",
    ),
    (
        {"cluster": {"availability_zones": ["us-east-1a", "us-west-2b"]}},
        "cluster.availability_zones",
        "different regions (us-east-1, us-west-2)",
    ),
    ({"cluster": {"availability_zones": ["eu-west-1a"]}}, "cluster.availability_zones", "two"),
    (
        {"aws": {"region": "us-east-1"}, **external()},
        "exposure.external.certificate_arn",
        "is in region eu-west-1, but aws.region says us-east-1",
    ),
    (
        {"aws": {"account": "999988887777"}, **external()},
        "exposure.external.certificate_arn",
        "is in account 111122223333, but aws.account says 999988887777",
    ),
    (
        {"aws": {"account": "999988887777"}, **existing()},
        "cluster.oidc_provider_arn",
        "is in account 111122223333, but aws.account says 999988887777",
    ),
    (
        existing(availability_zones=["us-east-1a", "us-east-1b"]),
        "cluster.oidc_provider_arn",
        "is in region eu-west-1, but cluster.availability_zones says us-east-1",
    ),
    (
        existing(kubectl_role_arn="arn:aws:iam::999988887777:role/kubectl"),
        "cluster.kubectl_role_arn",
        "is in account 999988887777, but cluster.oidc_provider_arn says 111122223333",
    ),
    (
        {**existing(), **external(certificate_arn=CERT.replace("eu-west-1", "us-east-1"))},
        "exposure.external.certificate_arn",
        "is in region us-east-1, but cluster.availability_zones says eu-west-1",
    ),
    # Quantities that ask for nothing, or too little for what runs.
    ({"server": {"resources": {"cpu": "0"}}}, "server.resources.cpu", "requests no CPU"),
    ({"server": {"resources": {"cpu": "0m"}}}, "server.resources.cpu", "requests no CPU"),
    ({"server": {"resources": {"cpu": "half"}}}, "server.resources.cpu", "CPU quantity"),
    (
        {"server": {"workers": 8, "resources": {"memory_mib": 1024}}},
        "server.resources.memory_mib",
        "too little for 8 workers",
    ),
    # What YAML reads as a number where text is meant.
    ({"aws": {"account": 12345678901}}, "aws.account", "in quotes"),
    ({"auth": {"admin_username": 42}}, "auth.admin_username", "write it in quotes"),
    ({"auth": {"sign_in_cache_seconds": -1}}, "auth.sign_in_cache_seconds", "greater than or"),
    ({"auth": {"sign_in_cache_seconds": 7200}}, "auth.sign_in_cache_seconds", "less than or"),
    # An existing instance and bucket: one wrong value per rule (test_existing_data.py).
    *EXISTING_DATA_BAD,
    # TLS on the internal load balancer: an ACM certificate of the stack's region and account
    # (arn:<partition>:acm:<region>:<account>:certificate/<id>), the name clients use, a policy
    # that requires TLS 1.2 or later, CA certificates only. One wrong value per rule.
    (
        internal_tls(certificate_arn=CERT.replace(":acm:", ":iam:")),
        "exposure.internal.certificate_arn",
        "pattern",
    ),
    (
        internal_tls(certificate_arn=CERT.replace("111122223333", "1111")),
        "exposure.internal.certificate_arn",
        "pattern",
    ),
    (
        internal_tls(certificate_arn=CERT.replace("certificate/", "certificate/x")),
        "exposure.internal.certificate_arn",
        "pattern",
    ),
    (
        {**internal_tls(), "aws": {"region": "us-east-1"}},
        "exposure.internal.certificate_arn",
        "is in region eu-west-1, but aws.region says us-east-1",
    ),
    (
        {**internal_tls(), "aws": {"account": "999988887777"}},
        "exposure.internal.certificate_arn",
        "is in account 111122223333, but aws.account says 999988887777",
    ),
    (
        internal_tls(enabled=False),
        "exposure.internal.enabled",
        "is false but certificate_arn is set",
    ),
    (internal_tls(hostname=None), "exposure.internal.hostname", "is required with certificate_arn"),
    (
        {"exposure": {"internal": {"hostname": HOSTNAME}}},
        "exposure.internal.hostname",
        "applies only with certificate_arn",
    ),
    (
        {"exposure": {"internal": {"ssl_policy": "ELBSecurityPolicy-TLS13-1-3-2021-06"}}},
        "exposure.internal.ssl_policy",
        "applies only with certificate_arn",
    ),
    (
        {"exposure": {"internal": {"ca_bundle": CA_BUNDLE}}},
        "exposure.internal.ca_bundle",
        "applies only with certificate_arn",
    ),
    (internal_tls(hostname="MLflow.internal.example.com"), "exposure.internal.hostname", "lower"),
    (internal_tls(hostname="*.example.com"), "exposure.internal.hostname", "no wildcard"),
    (internal_tls(hostname="mlflow"), "exposure.internal.hostname", "fully qualified"),
    (internal_tls(hostname=f"{HOSTNAME}:443"), "exposure.internal.hostname", "drop the scheme"),
    (internal_tls(hostname=f"https://{HOSTNAME}"), "exposure.internal.hostname", "drop the"),
    (internal_tls(hostname="10.0.12.7"), "exposure.internal.hostname", "not an IP address"),
    (
        internal_tls(ssl_policy="ELBSecurityPolicy-2016-08"),
        "exposure.internal.ssl_policy",
        "requires TLS 1.2 or later",
    ),
    (
        internal_tls(ssl_policy="ELBSecurityPolicy-TLS13-1-1-2021-06"),
        "exposure.internal.ssl_policy",
        "requires TLS 1.2 or later",
    ),
    (
        internal_tls(ca_bundle="-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----"),
        "exposure.internal.ca_bundle",
        "holds a private key",
    ),
    (internal_tls(ca_bundle="not a certificate"), "exposure.internal.ca_bundle", "expected PEM"),
    (
        internal_tls(ca_bundle=CA_BUNDLE.replace("MII", "MIX", 1)),
        "exposure.internal.ca_bundle",
        "could not be read as PEM certificates",
    ),
    (internal_tls(ca_bundle=LEAF), "exposure.internal.ca_bundle", "is not a CA's"),
    ({"exposure": {"internal": "yes"}}, "exposure.internal", "valid dictionary"),
    (
        external(ssl_policy="ELBSecurityPolicy-TLS-1-1-2017-01"),
        "exposure.external.ssl_policy",
        "requires TLS 1.2 or later",
    ),
    (
        {"exposure": {"external": {"ssl_policy": "ELBSecurityPolicy-TLS13-1-3-2021-06"}}},
        "exposure.external.ssl_policy",
        "applies only with enabled: true",
    ),
    # A workspace restriction where there are no workspaces, or no sign-in to restrict.
    (
        {"auth": {"grant_default_workspace_access": False}},
        "auth.grant_default_workspace_access",
        "server.workspaces is off",
    ),
    (
        {
            "server": {"workspaces": True},
            "auth": {
                "enabled": False,
                "allow_anonymous_through": ["cluster", "internal"],
                "grant_default_workspace_access": False,
            },
        },
        "auth.grant_default_workspace_access",
        "without sign-in nothing is granted",
    ),
]


@pytest.mark.parametrize(
    ("raw", "path", "why"), BAD, ids=[f"{i:02d}-{b[1]}" for i, b in enumerate(BAD)]
)
def test_bad_values_name_the_key_and_the_reason(raw: object, path: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    lines = str(caught.value).splitlines()
    assert any(line.strip().startswith(f"{path}:") and why in line for line in lines), lines


@pytest.mark.parametrize(
    ("partition", "region"),
    [("aws", "eu-west-1"), ("aws-cn", "cn-north-1"), ("aws-us-gov", "us-gov-west-1")],
)
def test_tls_on_the_internal_load_balancer_takes_acm_certificates_of_every_partition(
    partition: str, region: str
) -> None:
    """The ACM User Guide's ARN form, arn:<partition>:acm:<region>:<account>:certificate/<id>,
    in each partition; the config file and the library's props alike."""
    arn = CERT.replace("arn:aws:acm:eu-west-1:", f"arn:{partition}:acm:{region}:")
    settings = parse_settings(
        {"aws": {"region": region}, **internal_tls(certificate_arn=arn, ca_bundle=CA_BUNDLE)}
    )
    internal = settings.exposure.internal
    assert (internal.certificate_arn, internal.hostname, internal.tls) == (arn, HOSTNAME, True)
    assert internal.ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert InternalLoadBalancerProps(certificate_arn=arn, hostname=HOSTNAME).tls


def test_internal_true_or_false_still_means_enabled() -> None:
    """The section's whole form before it had TLS settings (examples and users' files)."""
    for value in (True, False):
        internal = parse_settings({"exposure": {"internal": value}}).exposure.internal
        assert (internal.enabled, internal.tls) == (value, False)


def test_the_library_refuses_tls_settings_the_config_refuses() -> None:
    with pytest.raises(InvalidProps) as caught:
        InternalLoadBalancerProps(
            certificate_arn=CERT, ssl_policy="ELBSecurityPolicy-2016-08", ca_bundle=LEAF
        )
    message = str(caught.value)
    assert message.startswith("InternalLoadBalancerProps: invalid props")
    assert "ssl_policy: 'ELBSecurityPolicy-2016-08' is not a load balancer security" in message
    assert "ca_bundle: holds a certificate that is not a CA's" in message
    assert "hostname: is required with certificate_arn" in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"server": {"resources": {"cpu": 1}}}, ("server", "resources", "cpu", "1")),
        ({"server": {"resources": {"cpu": 0.5}}}, ("server", "resources", "cpu", "0.5")),
        ({"cluster": {"kubernetes_version": 1.35}}, ("cluster", "kubernetes_version", "1.35")),
        ({"aws": {"account": 111122223333}}, ("aws", "account", "111122223333")),
    ],
)
def test_numbers_yaml_users_write_mean_the_same_as_text(raw: object, expected: tuple) -> None:
    value: object = parse_settings(raw)
    for name in expected[:-1]:
        value = getattr(value, name)
    assert value == expected[-1]


def test_a_new_vpc_may_name_its_zones() -> None:
    settings = parse_settings(
        {"aws": {"region": "eu-west-1"}, "cluster": {"availability_zones": ZONES_EU}}
    )
    assert settings.cluster.availability_zones == ZONES_EU


def test_every_problem_in_one_run(tmp_path: Path) -> None:
    """Nine mistakes of every kind (a repeated YAML key, an unknown key, a wrong type, a
    reserved name, rules between fields within a section and across sections) come out in
    one message, each at its key."""
    path = tmp_path / "nine.yaml"
    path.write_text(
        "gc: {enabled: true}\n"
        "server:\n"
        "  replicas: 3\n"
        "  max_replicas: 2\n"
        "  namespace: kube-system\n"
        "  workers: many\n"
        "exposure:\n"
        "  external:\n"
        "    enabled: true\n"
        "    allowed_cidrs: [0.0.0.0/0]\n"
        "databse: {}\n"
        "cluster:\n"
        "  availability_zones: [eu-west-1a, eu-west-1b]\n"
        "aws:\n"
        "  region: us-east-1\n"
        "monitoring: {enabled: false, alarm_email: team@example.com}\n"
        "gc: {older_than: 60d}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    lines = str(caught.value).splitlines()[1:]
    expected = [
        "line 17: 'gc' appears again (first at line 1)",
        "server.max_replicas: 2 is below replicas (3)",
        "server.namespace: 'kube-system' is reserved",
        "server.workers: Input should be a valid integer",
        "exposure.external.certificate_arn: is required with enabled: true",
        "exposure.external.allowed_cidrs: 0.0.0.0/0 opens MLflow's sign-in",
        "databse: unknown key; did you mean 'database'?",
        "monitoring.enabled: is false but an alarm destination is set",
        "cluster.availability_zones: is in region eu-west-1, but aws.region says us-east-1",
    ]
    for text in expected:
        assert any(text in line for line in lines), (text, lines)
    assert len(lines) == len(expected), lines


def test_rules_across_sections_run_when_the_sections_are_valid() -> None:
    raw = {
        "cluster": {"availability_zones": ZONES_EU},
        "aws": {"region": "us-east-1"},
        "exposure": {"external": {"enabled": True, "allowed_cidrs": ["0.0.0.0/0"]}},
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert "cluster.availability_zones: is in region eu-west-1" in str(caught.value)
    assert "exposure.external.certificate_arn: is required" in str(caught.value)


def _problems(raw: dict[str, object]) -> str:
    """What the config loader says of `raw`, which must be refused."""
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    return str(caught.value)


def test_rules_across_sections_run_beside_an_invalid_field_of_the_section() -> None:
    """The issue's case: an existing cluster's AZs in another region than aws.region are
    reported beside a malformed OIDC provider ARN of the same section, and a rule whose own
    read is invalid (the ARN's region) is skipped, not crashed."""
    raw = {
        "aws": {"region": "us-east-1"},
        **existing(oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/nonsense"),
        "auth": {"enabled": False, "allow_anonymous_through": ["cluster"]},
    }
    message = _problems(raw)
    assert "cluster.oidc_provider_arn: " in message
    assert "cluster.availability_zones: is in region eu-west-1, but aws.region says" in message
    # exposure is valid, auth too: the rule between them runs though cluster is not.
    assert "auth.allow_anonymous_through: does not name internal" in message
    assert message.count("cluster.oidc_provider_arn") == 1, message


def test_cross_field_rules_run_beside_field_errors() -> None:
    """A missing certificate and an open range are both reported though another key of the
    same section is wrong, and a rule that reads an invalid field is skipped, not crashed."""
    raw = external(allowed_cidrs=["0.0.0.0/0"], certificate_arn=None, allow_anonymous=True)
    message = _problems(raw)
    assert "exposure.external.allow_anonymous: unknown key; sign-in off is now" in message
    assert "exposure.external.certificate_arn: is required with enabled: true" in message
    assert "exposure.external.allowed_cidrs: 0.0.0.0/0 opens MLflow's sign-in" in message
    with pytest.raises(ConfigError) as caught:
        parse_settings(external(allowed_cidrs=["0.0.0.0/0", "nonsense"]))
    assert "allowed_cidrs[1]: not a CIDR block" in str(caught.value)
    assert "opens MLflow" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("server: [unclosed\n", "not valid YAML at line"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("just a string\n", "top level must be a mapping"),
        # PyYAML would keep the second block and drop the first without a word.
        ("server: {replicas: 3}\nserver: {workers: 2}\n", "line 2: 'server' appears again"),
        ("server:\n  replicas: 3\n  replicas: 1\n", "line 3: 'replicas' appears again"),
        ("? [a, b]\n: 1\n", "found unhashable key"),
    ],
)
def test_malformed_files_are_clear_errors(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=why) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(path)


def test_the_server_section_is_the_charts_workload() -> None:
    """One definition: the `server` section is the library's WorkloadProps itself, which the
    construct and the chart take as they are."""
    from mlflow_on_eks.k8s_charts import MetricsScrapersProps, ResourceProps, WorkloadProps

    assert Settings.model_fields["server"].annotation is WorkloadProps
    assert Settings().server == WorkloadProps()
    custom = parse_settings(
        {
            "server": {
                "namespace": "team-ml",
                "replicas": 3,
                "max_replicas": 9,
                "resources": {"cpu": "1.5", "memory_mib": 3072},
                "allowed_hosts": ["mlflow.example.com"],
                "architecture": "arm64",
                "drain_seconds": 45,
                "metrics_scrapers": {"namespace_labels": {"team": "obs"}},
            }
        }
    ).server
    assert custom == WorkloadProps(
        namespace="team-ml",
        replicas=3,
        max_replicas=9,
        resources=ResourceProps(cpu="1.5", memory_mib=3072),
        allowed_hosts=("mlflow.example.com",),
        architecture="arm64",
        drain_seconds=45,
        metrics_scrapers=MetricsScrapersProps(namespace_labels={"team": "obs"}),
    )
