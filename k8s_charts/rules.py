"""The rules a setting's value must meet, defined once for the config file and the library.

The config model (config/settings.py) and the construct props (`WorkloadProps`,
`ExternalLoadBalancerProps`, ...) declare their fields with the types below and check their
cross-field rules with the functions below, so a value the config file refuses is refused the
same way when another CDK app passes it to a construct, at synth time, not at deploy time.

Single values are pydantic types (`Annotated`): a rule is a pattern, bounds or a check function.
A rule between fields is a `Rule`: the key it reports at, the fields it reads (it runs only
when those are valid, so one run reports every problem) and a check that returns the problem.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from .launcher_contract import launcher

PARTITION_PATTERN = r"arn:aws(?:-[a-z]+)*"
"""The start of an ARN in any partition (aws, aws-cn, aws-us-gov)."""
REGION_PATTERN = r"[a-z]{2}(?:-[a-z]+)+-\d"
"""A region name such as eu-west-1 or us-gov-east-1."""

RESERVED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
"""DNS-1123 label: what Kubernetes accepts as a namespace name."""


def _check_namespace(value: str) -> str:
    if not re.fullmatch(_DNS_LABEL, value):
        raise ValueError(
            "expected a DNS-1123 label: lower-case letters, digits and '-', at most 63 "
            f"characters, starting and ending with a letter or digit (got {value!r})"
        )
    if value in RESERVED_NAMESPACES:
        raise ValueError(f"{value!r} is reserved; pick a dedicated one")
    return value


def _check_host_pattern(value: str) -> str:
    """A Host header value or pattern as MLflow matches it (mlflow/server/security_utils.py).

    MLflow compares the whole header, port included: with fnmatch when the entry contains
    `*`, else for equality. `?` and `[...]` are refused: without a `*` MLflow would compare
    them literally, so they would silently match nothing.
    """
    if value == "*":
        raise ValueError("'*' alone turns off MLflow's Host check (DNS rebinding protection)")
    if "://" in value or "/" in value:
        raise ValueError("a host name, not a URL: drop the scheme and path")
    host, _, port = value.partition(":")
    if port and not re.fullmatch(r"\*|\d{1,5}", port):
        raise ValueError("the part after ':' must be a port number or '*'")
    if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9*.-]{0,251}[A-Za-z0-9*])?", host):
        raise ValueError("expected a DNS name such as mlflow.example.com, or *.example.com")
    return value


def _check_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"not a CIDR block ({error})") from None
    return str(network)


def _number_as_text(value: object) -> object:
    """YAML reads `cpu: 1` or `cpu: 0.5` as numbers; a quantity written so means the same."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, "g")
    return value


_CPU_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(m?)")


def cpu_millicores(value: str) -> float:
    """A Kubernetes CPU quantity ("500m", "1.5", "2") in millicores."""
    number, milli = _CPU_QUANTITY.fullmatch(value).groups()  # type: ignore[union-attr]
    return float(number) * (1 if milli else 1000)


def _check_cpu(value: str) -> str:
    if not _CPU_QUANTITY.fullmatch(value):
        raise ValueError(f"expected a CPU quantity such as '500m', '1' or '1.5' (got {value!r})")
    if cpu_millicores(value) < 1:
        raise ValueError(
            f"{value!r} requests no CPU; the pod would get the node's leftovers only "
            "(Kubernetes' smallest request is '1m')"
        )
    return value


# `mlflow gc --older-than`: #d#h#m#s, each part optional, decimals allowed.
_GC_DURATION = re.compile(r"(\d+(\.\d+)?d)?(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?")
_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def _check_duration(value: str) -> str:
    if not value or not _GC_DURATION.fullmatch(value):
        raise ValueError("expected a duration such as 30d, 12h or 1d12h (#d#h#m#s)")
    return value


def _check_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            "expected five cron fields (minute hour day month weekday), e.g. '17 3 * * *'"
        )
    return value


# Label syntax, as Kubernetes documents it (Labels and Selectors, "Syntax and character
# set"): a name (and a value, unless empty) is at most 63 characters of letters, digits, '-',
# '_' and '.', starting and ending with a letter or digit; a key may have a prefix, a DNS
# subdomain of at most 253 characters, and '/'.
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")


