"""The environment contract between the chart and the image: every variable the chart writes
for the pods, declared once with its type, default and bounds.

The chart (k8s_charts/launcher_contract.py loads this file by its path: the CDK app does not
have the launcher installed) renders each value through its declaration, which refuses a value
the launcher would refuse; the launcher parses the same declarations. So the two cannot
disagree on a name, a default or a bound. Standard library only, and no import of the
launcher's other modules, for that reason.

A parse error names the variable and why: `MLFLOW_DB_WAIT_SECONDS must be a positive number of
seconds, got 'abc'`. Variables read by others (botocore, uvicorn, MLflow's client) are declared
too, with `read_by`, so every name the chart writes is one of these.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ContractError(ValueError):
    """A value a variable does not admit, or a required one unset; the message names it."""


@dataclass(frozen=True, kw_only=True)
class Variable(Generic[T]):
    """One environment variable. Unset (or blank), it takes `default`; `required` ones have
    none and are an error when unset; others without a default parse to None."""

    name: str
    doc: str
    default: T | None = None
    required: bool = False
    read_by: str = "the launcher"

    def what(self) -> str:
        """What a valid value is, in words (the error message's)."""
        return "a non-empty value"

    def convert(self, text: str) -> T:
        """The value of non-blank `text`; ValueError if it is not one."""
        return text  # type: ignore[return-value]

    def format(self, value: T) -> str:
        return str(value)

    def parse(self, env: Mapping[str, str]) -> T | None:
        """This variable's value in `env`."""
        text = env.get(self.name, "").strip()
        if not text:
            if self.required:
                raise ContractError(f"{self.name} is not set")
            return self.default
        try:
            return self.convert(text)
        except ValueError:
            raise ContractError(f"{self.name} must be {self.what()}, got {text!r}") from None

    def render(self, value: T) -> str:
        """`value` as the chart writes it; ContractError if the launcher would refuse it."""
        text = self.format(value)
        self.parse({self.name: text})
        return text


@dataclass(frozen=True, kw_only=True)
class Text(Variable[str]):
    pattern: str | None = None
    """A regular expression the whole value must match. Default: any non-empty text."""
    meaning: str = "a non-empty value"

    def what(self) -> str:
        return self.meaning

    def convert(self, text: str) -> str:
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise ValueError(text)
        return text


@dataclass(frozen=True, kw_only=True)
class Choice(Variable[str]):
    choices: tuple[str, ...] = ()

    def what(self) -> str:
        return f"one of {', '.join(self.choices)}"

    def convert(self, text: str) -> str:
        if text not in self.choices:
            raise ValueError(text)
        return text


@dataclass(frozen=True, kw_only=True)
class Integer(Variable[int]):
    low: int = 1
    high: int | None = None
    unit: str = ""

    def what(self) -> str:
        unit = f" of {self.unit}" if self.unit else ""
        if self.high is not None:
            return f"a whole number{unit} from {self.low} to {self.high}"
        if self.low == 1:
            return f"a positive whole number{unit}"
        return f"a whole number{unit} of at least {self.low}"

    def convert(self, text: str) -> int:
        # isascii: str.isdigit admits other scripts' digits, which no one means here.
        if not (text.isascii() and text.isdigit()):
            raise ValueError(text)
        value = int(text)
        if value < self.low or (self.high is not None and value > self.high):
            raise ValueError(text)
        return value


@dataclass(frozen=True, kw_only=True)
class Port(Integer):
    high: int | None = 65535

    def what(self) -> str:
        return "a TCP port"


@dataclass(frozen=True, kw_only=True)
class Number(Variable[float]):
    """A positive, finite number ("inf" would bring back an endless wait)."""

    unit: str = "seconds"

    def what(self) -> str:
        return f"a positive number of {self.unit}"

    def convert(self, text: str) -> float:
        value = float(text)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(text)
        return value

    def format(self, value: float) -> str:
        # 90.0 as "90": what the chart wrote before it rendered through this.
        if isinstance(value, int | float) and float(value).is_integer():
            return str(int(value))
        return str(value)


@dataclass(frozen=True, kw_only=True)
class TextList(Variable[tuple[str, ...]]):
    """Comma-separated; blank items are dropped."""

    meaning: str = "a comma-separated list"
    item: Callable[[str], object] | None = None
    """Raises ValueError for an item the list may not hold."""

    def what(self) -> str:
        return self.meaning

    def convert(self, text: str) -> tuple[str, ...]:
        items = tuple(part.strip() for part in text.split(",") if part.strip())
        if not items:
            raise ValueError(text)
        for item in items:
            if self.item is not None:
                self.item(item)
        return items

    def format(self, value: tuple[str, ...]) -> str:
        return ",".join(value)


def parse(env: Mapping[str, str], variables: Iterable[Variable[Any]]) -> dict[str, Any]:
    """Each variable's value by name; one ContractError naming every bad one, so a bad
    ConfigMap is fixed in one round trip rather than one crash loop per variable."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for variable in variables:
        try:
            values[variable.name] = variable.parse(env)
        except ContractError as error:
            problems.append(str(error))
    if problems:
        raise ContractError("; ".join(problems))
    return values


def render(values: Mapping[Variable[Any], Any]) -> dict[str, str]:
    """The environment the chart writes: each value rendered (checked) by its declaration;
    None leaves the variable out."""
    return {
        variable.name: variable.render(value)
        for variable, value in values.items()
        if value is not None
    }


def _origin(value: str) -> None:
    # MLflow compares scheme://host[:port] exactly (or with fnmatch when a `*` is present);
    # a path or a missing scheme would never match what a browser sends.
    scheme, sep, rest = value.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise ValueError(value)


# ---- The database and the wait for it --------------------------------------------------------

DB_ENGINE = Choice(
    name="MLFLOW_DB_ENGINE",
    doc="The backend store's engine.",
    choices=("mysql", "postgres"),
    required=True,
)
DB_DEFAULT_PORTS = {"mysql": 3306, "postgres": 5432}
DB_HOST = Text(name="MLFLOW_DB_HOST", doc="The database's address.", required=True)
DB_PORT = Port(name="MLFLOW_DB_PORT", doc="Its port. Default: the engine's (3306, 5432).")
DB_NAME = Text(name="MLFLOW_DB_NAME", doc="MLflow's tracking database.", default="mlflow")
DB_SECRET_ID = Text(
    name="MLFLOW_DB_SECRET_ID",
    doc="Secrets Manager ARN of the server's login (JSON username, password).",
    required=True,
)
DB_CA_BUNDLE = Text(
    name="MLFLOW_DB_CA_BUNDLE",
    doc="The CA bundle that verifies the database's TLS certificate.",
    required=True,
)
DB_READ_HOST = Text(
    name="MLFLOW_DB_READ_HOST",
    doc="A read replica (same login, name and port): MLflow sends reads there. Default: none.",
)
DB_READ_PORT = Port(name="MLFLOW_DB_READ_PORT", doc="The replica's port. Default: the primary's.")
DB_ADMIN_SECRET_ID = Text(
    name="MLFLOW_DB_ADMIN_SECRET_ID",
    doc="The migration Job's: the master login's secret ARN (only it may read it).",
)
DB_INSTANCE_ID = Text(
    name="MLFLOW_DB_INSTANCE_ID",
    doc="The migration Job's: the RDS instance it snapshots before a schema change.",
)
DB_CONNECT_ATTEMPTS = Integer(
    name="MLFLOW_DB_CONNECT_ATTEMPTS", doc="Connection attempts within the wait.", default=10
)
DB_CONNECT_BACKOFF_MAX_SECONDS = Number(
    name="MLFLOW_DB_CONNECT_BACKOFF_MAX_SECONDS",
    doc="The longest pause between two attempts.",
    default=30.0,
)
DB_WAIT_SECONDS = Number(
    name="MLFLOW_DB_WAIT_SECONDS",
    doc="The whole wait for the database (and its read replica), counted from the launcher's "
    "start: a bit more than an RDS Multi-AZ failover takes (typically 60-120 s), so a pod that "
    "starts in one waits it out or restarts saying why.",
    default=90.0,
)
DB_CONNECT_TIMEOUT_SECONDS = Integer(
    name="MLFLOW_DB_CONNECT_TIMEOUT_SECONDS",
    doc="Each connection attempt (the database is in the pod's VPC: milliseconds).",
    default=5,
    unit="seconds",
)
DB_NETWORK_TIMEOUT_SECONDS = Integer(
    name="MLFLOW_DB_NETWORK_TIMEOUT_SECONDS",
    doc="How long a connection may stay silent (packets dropped, no reset) before it is given "
    "up: PostgreSQL's TCP keepalives and TCP_USER_TIMEOUT, the launcher's checks on MySQL.",
    default=10,
    unit="seconds",
)
DB_STATEMENT_TIMEOUT_SECONDS = Integer(
    name="MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS",
    doc="The server's bound on one statement (PostgreSQL's statement_timeout, PyMySQL's read "
    "and write timeouts); migrations get none.",
    default=60,
    unit="seconds",
)
MIGRATION_LOCK_TIMEOUT_SECONDS = Number(
    name="MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS",
    doc="The wait for the schema lock: long enough for any MLflow upgrade, short enough that a "
    "lock held by a lost session fails the container within minutes.",
    default=600.0,
)
SCHEMA_WAIT_SECONDS = Number(
    name="MLFLOW_SCHEMA_WAIT_SECONDS",
    doc="`wait-schema`'s wait for the migration Job: longer than the Job takes when it works "
    "(a snapshot, at most MLFLOW_SNAPSHOT_TIMEOUT_SECONDS; the lock, at most 600 s; the "
    "migrations).",
    default=1500.0,
)
MIGRATION_LOGS_COMMAND = Text(
    name="MLFLOW_MIGRATION_LOGS_COMMAND",
    doc="`wait-schema`'s hint: the command that shows the migration Job's log.",
)
SNAPSHOT_MAX_AGE_MINUTES = Number(
    name="MLFLOW_SNAPSHOT_MAX_AGE_MINUTES",
    doc="A manual snapshot this recent counts as the way back before a schema change.",
    default=60.0,
    unit="minutes",
)
SNAPSHOT_TIMEOUT_SECONDS = Number(
    name="MLFLOW_SNAPSHOT_TIMEOUT_SECONDS",
    doc="How long `migrate` waits for its snapshot to be available; RDS keeps creating it and "
    "the next attempt waits for that one.",
    default=660.0,
)
SNAPSHOT_MAX_COUNT = Integer(
    name="MLFLOW_SNAPSHOT_MAX_COUNT",
    doc="Snapshots the launcher keeps before it refuses to take another: a few upgrades' way "
    "back, far below the 100 manual snapshots a Region allows an account by default.",
    default=5,
)

# ---- The server ------------------------------------------------------------------------------

HOST = Text(
    name="MLFLOW_HOST",
    doc="The address `mlflow server` listens on: the pod's, the Service's target.",
    default="0.0.0.0",  # noqa: S104
)
PORT = Port(name="MLFLOW_PORT", doc="Its port.", default=5000)
WORKERS = Integer(name="MLFLOW_WORKERS", doc="uvicorn workers per pod.", default=2, high=16)
LOG_LEVEL = Choice(
    name="MLFLOW_LOG_LEVEL",
    doc="How much the server logs: the launcher sets MLflow's loggers (MLFLOW_LOGGING_LEVEL) and "
    "uvicorn's (UVICORN_LOG_LEVEL) from it.",
    choices=("debug", "info", "warning", "error"),
    default="info",
)
ARTIFACTS_DESTINATION = Text(
    name="MLFLOW_ARTIFACTS_DESTINATION",
    doc="Where the server stores artifacts (s3://bucket/prefix).",
    required=True,
)
ALLOWED_HOSTS = TextList(
    name="MLFLOW_ALLOWED_HOSTS",
    doc="Host header values (or `*` patterns) MLflow answers.",
    meaning="a comma-separated list of Host patterns",
    required=True,
)
CORS_ALLOWED_ORIGINS = TextList(
    name="MLFLOW_CORS_ALLOWED_ORIGINS",
    doc="Origins (besides localhost) whose browser pages may send state-changing requests.",
    meaning="a comma-separated list of origins such as https://mlflow.example.com",
    default=(),
    item=_origin,
)
UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN = Integer(
    name="UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN",
    doc="How long uvicorn lets in-flight requests finish on SIGTERM before it cancels them "
    "(unbounded by default: the kubelet's SIGKILL would end them mid-transfer).",
    unit="seconds",
    read_by="uvicorn",
)
EXPOSE_PROMETHEUS = Text(
    name="MLFLOW_EXPOSE_PROMETHEUS",
    doc="`mlflow server --expose-prometheus`: where the workers write their counters; the "
    "`metrics` container serves their sum.",
    read_by="MLflow and the launcher",
)
METRICS_PORT = Port(name="MLFLOW_METRICS_PORT", doc="The `metrics` container's port.")

# ---- AWS clients (botocore reads these for every client, IRSA's STS client included) ---------

AWS_REGION = Text(name="AWS_REGION", doc="The pods' Region.", read_by="botocore")
AWS_DEFAULT_REGION = Text(name="AWS_DEFAULT_REGION", doc="The same.", read_by="botocore")
AWS_RETRY_MODE = Choice(
    name="AWS_RETRY_MODE",
    doc="botocore's retry mode: standard retries throttling and connection errors with backoff.",
    choices=("legacy", "standard", "adaptive"),
    default="standard",
    read_by="botocore",
)
AWS_MAX_ATTEMPTS = Integer(
    name="AWS_MAX_ATTEMPTS",
    doc="Tries per AWS call: Secrets Manager, STS, S3 (MLflow's), RDS (the snapshot guard).",
    default=5,
    read_by="botocore",
)
AWS_CONNECT_TIMEOUT_SECONDS = 3
"""Not variables: the launcher's Secrets Manager and STS clients' timeouts (botocore's are 60 s
each), which the chart counts in the server's start budget."""
AWS_READ_TIMEOUT_SECONDS = 5

# ---- Authentication (MLflow's basic-auth app) ------------------------------------------------

AUTH_ADMIN_SECRET_ID = Text(
    name="MLFLOW_AUTH_ADMIN_SECRET_ID",
    doc="Secret ARN of the admin login (JSON username, password).",
)
AUTH_FLASK_SECRET_ID = Text(
    name="MLFLOW_AUTH_FLASK_SECRET_ID",
    doc="Secret ARN of MLFLOW_FLASK_SERVER_SECRET_KEY (the same on every replica).",
)
AUTH_KEK_SECRET_ID = Text(
    name="MLFLOW_AUTH_KEK_SECRET_ID", doc="Secret ARN of MLFLOW_CRYPTO_KEK_PASSPHRASE."
)
AUTH_DEFAULT_PERMISSION = Choice(
    name="MLFLOW_AUTH_DEFAULT_PERMISSION",
    doc="What a signed-in user may do where no grant says otherwise (mlflow.server.auth's "
    "permissions; DENY exists only as an explicit grant).",
    choices=("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"),
    default="READ",
)
AUTH_DB_NAME = Text(
    name="MLFLOW_AUTH_DB_NAME",
    doc="The users' database, on the backend store's instance.",
    # Created with a quoted identifier; kept to one that needs no quoting anywhere.
    pattern=r"[A-Za-z_][A-Za-z0-9_]{0,62}",
    meaning="a plain database name (letters, digits, _)",
    default="mlflow_auth",
)
AUTH_CACHE_SECONDS = Integer(
    name="MLFLOW_AUTH_CACHE_SECONDS",
    doc="How long each server process remembers a successful password check (MLflow's "
    "auth_cache_ttl_seconds; 0: never). MLflow's scrypt check costs 67 ms of CPU and 32 MiB "
    "per request (bench/server.py); the price of remembering: a changed password, a deleted "
    "user or a removed admin flag takes up to this long to reach the other processes.",
    default=30,
    low=0,
    high=3600,
    unit="seconds",
)
AUTH = (
    AUTH_ADMIN_SECRET_ID,
    AUTH_FLASK_SECRET_ID,
    AUTH_KEK_SECRET_ID,
    AUTH_DEFAULT_PERMISSION,
    AUTH_DB_NAME,
)
"""All set, or none (authentication off). The cache is optional."""

# ---- Single sign-on: browsers through an ALB whose listener runs the OIDC action --------------
# The ALB signs each request's user claims (header x-amzn-oidc-data, a JWT signed ES256) and
# names itself in the token's `signer`; mlflow_launcher.sso verifies them. Elastic Load
# Balancing docs, "Authenticate users using an Application Load Balancer", "User claims
# encoding and signature verification":
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-authenticate-users.html#user-claims-encoding


def _network(value: str) -> None:
    ipaddress.ip_network(value)  # ValueError for anything but a CIDR block (host bits clear)


_CLAIM = r"[\x21-\x7e]{1,128}"
"""A claim's name: printable ASCII, no space (`email`, `cognito:groups`, a URL)."""

SSO_ALB_ARN = Text(
    name="MLFLOW_SSO_ALB_ARN",
    doc="The ALB whose OIDC action signs people in: a request whose x-amzn-oidc-data header "
    "this ALB signed is signed in as the IdP's user. Its Region is the signing key's. "
    "Default: none (single sign-on off; every other MLFLOW_SSO_* variable then unset).",
    pattern=r"arn:aws[a-z-]*:elasticloadbalancing:[a-z]{2,4}(-[a-z]+)+-\d:\d{12}:"
    r"loadbalancer/app/[A-Za-z0-9-]{1,32}/[0-9a-f]+",
    meaning="an Application Load Balancer's ARN "
    "(arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>)",
)
SSO_USERNAME_CLAIM = Text(
    name="MLFLOW_SSO_USERNAME_CLAIM",
    doc="The user claim whose value is the MLflow username (one the IdP keeps unique and "
    "verified).",
    pattern=_CLAIM,
    meaning="a claim name (printable ASCII, no space, at most 128 characters)",
    default="email",
)
SSO_GROUPS_CLAIM = Text(
    name="MLFLOW_SSO_GROUPS_CLAIM",
    doc="The user claim listing the user's IdP groups (cognito:groups on Amazon Cognito).",
    pattern=_CLAIM,
    meaning="a claim name (printable ASCII, no space, at most 128 characters)",
    default="groups",
)
SSO_ADMIN_GROUP = Text(
    name="MLFLOW_SSO_ADMIN_GROUP",
    doc="Members of this IdP group are MLflow admins, others are not, as of each sign-in. "
    "Default: none (admin rights are granted in MLflow only).",
)
SSO_ISSUER = Text(
    name="MLFLOW_SSO_ISSUER",
    doc="The IdP's issuer URL the token must name (`iss`). Default: not checked.",
)
SSO_CLIENT_ID = Text(
    name="MLFLOW_SSO_CLIENT_ID",
    doc="The OIDC client ID the token must name (`client`). Default: not checked.",
)
SSO_TRUSTED_CIDRS = TextList(
    name="MLFLOW_SSO_TRUSTED_CIDRS",
    doc="Connections from these networks only (the ALB's subnets) may present the header; "
    "from anywhere else it is refused. Default: any address (the security group and the "
    "NetworkPolicy decide who connects).",
    meaning="a comma-separated list of CIDR blocks such as 10.0.0.0/24",
    item=_network,
)
SSO_KEY_URL = Text(
    name="MLFLOW_SSO_KEY_URL",
    doc="Where the ALB's public keys are, the key ID appended. Default: AWS's endpoint for "
    "the ALB's Region. The chart never sets it: tests do, and partitions AWS names no "
    "endpoint for.",
    pattern=r"https?://[^\s?#]+/",
    meaning="an http(s) URL ending in / (the key ID is appended)",
)
SSO = (
    SSO_ALB_ARN,
    SSO_USERNAME_CLAIM,
    SSO_GROUPS_CLAIM,
    SSO_ADMIN_GROUP,
    SSO_ISSUER,
    SSO_CLIENT_ID,
    SSO_TRUSTED_CIDRS,
    SSO_KEY_URL,
)
"""Off unless MLFLOW_SSO_ALB_ARN is set; it needs authentication on (the AUTH variables)."""

# ---- The guard's limits (each server process, before MLflow reads a request) -----------------

MAX_REQUEST_BODY_MIB = Integer(
    name="MLFLOW_MAX_REQUEST_BODY_MIB",
    doc="A signed-in request's body, artifacts aside (they stream). MLflow's largest ordinary "
    "requests are far smaller: a log_batch at MLflow's own limits is under 2 MiB.",
    default=8,
    high=1024,
)
MAX_PROXIED_ARTIFACT_MIB = Integer(
    name="MLFLOW_MAX_PROXIED_ARTIFACT_MIB",
    doc="The largest artifact proxied through a pod.",
    default=2048,
    high=1024 * 1024,
)
CONCURRENT_ARTIFACT_TRANSFERS = Integer(
    name="MLFLOW_CONCURRENT_ARTIFACT_TRANSFERS",
    doc="Proxied artifact transfers per pod (all its processes together).",
    default=2,
    high=64,
)
CONCURRENT_SIGN_IN_CHECKS = Integer(
    name="MLFLOW_CONCURRENT_SIGN_IN_CHECKS",
    doc="Password checks a process runs at once: scrypt takes 32 MiB and about 67 ms of CPU "
    "each (bench/server.py); more at once only queues them on the CPU.",
    default=2,
    high=16,
)
SIGN_IN_FAILURES_PER_MINUTE = Integer(
    name="MLFLOW_SIGN_IN_FAILURES_PER_MINUTE",
    doc="Failed password checks per minute for one login from one source before 429.",
    default=10,
    high=10000,
)
HEADER_TIMEOUT_SECONDS = Integer(
    name="MLFLOW_HEADER_TIMEOUT_SECONDS",
    doc="A connection must complete its request line and headers this long after it opens or "
    "after its previous response. Not in the ConfigMap: the default suits every deployment; "
    "tests shorten it.",
    default=20,
    high=600,
    unit="seconds",
)

# ---- gc (the CronJob) ------------------------------------------------------------------------

GC_OLDER_THAN = Text(
    name="MLFLOW_GC_OLDER_THAN",
    doc="`mlflow gc --older-than`: only what was deleted longer ago than this.",
    # #d#h#m#s, each part optional, numbers may have decimals.
    pattern=r"(?=.)(\d+(\.\d+)?d)?(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?",
    meaning="a duration such as 30d or 1d12h (#d#h#m#s); without one, gc would remove every "
    "deleted run at once",
    required=True,
)
GC_TRACKING_URI = Text(
    name="MLFLOW_GC_TRACKING_URI",
    doc="The tracking server's URL: proxied artifacts are deleted through it.",
    pattern=r"https?://.+",
    meaning="the tracking server's http(s) URL (proxied artifacts are deleted through it)",
    required=True,
)
GC_TIMEOUT_SECONDS = Integer(
    name="MLFLOW_GC_TIMEOUT_SECONDS",
    doc="A gc run's time limit, from the launcher's start; what is left is the next run's.",
    default=3000,
    unit="seconds",
)
HTTP_REQUEST_TIMEOUT = Integer(
    name="MLFLOW_HTTP_REQUEST_TIMEOUT",
    doc="Each of gc's requests to the tracking server (MLflow's client default, made explicit).",
    default=120,
    unit="seconds",
    read_by="MLflow's client",
)
HTTP_REQUEST_MAX_RETRIES = Integer(
    name="MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    doc="Retries of each of gc's requests (MLflow's client tries 7 times by default: one "
    "request that never gets an answer would cost a run a quarter of an hour).",
    default=2,
    low=0,
    read_by="MLflow's client",
)

# ---- verify (the deploy check's Job) ---------------------------------------------------------

VERIFY_TARGETS = TextList(
    name="MLFLOW_VERIFY_TARGETS",
    doc="Base URLs of the server to check (comma-separated).",
    required=True,
)
VERIFY_TIMEOUT_SECONDS = Number(
    name="MLFLOW_VERIFY_TIMEOUT_SECONDS",
    doc="How long each target may take to start answering: load balancer targets register, "
    "DNS propagates and pods start within minutes of a deploy.",
    default=600.0,
)
VERIFY_LOGS_COMMAND = Text(
    name="MLFLOW_VERIFY_LOGS_COMMAND", doc="The command that shows the server's log."
)
VERIFY_SIGNAL_URL = Text(
    name="MLFLOW_VERIFY_SIGNAL_URL",
    doc="Where the outcome is reported (a CloudFormation wait condition's presigned URL).",
)
VERIFY_DEPLOYMENT = Text(
    name="MLFLOW_VERIFY_DEPLOYMENT", doc="The Deployment whose rollout the check waits for."
)
VERIFY_NAMESPACE = Text(name="MLFLOW_VERIFY_NAMESPACE", doc="Its namespace.")
VERIFY_IMAGE = Text(name="MLFLOW_VERIFY_IMAGE", doc="The image its new pod template runs.")
VERIFY_POD_ANNOTATION = Text(
    name="MLFLOW_VERIFY_POD_ANNOTATION",
    doc="An annotation (<name>=<value>) its new pod template carries.",
)
VERIFY_ROLLOUT_TIMEOUT_SECONDS = Number(
    name="MLFLOW_VERIFY_ROLLOUT_TIMEOUT_SECONDS",
    doc="How long the rollout may take.",
    default=1800.0,
)

SSO_CLIENT_SECRET_ID = Text(
    name="MLFLOW_SSO_CLIENT_SECRET_ID",
    doc="`sync-sso-secret`: the Secrets Manager secret holding the IdP client's clientID and "
    "clientSecret.",
    pattern=r"arn:aws(-[a-z]+)*:secretsmanager:[a-z]{2}(-[a-z]+)+-\d:\d{12}:secret:\S+",
    meaning="a Secrets Manager secret ARN",
    required=True,
)
SSO_SECRET_NAME = Text(
    name="MLFLOW_SSO_SECRET_NAME",
    doc="`sync-sso-secret`: the Kubernetes Secret the load balancer controller reads them from.",
    required=True,
)
SSO_SECRET_NAMESPACE = Text(
    name="MLFLOW_SSO_SECRET_NAMESPACE", doc="`sync-sso-secret`: its namespace.", required=True
)


def declared() -> dict[str, Variable[Any]]:
    """Every declared variable, by name."""
    return {v.name: v for v in globals().values() if isinstance(v, Variable)}