def _label_problem(key: str, value: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return (
            f"label key {key!r}: the part before '/' must be a DNS subdomain "
            "(lower-case letters, digits, '-' and '.', at most 253 characters)"
        )
    if not _LABEL_NAME.fullmatch(name):
        return (
            f"label key {key!r}: the name must be 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    if value and not _LABEL_NAME.fullmatch(value):
        return (
            f"label {key!r}: the value {value!r} must be empty or 1-63 letters, digits, '-', "
            "'_' or '.', starting and ending with a letter or digit"
        )
    return None


def _labels_as_text(value: object) -> object:
    """YAML reads `monitoring: true` or `tier: 1` as a boolean or a number; a selector needs
    the text, and guessing how it was spelled ("true", "True", "yes") would be wrong."""
    if isinstance(value, dict):
        for key, item in value.items():
            if item is None:
                raise ValueError(f"label {key!r} has no value; write '' for an empty one")
            if not isinstance(item, str):
                raise ValueError(
                    f"label {key!r}: the value {item!r} is not text (YAML reads unquoted "
                    "numbers and true/false so); write it in quotes"
                )
    return value


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    problems = [p for key, item in value.items() if (p := _label_problem(key, item))]
    if problems:
        raise ValueError("; ".join(problems))
    return value


def _refuse(problem: Callable[[str], str | None]) -> Callable[[str], str]:
    """A validator from one of the launcher contract's checks (the launcher runs them too)."""

    def check(value: str) -> str:
        why = problem(value)
        if why:
            raise ValueError(why)
        return value

    return check


Namespace = Annotated[str, AfterValidator(_check_namespace)]
MatchLabels = Annotated[
    dict[str, str], BeforeValidator(_labels_as_text), AfterValidator(_check_labels)
]
"""A Kubernetes label selector's matchLabels: every label must match; empty matches all."""
HostPattern = Annotated[str, AfterValidator(_check_host_pattern)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]
CpuQuantity = Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_check_cpu)]
MemoryMib = Annotated[int, Field(ge=256, le=65536)]
Replicas = Annotated[int, Field(ge=1, le=50)]
MaxReplicas = Annotated[int, Field(ge=1, le=100)]


def _bounds(variable: Any, scale: int = 1) -> Any:
    """The bounds the launcher's contract declares for `variable` (in units of `scale`)."""
    return Field(ge=variable.low, le=variable.high // scale)


Workers = Annotated[int, _bounds(launcher.WORKERS)]
Architecture = Literal["amd64", "arm64"]
ArtifactGib = Annotated[int, _bounds(launcher.MAX_PROXIED_ARTIFACT_MIB, scale=1024)]
ConcurrentTransfers = Annotated[int, _bounds(launcher.CONCURRENT_ARTIFACT_TRANSFERS)]
RequestBodyMib = Annotated[int, _bounds(launcher.MAX_REQUEST_BODY_MIB)]
SignInChecks = Annotated[int, _bounds(launcher.CONCURRENT_SIGN_IN_CHECKS)]
SignInFailures = Annotated[int, _bounds(launcher.SIGN_IN_FAILURES_PER_MINUTE)]
DrainSeconds = Annotated[int, Field(ge=5, le=300)]
CronSchedule = Annotated[str, AfterValidator(_check_cron)]
SignInCacheSeconds = Annotated[int, _bounds(launcher.AUTH_CACHE_SECONDS)]
Permission = Literal[launcher.AUTH_DEFAULT_PERMISSION.choices]  # type: ignore[valid-type]
"""What every signed-in user may do where no grant says otherwise (the contract's list)."""
GcDuration = Annotated[str, AfterValidator(_check_duration)]
ExtraArg = Annotated[str, AfterValidator(_refuse(launcher.extra_arg_problem))]
"""An argument for `mlflow server`: none the launcher gives, none that looks like a secret."""
EnvName = Annotated[str, AfterValidator(_refuse(launcher.extra_env_name_problem))]
EnvValue = Annotated[str, AfterValidator(_refuse(launcher.secret_value_problem))]
AcmCertificateArn = Annotated[
    str,
    Field(
        pattern=rf"^{PARTITION_PATTERN}:acm:{REGION_PATTERN}:\d{{12}}:certificate/[0-9a-f-]{{36}}$"
    ),
]
"""An ACM certificate: arn:<partition>:acm:<region>:<account>:certificate/<id> (ACM API
Reference, CertificateArn; "Amazon Resource Names for ACM" in the ACM User Guide)."""

# Security policies of a Network Load Balancer's TLS listener that accept TLS 1.2 or later only:
# the names of the NLB User Guide ("Security policies for your Network Load Balancer",
# https://docs.aws.amazon.com/elasticloadbalancing/latest/network/describe-ssl-policies.html),
# as aws-cdk-lib 2.275's `SslPolicy` spells them. Left out: those that still accept TLS 1.0 or
# 1.1 (ELBSecurityPolicy-2016-08, *-TLS13-1-0-*, *-TLS13-1-1-*, *-TLS-1-1-*, *-FS-2018-06, ...):
# 2016-08 is what a listener gets when none is named (the guide's "Considerations").
DEFAULT_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2: the guide's long-standing recommendation, and the external load balancer's
policy since it first served TLS."""
TLS_POLICIES = (
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Ext0-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Ext0-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-PQ-2025-09",
    "ELBSecurityPolicy-FS-1-2-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    "ELBSecurityPolicy-TLS-1-2-2017-01",
    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
)


def _check_tls_policy(value: str) -> str:
    if value not in TLS_POLICIES:
        raise ValueError(
            f"{value!r} is not a load balancer security policy that requires TLS 1.2 or later "
            "(those that still accept TLS 1.0 or 1.1, such as ELBSecurityPolicy-2016-08, are "
            f"refused); use one of {', '.join(TLS_POLICIES)}"
        )
    return value


def _check_dns_name(value: str) -> str:
    """A DNS name a certificate can cover and a client puts in its URL: no wildcard, no port."""
    if value != value.lower():
        raise ValueError(
            "write it in lower case: browsers send the Host in lower case, and MLflow compares "
            "it exactly"
        )
    if "://" in value or "/" in value or ":" in value:
        raise ValueError("a DNS name only: drop the scheme, port and path")
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value) or "." not in value:
        raise ValueError(
            "expected a fully qualified DNS name such as mlflow.internal.example.com "
            "(no wildcard: this is the one name clients use)"
        )
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value
    raise ValueError("a DNS name, not an IP address: the certificate must name it")


def _check_ca_bundle(value: str) -> str:
    """PEM certificates of CAs, parsed as the deploy check's TLS context will load them."""
    if "PRIVATE KEY" in value:
        raise ValueError(
            "holds a private key, which must never be in the settings (they end up in the "
            "template): give the CA certificates only"
        )
    if "-----BEGIN CERTIFICATE-----" not in value:
        raise ValueError("expected PEM certificates (-----BEGIN CERTIFICATE----- ...)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=value)
    except ssl.SSLError as error:
        raise ValueError(
            f"could not be read as PEM certificates (OpenSSL: {error.reason or error})"
        ) from None
    stats = context.cert_store_stats()
    if stats["x509_ca"] != stats["x509"]:
        raise ValueError(
            "holds a certificate that is not a CA's (basicConstraints CA:TRUE): give the "
            "certificates of the CAs that issued the load balancer's certificate, not the "
            "certificate itself"
        )
    return value


TlsPolicy = Annotated[str, AfterValidator(_check_tls_policy)]
DnsName = Annotated[str, AfterValidator(_check_dns_name)]
CaBundle = Annotated[str, AfterValidator(_check_ca_bundle)]


SecurityGroupId = Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$")]
"""`sg-` and 8 or 17 hexadecimal digits (EC2's older and newer resource IDs)."""

# Secrets Manager adds '-' and six random characters to the name in a secret's ARN
# (arn:aws:secretsmanager:us-east-1:123456789012:secret:SecretName-6RandomCharacters); a name is
# 1-512 ASCII letters, digits and /_+=.@- ("The secret name can contain ASCII letters, numbers,
# and the following characters: /_+=.@-", CreateSecret, Name:
# https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html), and '!'
# in the secrets other services manage, named `<service>!...` (RDS's master user secrets:
# `rds!db-<id>`; https://docs.aws.amazon.com/secretsmanager/latest/userguide/service-linked-secrets.html).
_SECRET_ARN = re.compile(
    rf"{PARTITION_PATTERN}:secretsmanager:({REGION_PATTERN}):(\d{{12}}):secret:"
    r"([A-Za-z0-9/_+=.@!-]{1,512})-[A-Za-z0-9]{6}"
)
# A KMS key ARN: arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab, or
# key/mrk-1234abcd12ab34cd56ef1234567890ab for a multi-Region key (AWS KMS API reference, KeyId).
_KMS_KEY_ARN = re.compile(
    rf"{PARTITION_PATTERN}:kms:({REGION_PATTERN}):(\d{{12}}):key/"
    r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
)


def _arn_check(
    pattern: re.Pattern[str], near: str, near_why: str, example: str
) -> Callable[[str], str]:
    """A check that takes ARNs matching `pattern`, says `near_why` of one matching the looser
    `near` (a common mistake), and shows `example` otherwise."""

    def check(value: str) -> str:
        if pattern.fullmatch(value):
            return value
        if re.fullmatch(near, value):
            raise ValueError(near_why)
        raise ValueError(f"expected {example}")

    return check


_check_secret_arn = _arn_check(
    _SECRET_ARN,
    rf"{PARTITION_PATTERN}:secretsmanager:[^:]+:\d{{12}}:secret:[^:]+",
    "give the complete ARN, with the '-' and six characters Secrets Manager adds to the name "
    "(aws secretsmanager describe-secret --secret-id NAME --query ARN): a partial ARN would "
    "grant read on every secret whose name starts the same",
    "a Secrets Manager secret ARN such as "
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:SecretName-AbCdEf",
)
_check_kms_key_arn = _arn_check(
    _KMS_KEY_ARN,
    rf"{PARTITION_PATTERN}:kms:[^:]+:\d{{12}}:alias/.+",
    "an alias ARN: IAM policies allow a key by its key ARN "
    "(aws kms describe-key --key-id ALIAS --query KeyMetadata.Arn)",
    "a KMS key ARN such as "
    "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
)


SecretArn = Annotated[str, AfterValidator(_check_secret_arn)]
"""A Secrets Manager secret's complete ARN (with the six characters Secrets Manager adds)."""
KmsKeyArn = Annotated[str, AfterValidator(_check_kms_key_arn)]
"""A KMS key's ARN (not an alias's)."""


def _check_https_url(value: str) -> str:
    """What the ALB's OIDC action takes for the IdP's endpoints: "a full URL, including the
    HTTPS protocol, the domain, and the path" (Elastic Load Balancing API reference,
    AuthenticateOidcActionConfig)."""
    if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s\"'{}]*)?", value):
        raise ValueError(
            f"expected an https:// URL such as https://idp.example.com/oauth2 (got {value!r})"
        )
    return value


HttpsUrl = Annotated[str, AfterValidator(_check_https_url)]


def arn_region_and_account(arn: str) -> tuple[str, str]:
    """The region and account fields of an ARN (empty for global services such as IAM)."""
    parts = arn.split(":", 5)
    return parts[3], parts[4]


# The server's memory, measured with bench/server_memory.py on the image's packages (MLflow
# 3.17.2, sign-in on, PSS over the process tree after 200 and 2,000 requests from 8 clients).
# With two or more workers, uvicorn's supervisor imports MLflow's server and forks the workers
# (mlflow_launcher/uvicorn_main.py): 110 MiB for it, 115-135 MiB per worker while they still share
# its pages (354 MiB for 2 workers after 200 requests, 379 after 2,000, 500 for 4). A worker
# copies the pages it writes to, and its share can grow towards a worker of its own: 211 MiB when
# each worker imported MLflow itself (one worker: 219 MiB, the supervisor's process). So the bound
# is the supervisor's 110 MiB with a margin, and per worker that worker of its own with a margin.
# A limit below that is an OOM kill waiting for the first requests.
SERVER_BASE_MIB = 130
SERVER_MIB_PER_WORKER = 225
# On top, per worker, what the guard lets in at once (mlflow_launcher.guard.limits; a unit test
# holds the two together): its password checks (werkzeug's scrypt, 32 MiB each) and its budget
# of request bodies, one of the largest allowed, which MLflow holds up to 8 times over once it
# parses it (measured: a 15 MiB JSON array of integers grew a worker by 120 MiB).
SCRYPT_MIB = 32
BODY_EXPANSION = 8


def streamed_uploads_mib(transfers: int, max_artifact_gib: int) -> int:
    """What the pod's proxied uploads hold at once: each transfer slot may be an upload streamed
    to S3, holding launcher.UPLOAD_PARTS_HELD parts (mlflow_launcher/s3_stream.py), the
    message the guard is joining (launcher.UPLOAD_MESSAGE_MIB) and what each thread sending a
    part holds beside it (launcher.UPLOAD_SENDER_MIB). Measured: the server tree's PSS grew by
    up to 53.4 MiB per upload with 8 MiB parts, 3 sent at once (bench/artifacts.py); this
    counts 56."""
    part_mib = launcher.upload_part_mib(max_artifact_gib * 1024)
    senders = launcher.UPLOAD_PARTS_SENT_AT_ONCE * launcher.UPLOAD_SENDER_MIB
    held = launcher.UPLOAD_PARTS_HELD * part_mib + launcher.UPLOAD_MESSAGE_MIB + senders
    return transfers * held


def _guard_mib(sign_in_checks: int, max_request_body_mib: int) -> int:
    """What the guard lets one worker take on at once: its password checks and a body."""
    return sign_in_checks * SCRYPT_MIB + max_request_body_mib * BODY_EXPANSION


def minimum_memory_mib(
    workers: int,
    sign_in_checks: int,
    max_request_body_mib: int,
    transfers: int = 0,
    max_artifact_gib: int = 0,
) -> int:
    """The smallest memory limit that holds `workers` uvicorn workers under load, with what the
    guard lets each of them take on at once and the pod's `transfers` streamed uploads."""
    guard = _guard_mib(sign_in_checks, max_request_body_mib)
    uploads = streamed_uploads_mib(transfers, max_artifact_gib)
    return SERVER_BASE_MIB + (SERVER_MIB_PER_WORKER + guard) * workers + uploads


def memory_problem(
    memory_mib: int,
    workers: int,
    sign_in_checks: int,
    max_request_body_mib: int,
    transfers: int = 0,
    max_artifact_gib: int = 0,
) -> str | None:
    need = minimum_memory_mib(
        workers, sign_in_checks, max_request_body_mib, transfers, max_artifact_gib
    )
    if memory_mib < need:
        return (
            f"{memory_mib} MiB is too little for {workers} workers: the server takes about "
            f"{need} MiB under load ({SERVER_BASE_MIB} + {SERVER_MIB_PER_WORKER} per worker, "
            f"measured, + {_guard_mib(sign_in_checks, max_request_body_mib)} per worker for "
            f"{sign_in_checks} concurrent sign-in checks of {SCRYPT_MIB} MiB and a "
            f"{max_request_body_mib} MiB request body held {BODY_EXPANSION} times over, + "
            f"{streamed_uploads_mib(transfers, max_artifact_gib)} for {transfers} proxied "
            "uploads streamed to S3); raise it, or lower workers, concurrent_sign_in_checks, "
            "max_request_body_mib or concurrent_artifact_transfers"
        )
    return None


def internet_problem(cidrs: Iterable[str], allow_internet: bool) -> str | None:
    """Ranges that together admit every IPv4 or every IPv6 address need the explicit opt-in."""
    if allow_internet:
        return None
    networks = [ipaddress.ip_network(c) for c in cidrs]
    for version, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        ranges = [n for n in networks if n.version == version]
        if ranges and any(n.prefixlen == 0 for n in ipaddress.collapse_addresses(ranges)):  # type: ignore[type-var]
            if any(n.prefixlen == 0 for n in ranges):
                what = everything
            else:
                what = f"{', '.join(str(n) for n in ranges)} together cover {everything}, which"
            return (
                f"{what} opens MLflow's sign-in and API to the whole internet; "
                "set allow_internet: true to confirm"
            )
    return None


def ipv6_problem(cidrs: Iterable[str]) -> str | None:
    """The load balancers are IPv4 only (no dual-stack address type), and the AWS Load Balancer
    Controller refuses their Service with an IPv6 source range: "unsupported v6 cidr ... when
    lb is not dualstack" (kubernetes-sigs/aws-load-balancer-controller,
    pkg/service/model_build_load_balancer.go). Found at synth instead of after the deploy."""
    ipv6 = [c for c in cidrs if ipaddress.ip_network(c).version == 6]
    if ipv6:
        return (
            f"{', '.join(ipv6)}: IPv6 ranges cannot reach the load balancer, which has IPv4 "
            "addresses only (the AWS Load Balancer Controller would refuse the Service: "
            '"unsupported v6 cidr ... when lb is not dualstack"); list IPv4 ranges'
        )
    return None


def cidrs_needed_problem(cidrs: Iterable[str]) -> str | None:
    if not list(cidrs):
        return (
            "is empty; list the networks that may reach the server "
            "(a password is the only other barrier)"
        )
    return None


def max_replicas_problem(replicas: int, max_replicas: int | None) -> str | None:
    if max_replicas is not None and max_replicas < replicas:
        return f"{max_replicas} is below replicas ({replicas})"
    return None


@dataclass(frozen=True)
class Rule:
    """A rule between fields: reported at `key`, checked only when all of `reads` are valid.

    A read is a field's name or, for a rule between sections, its dotted path
    (`cluster.availability_zones`): the rule then still runs when another field of the same
    section is invalid."""

    key: str
    reads: tuple[str, ...]
    check: Callable[[Any], str | None]


def set_while_off(fields: tuple[str, ...], problem: str) -> Rule:
    """A rule, reported at `enabled`, refusing any of `fields` set while the group's
    `enabled` is false: "is false but <problem>"."""
    return Rule(
        "enabled",
        ("enabled", *fields),
        lambda group: (
            f"is false but {problem}"
            if not group.enabled and any(getattr(group, name) for name in fields)
            else None
        ),
    )


def _at(group: Any, path: str) -> Any:
    value = group
    for name in path.split("."):
        value = getattr(value, name)
    return value


def refused_while(switch: str, fields: tuple[str, ...], problem: str) -> tuple[Rule, ...]:
    """Rules, one reported at each of `fields`, refusing a field the user set while the value
    at `switch` (a field, or a dotted path into a nested group) is set: "<problem>"."""
    return tuple(
        Rule(
            name,
            (switch, name),
            lambda group, name=name: problem if _at(group, switch) and group.given(name) else None,
        )
        for name in fields
    )


Path = tuple[str, ...]
"""Where a value is: its field names from the model down (an error's `loc`)."""


class _Reads:
    """The values a rule declared it reads, and nothing else (an undeclared read fails loudly:
    the rule would otherwise run on an invalid value in the one-run-reports-all path)."""

    def __init__(self, values: object, names: tuple[str, ...], given: set[str]) -> None:
        self._values, self._given = values, given
        self._names = {name.split(".")[0] for name in names}

    def __getattr__(self, name: str) -> Any:
        if name not in self._names:
            raise AttributeError(f"the rule reads {name!r} but does not declare it")
        return getattr(self._values, name)

    def given(self, name: str) -> bool:
        """Whether the user set the field (rather than leaving its default)."""
        return name in self._given


def _touches(read: str, invalid: Iterable[Path]) -> bool:
    """Whether an invalid value is at `read`, inside it, or around it."""
    path = tuple(read.split("."))
    return any(p[: len(path)] == path or path[: len(p)] == p for p in invalid)


def broken_rules(
    values: object, rules: Iterable[Rule], invalid: Iterable[Path], given: set[str]
) -> list[tuple[str, str]]:
    """(key, problem) for each rule that fails among those whose reads are all valid."""
    invalid = list(invalid)
    broken = []
    for rule in rules:
        if any(_touches(read, invalid) for read in rule.reads):
            continue
        problem = rule.check(_Reads(values, rule.reads, given))
        if problem:
            broken.append((rule.key, problem))
    return broken


class InvalidProps(ValueError):
    """Construct props that break the rules; the message lists every problem."""
