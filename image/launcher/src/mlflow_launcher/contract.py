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
import json
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
class Boolean(Variable[bool]):
    """`true` or `false` (MLflow's own boolean variables admit these too)."""

    def what(self) -> str:
        return "true or false"

    def convert(self, text: str) -> bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"

    def format(self, value: bool) -> str:
        return "true" if value else "false"


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
    doc="The server's bound on one statement (PostgreSQL's statement_timeout, libmariadb's "
    "read and write timeouts); migrations get none.",
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
METRICS_PATH = "/metrics"
"""Not variables: where the `metrics` container serves, and its deadlines per connection, which
a scraper's timeout must cover (the chart's ServiceMonitor counts them)."""
METRICS_REQUEST_SECONDS = 5.0
"""From the accept to the end of the request's headers. A client that sends nothing, or
dribbles its headers (slowloris), is closed then; a scraper sends its request at once."""
METRICS_RESPONSE_SECONDS = 10.0
"""To sum the counters and hand the answer over (Prometheus' default scrape timeout); a client
that does not read is closed then."""
ENABLE_WORKSPACES = Boolean(
    name="MLFLOW_ENABLE_WORKSPACES",
    doc="MLflow's workspaces (`mlflow server --enable-workspaces`; `mlflow gc` reads it too): "
    "experiments, models, prompts and datasets scoped by the X-MLFLOW-WORKSPACE header. Off, "
    "the server refuses to start while any of them lives outside the `default` workspace.",
    default=False,
    read_by="MLflow and the launcher",
)

# ---- MLflow's job execution (GenAI jobs) ------------------------------------------------------
# Scorer and judge runs, GenAI evaluation, issue detection, prompt optimization and the periodic
# tasks (online scoring, trace archival) run as MLflow jobs (mlflow/server/jobs/). Each API pod's
# workers only record a job as a row of the backend's `jobs` table (MLflow's executor engine,
# MLFLOW_SERVER_JOB_EXECUTION_ENGINE=executor); one job-runner pod claims the rows and runs them
# and the periodic tasks, so nothing runs twice and nothing lives in one pod's /dev/shm.
JOB_ROLE = Choice(
    name="MLFLOW_JOB_ROLE",
    doc="This pod's part in MLflow's job execution: `off`, none (MLflow's job endpoints answer "
    "that execution is off); `submit`, an API pod: its workers record jobs for the runner and run "
    "none; `run`, the one job-runner pod: it claims and runs the jobs and the periodic tasks.",
    choices=("off", "submit", "run"),
    default="off",
)
ENABLE_CUSTOM_SCORERS = Boolean(
    name="MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS",
    doc="Whether jobs may run `@scorer` functions, whose code a user sends with the request "
    "(jobs.custom_scorers): MLflow refuses them at submission unless this is true.",
    default=False,
    read_by="MLflow",
)

JUDGE_INVOKE_MAX_WORKERS = Integer(
    name="MLFLOW_SERVER_JUDGE_INVOKE_MAX_WORKERS",
    doc="Jobs of each judge kind (scorer runs, GenAI evaluation, issue detection) the runner "
    "runs at once, each in a process of its own (MLflow's default: 10): the chart sizes it "
    "from the runner's memory.",
    high=10,
    read_by="MLflow",
)
ONLINE_SCORING_MAX_WORKERS = Integer(
    name="MLFLOW_SERVER_ONLINE_SCORING_MAX_WORKERS",
    doc="Online-scoring jobs of each kind (trace, session) the runner runs at once (MLflow's "
    "default: 5): the chart sizes it with the judges'.",
    high=10,
    read_by="MLflow",
)
TRACE_ARCHIVAL_RETENTION = Text(
    name="MLFLOW_TRACE_ARCHIVAL_RETENTION",
    doc="Move the span payloads of traces older than this out of the database into "
    "MLFLOW_TRACE_ARCHIVAL_LOCATION (MLflow's server-owned trace archival; the job runner's "
    "periodic task does it, every pod reads archived traces back). Unset: no archival.",
    # MLflow's own check (mlflow/utils/validation.py, _TRACE_ARCHIVAL_RETENTION_REGEX).
    pattern=r"[1-9][0-9]{0,5}[mhd]",
    meaning="a duration such as 30d, 12h or 90m (<int><unit>, unit m, h or d)",
)
TRACE_ARCHIVAL_LOCATION = Text(
    name="MLFLOW_TRACE_ARCHIVAL_LOCATION",
    doc="Where archived spans go: a prefix of the artifact bucket the server's role may write "
    "(the chart's: under MLFLOW_ARTIFACTS_DESTINATION). MLflow checks it at start.",
)
TRACE_ARCHIVAL_INTERVAL_SECONDS = Integer(
    name="MLFLOW_TRACE_ARCHIVAL_INTERVAL_SECONDS",
    doc="How often the job runner looks for traces to archive (MLflow's default: 300).",
    default=300,
    low=60,  # MLflow's scheduler polls once a minute
    high=86400,  # MLflow's maximum (_TRACE_ARCHIVAL_INTERVAL_SECONDS_MAX)
    unit="seconds",
)
TRACE_ARCHIVAL = (
    TRACE_ARCHIVAL_RETENTION,
    TRACE_ARCHIVAL_LOCATION,
    TRACE_ARCHIVAL_INTERVAL_SECONDS,
)

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
AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS = Boolean(
    name="MLFLOW_AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS",
    doc="With workspaces on: whether a user with no role in the `default` workspace gets "
    "MLFLOW_AUTH_DEFAULT_PERMISSION there (MLflow's grant_default_workspace_access). Without "
    "it, only users given a role there see anything in it.",
    default=True,
)
AUTH = (
    AUTH_ADMIN_SECRET_ID,
    AUTH_FLASK_SECRET_ID,
    AUTH_KEK_SECRET_ID,
    AUTH_DEFAULT_PERMISSION,
    AUTH_DB_NAME,
)
"""All set, or none (authentication off). The cache and the workspace grant are optional."""

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
MIN_UPLOAD_PART_MIB = 8
"""boto3's default part size (S3's minimum is 5 MiB): fewer, larger parts cost memory, smaller
ones requests."""
MAX_UPLOAD_PARTS = 10_000
"""S3's limit on a multipart upload's parts."""


def upload_part_mib(max_artifact_mib: int) -> int:
    """The part size of a proxied upload streamed to S3 (mlflow_launcher/s3_stream.py), which
    the chart's memory rule counts too: the largest artifact allowed fits in S3's 10,000
    parts; 8 MiB up to 78 GiB, whole MiB above that."""
    return max(MIN_UPLOAD_PART_MIB, math.ceil(max_artifact_mib / MAX_UPLOAD_PARTS))


UPLOAD_PARTS_SENT_AT_ONCE = 3
"""Parts of one streamed upload sent to S3 at once. bench/artifacts.py, 128 MiB through the
server to an S3 stand-in over HTTPS on loopback, one run each of 10-15 rounds, medians of the
per-round ratios to boto3's speed (bench/README.md, item 5): 0.77x with 2, 0.85x with 3,
0.85-0.89x with 4, 0.91x with 6, the server's PSS growing by up to 41, 48, 53-62 and 72 MiB
(over HTTP, earlier: 0.38x with 1). Three: most of the gain, and the default memory limit
still holds 3 transfer slots (k8s_charts/rules.py; with 4 it would not). One more part is read
from the client meanwhile, and one joined from its chunks: an upload holds up to
UPLOAD_PARTS_HELD parts, which the chart's memory rule counts per transfer slot."""
UPLOAD_PARTS_HELD = UPLOAD_PARTS_SENT_AT_ONCE + 2
UPLOAD_SENDER_MIB = 5
"""What each thread sending a part holds beyond the part itself (botocore's aws-chunked frames
of it, TLS buffers, its malloc arena), which the chart's memory rule counts too: the server's
PSS grew by up to 62 MiB per upload (bench/artifacts.py, 8 MiB parts, 4 sent at once) where
its parts and the guard's message come to 49, and by up to 53.4 MiB with 3 sent (41; mostly
21-44, the most on a server's first upload)."""
UPLOAD_MESSAGE_MIB = 1
"""The guard hands a proxied upload's body to MLflow's app in messages of this size, joined from
uvicorn's pieces (64-256 KiB each): every message MLflow's app receives passes its three
BaseHTTPMiddleware layers, each of which opens an anyio task group for it. Measured
(bench/README.md, item 5): 128 MiB through three such layers cost 0.42 s of CPU in pieces and
0.11 s in 1 MiB messages. The chart's memory rule counts the one message being joined per
transfer slot, beside UPLOAD_PARTS_HELD."""


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
CLIENT_STALL_SECONDS = Integer(
    name="MLFLOW_CLIENT_STALL_SECONDS",
    doc="A request's client must send each MiB of its body, and take each MiB of the answer, "
    "within this many seconds of the server waiting for it (under 17 KiB/s at the default); "
    "otherwise it is taken to have left (guard/stall.py). Not in the ConfigMap: the default "
    "is the ALB's idle timeout, and a slower client is not one the server should wait for; "
    "tests shorten it.",
    default=60,
    high=3600,
    unit="seconds",
)

# ---- What a user adds to `mlflow server` (server.extra_args, server.extra_env) -------------
# For what MLflow grows next: arguments appended to `mlflow server`'s and variables added to its
# environment. Checked here, once: by the chart at synth (naming the config key), by the
# launcher at start (naming the variable). Refused: what the launcher sets or relies on, in
# every spelling MLflow's CLI (click) accepts, and anything that looks like a secret (the
# config file, the templates and the ConfigMap are plain text to whoever reads them).


@dataclass(frozen=True, kw_only=True)
class Flag:
    """An option of `mlflow server` that extra arguments may not give: its every spelling
    (long, short, negated) and the variable click also reads it from."""

    names: tuple[str, ...]
    why: str
    envvar: str | None = None

    @property
    def name(self) -> str:
        return self.names[0]

    def given_by(self, arg: str) -> bool:
        """Whether `arg` gives this option: `--host`, `--host=x`, `-h`, `-hx` (click's forms;
        it expands no abbreviation)."""
        return any(
            arg == name or arg.startswith(f"{name}=")
            if name.startswith("--")
            else arg.startswith(name)
            for name in self.names
        )


# The options `serve` passes (mlflow_launcher.server builds its argv from these), with the
# variables MLflow's CLI reads them from (mlflow/cli/__init__.py, mlflow/utils/cli_args.py).
HOST_FLAG = Flag(
    names=("--host", "-h"), envvar="MLFLOW_HOST", why="the pod's address, which the Services reach"
)
PORT_FLAG = Flag(
    names=("--port", "-p"), envvar="MLFLOW_PORT", why="the port the probes and Services use"
)
WORKERS_FLAG = Flag(names=("--workers", "-w"), envvar="MLFLOW_WORKERS", why="set server.workers")
SERVE_ARTIFACTS_FLAG = Flag(
    names=("--serve-artifacts", "--no-serve-artifacts"),
    envvar="MLFLOW_SERVE_ARTIFACTS",
    why="clients send and fetch artifacts through the server (they hold no AWS credentials)",
)
ARTIFACTS_DESTINATION_FLAG = Flag(
    names=("--artifacts-destination",),
    envvar="MLFLOW_ARTIFACTS_DESTINATION",
    why="the deployment's bucket, which the server's role may use",
)
ALLOWED_HOSTS_FLAG = Flag(
    names=("--allowed-hosts",),
    envvar="MLFLOW_SERVER_ALLOWED_HOSTS",
    why="the Services' and load balancers' names; add yours to server.allowed_hosts",
)
CORS_ALLOWED_ORIGINS_FLAG = Flag(
    names=("--cors-allowed-origins",),
    envvar="MLFLOW_SERVER_CORS_ALLOWED_ORIGINS",
    why="made from the served names; add yours to server.allowed_hosts",
)
APP_NAME_FLAG = Flag(
    names=("--app-name",), why="the launcher's app: MLflow behind its request guard and sign-in"
)
BACKEND_STORE_URI_FLAG = Flag(
    names=("--backend-store-uri",),
    envvar="MLFLOW_BACKEND_STORE_URI",
    why="made from the database's secret, into the environment only",
)
READ_REPLICA_URI_FLAG = Flag(
    names=("--read-replica-backend-store-uri",),
    envvar="MLFLOW_READ_REPLICA_BACKEND_STORE_URI",
    why="made from the database's secret for database.read_replica",
)
EXPOSE_PROMETHEUS_FLAG = Flag(
    names=("--expose-prometheus",),
    envvar=EXPOSE_PROMETHEUS.name,
    why="the directory the `metrics` container reads the counters from",
)
# No click envvar: MLflow reads MLFLOW_ENABLE_WORKSPACES itself (a declared variable, so the
# extras refuse it too).
ENABLE_WORKSPACES_FLAG = Flag(
    names=("--enable-workspaces", "--disable-workspaces"),
    why="set server.workspaces: the launcher checks the database against it before the start",
)
TRACE_ARCHIVAL_CONFIG_FLAG = Flag(
    names=("--trace-archival-config",),
    envvar="MLFLOW_TRACE_ARCHIVAL_CONFIG",
    why="the launcher writes the file from jobs.trace_archival_after",
)
LAUNCHER_FLAGS = (
    HOST_FLAG,
    PORT_FLAG,
    WORKERS_FLAG,
    SERVE_ARTIFACTS_FLAG,
    ARTIFACTS_DESTINATION_FLAG,
    ALLOWED_HOSTS_FLAG,
    CORS_ALLOWED_ORIGINS_FLAG,
    APP_NAME_FLAG,
    BACKEND_STORE_URI_FLAG,
    READ_REPLICA_URI_FLAG,
    EXPOSE_PROMETHEUS_FLAG,
    ENABLE_WORKSPACES_FLAG,
    TRACE_ARCHIVAL_CONFIG_FLAG,
)
"""What the launcher sets: argv, or the environment (the store URIs, the counters' path)."""
_UVICORN = "the launcher runs MLflow's uvicorn with its request guard (the header deadline)"
REFUSED_FLAGS = (
    *LAUNCHER_FLAGS,
    Flag(
        names=("--disable-security-middleware",),
        envvar="MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE",
        why="it turns off MLflow's Host and origin checks (DNS rebinding, CSRF)",
    ),
    Flag(
        names=("--uvicorn-opts",),
        envvar="MLFLOW_UVICORN_OPTS",
        why=f"{_UVICORN}; these would override it",
    ),
    Flag(
        names=("--gunicorn-opts",),
        envvar="MLFLOW_GUNICORN_OPTS",
        why=f"{_UVICORN}; this replaces uvicorn",
    ),
    Flag(names=("--waitress-opts",), why=f"{_UVICORN}; this replaces uvicorn"),
    Flag(names=("--dev",), why=f"{_UVICORN}; this runs it with auto-reload"),
    Flag(
        names=("--static-prefix",),
        envvar="MLFLOW_STATIC_PREFIX",
        why="it moves /health, which the probes, load balancers and deploy check call",
    ),
    Flag(
        names=("--artifacts-only",),
        envvar="MLFLOW_ARTIFACTS_ONLY",
        why="it turns off the tracking API, which the deploy check and gc use",
    ),
    Flag(
        names=("--registry-store-uri",),
        envvar="MLFLOW_REGISTRY_STORE_URI",
        why="the model registry lives in the backend store, which the launcher migrates and "
        "checks and RDS backs up",
    ),
    Flag(
        names=("--default-artifact-root",),
        envvar="MLFLOW_DEFAULT_ARTIFACT_ROOT",
        why="new experiments' artifacts go through the server to the deployment's bucket "
        "(mlflow-artifacts:/); another root would bypass its grants and bounds",
    ),
)
"""What extra arguments may not give: the launcher's, and what would undo them."""

_FROM_SECRETS_MANAGER = (
    "the launcher reads it from its secret in AWS Secrets Manager (auth section)"
)
_UVICORN_ARGV = "MLflow gives uvicorn --host, --port and --workers on its command line, which wins"
SERVER_VARIABLES = {
    "MLFLOW_LOGGING_LEVEL": "the launcher sets it from server.log_level",
    "UVICORN_LOG_LEVEL": "the launcher sets it from server.log_level",
    "UVICORN_HTTP": "the launcher's request guard (the header deadline)",
    "MLFLOW_ON_EKS_AUTH": "the launcher turns sign-in on with it (auth.enabled)",
    "MLFLOW_AUTH_CONFIG_PATH": "the launcher writes sign-in's config file (auth section)",
    "MLFLOW_AUTH_ADMIN_USERNAME": _FROM_SECRETS_MANAGER,
    "MLFLOW_AUTH_ADMIN_PASSWORD": _FROM_SECRETS_MANAGER,
    "MLFLOW_FLASK_SERVER_SECRET_KEY": _FROM_SECRETS_MANAGER,
    "MLFLOW_CRYPTO_KEK_PASSPHRASE": _FROM_SECRETS_MANAGER,
    "MLFLOW_S3_ENDPOINT_URL": "stays unset on AWS: the server reaches S3 with its role at the "
    "Region's endpoint",
    "UVICORN_HOST": _UVICORN_ARGV,
    "UVICORN_PORT": _UVICORN_ARGV,
    "UVICORN_WORKERS": _UVICORN_ARGV,
    "UVICORN_UDS": "uvicorn would listen there instead of the pod's port",
    "UVICORN_FD": "uvicorn would listen there instead of the pod's port",
    "UVICORN_RELOAD": "uvicorn's development mode: one process, restarted on file changes",
    "UVICORN_SSL_CERTFILE": "the probes and load balancers speak plain HTTP to the pod",
    "UVICORN_SSL_KEYFILE": "the probes and load balancers speak plain HTTP to the pod",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "the launcher sets it from MLFLOW_JOB_ROLE "
    "(jobs.enabled): on in the one runner pod and in the API pods' workers, never in an API "
    "pod's CLI, which would start a runner of its own",
    "MLFLOW_SERVER_JOB_EXECUTION_ENGINE": "the launcher sets it from MLFLOW_JOB_ROLE: the executor "
    "engine, whose jobs are rows in the database; the default engine's queue is per pod",
    "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS": "the launcher sets it from MLFLOW_JOB_ROLE: "
    "periodic tasks (online scoring) run in the one runner pod, once per deployment",
    "MLFLOW_SERVER_JOB_HUEY_REDIS_URL": "the default engine's shared queue; the launcher runs the "
    "executor engine, whose queue is the database",
    "_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN": "the launcher makes one per start of the runner pod: "
    "its jobs' password for its own /gateway/",
}
"""What `serve` sets in the server's environment (mlflow_launcher.server, auth) or needs left
as it is, besides the contract's variables and the refused flags' (a unit test holds `serve`'s
environment to this)."""
IMAGE_VARIABLES = (
    "PATH",
    "HOME",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "MPLCONFIGDIR",
    "MLFLOW_TMP_DIR",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PYTHONPATH",
    "PYTHONHOME",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
)
"""The image's (image/Dockerfile's ENV: its paths on the pod's only writable volume) and where
its code comes from."""
POD_IDENTITY_VARIABLES = (
    # IRSA: the EKS Pod Identity Webhook injects these (github.com/aws/
    # amazon-eks-pod-identity-webhook, README); AWS_REGION and AWS_DEFAULT_REGION are above.
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_STS_REGIONAL_ENDPOINTS",
    # EKS Pod Identity's agent (docs.aws.amazon.com/eks/latest/userguide/pod-id-how-it-works.html).
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    # What botocore's credential chain would take before them.
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
"""The pod's AWS identity: its IAM role (IRSA), whose grants are the deployment's."""
KUBERNETES_PREFIX = "KUBERNETES_"
"""The kubelet's (the API server's address)."""
MLFLOW_PRIVATE_PREFIX = "_MLFLOW_"
"""MLflow's own, between its CLI and its workers."""

WHERE_SECRETS_GO = (
    "the config, the templates and the ConfigMap are plain text to whoever reads them: the "
    "database and sign-in credentials come from AWS Secrets Manager, and API keys for MLflow's "
    "AI gateway belong in MLflow's encrypted secret store (its UI or API)"
)
_SECRET_WORDS = frozenset(
    {
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "KEY",
        "APIKEY",
        "CREDENTIAL",
        "CREDENTIALS",
    }
)
_SECRET_VALUES = {
    "a URL with a password": re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@"),
    "an AWS access key ID": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    "a private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A portable variable name (POSIX): what every shell and program in the image can read."""


def _secret_name(name: str) -> bool:
    """A name with a word such as PASSWORD, TOKEN or KEY in it (words split at `_` or `-`;
    DBPASSWORD and CLIENTSECRET count too)."""
    words = re.split(r"[_-]+", name.upper())
    return any(
        word in _SECRET_WORDS or word.endswith(("PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY"))
        for word in words
    )


def secret_value_problem(value: str) -> str | None:
    """Why `value` looks like a credential, or None."""
    for what, pattern in _SECRET_VALUES.items():
        if pattern.search(value):
            return f"looks like a secret ({what}); {WHERE_SECRETS_GO}"
    return None


def _refusal(flag: Flag) -> str:
    whose = "the launcher's" if flag in LAUNCHER_FLAGS else "refused"
    return f"{flag.name} is {whose}: {flag.why}"


def extra_arg_problem(arg: str) -> str | None:
    """Why a user may not give `mlflow server` the argument `arg`, or None."""
    problems = [_refusal(flag) for flag in REFUSED_FLAGS if flag.given_by(arg)]
    option = arg.partition("=")[0]
    if option.startswith("--") and _secret_name(option.lstrip("-")):
        problems.append(f"{option} looks like it takes a secret; {WHERE_SECRETS_GO}")
    elif secret := secret_value_problem(arg):
        problems.append(secret)
    return "; ".join(problems) or None


def owned_variables() -> dict[str, str]:
    """Each variable the launcher, the chart, the image or the pod's identity sets, with why."""
    owned = {name: "the chart sets it for the launcher (its contract)" for name in declared()}
    owned |= {
        flag.envvar: f"MLflow reads it as {flag.name}, and {_refusal(flag)}"
        for flag in REFUSED_FLAGS
        if flag.envvar
    }
    owned |= SERVER_VARIABLES
    owned |= {name: "the image's own" for name in IMAGE_VARIABLES}
    owned |= {
        name: "the pod's AWS identity is its IAM role (IRSA), whose grants are the deployment's"
        for name in POD_IDENTITY_VARIABLES
    }
    return owned


def extra_env_name_problem(name: str) -> str | None:
    """Why a user may not set variable `name` for the server, or None."""
    if not ENV_NAME.fullmatch(name):
        return "is not a variable name: letters, digits and _, not starting with a digit"
    why = owned_variables().get(name)
    if why is None and name.startswith(KUBERNETES_PREFIX):
        why = "the kubelet sets it"
    if why is None and name.startswith(MLFLOW_PRIVATE_PREFIX):
        why = "MLflow's own, between its CLI and its workers"
    if why is not None:
        return f"is not yours to set: {why}"
    if _secret_name(name):
        return f"looks like it holds a secret; {WHERE_SECRETS_GO}"
    return None


@dataclass(frozen=True, kw_only=True)
class Json(Variable[T]):
    """A JSON document, each problem named by where it is (`NAME[2]`, `NAME.KEY`). Its value
    is never repeated in a message: a refused one may be a secret pasted by mistake."""

    def problems(self, value: object) -> list[str]:
        """What is wrong with the parsed document, each as `<where>: <why>`."""
        return []

    def parse(self, env: Mapping[str, str]) -> T | None:
        text = env.get(self.name, "").strip()
        if not text:
            return self.default
        try:
            value = json.loads(text)
        except ValueError:
            raise ContractError(f"{self.name} must be {self.what()}: it is not JSON") from None
        problems = self.problems(value)
        if problems:
            raise ContractError("; ".join(f"{self.name}{problem}" for problem in problems))
        return self.convert(value)  # type: ignore[arg-type]

    def format(self, value: T) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, kw_only=True)
class ArgList(Json[tuple[str, ...]]):
    def what(self) -> str:
        return "a JSON array of strings"

    def problems(self, value: object) -> list[str]:
        if not isinstance(value, list):
            return [f" must be {self.what()}"]
        return [
            f"[{i}]: {'is not a string' if not isinstance(arg, str) else extra_arg_problem(arg)}"
            for i, arg in enumerate(value)
            if not isinstance(arg, str) or extra_arg_problem(arg)
        ]

    def convert(self, value: Any) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(value)

    def format(self, value: tuple[str, ...]) -> str:
        return super().format(list(value))


@dataclass(frozen=True, kw_only=True)
class EnvMap(Json[dict[str, str]]):
    def what(self) -> str:
        return "a JSON object of variable names to strings"

    def problems(self, value: object) -> list[str]:
        if not isinstance(value, dict):
            return [f" must be {self.what()}"]
        problems = []
        for name, text in value.items():
            why = extra_env_name_problem(name)
            if why is None:
                why = "is not a string" if not isinstance(text, str) else secret_value_problem(text)
            if why:
                problems.append(f".{name}: {why}")
        return problems

    def convert(self, value: Any) -> dict[str, str]:  # type: ignore[override]
        return dict(value)


SERVER_EXTRA_ARGS = ArgList(
    name="MLFLOW_SERVER_EXTRA_ARGS",
    doc="Arguments `serve` appends to `mlflow server`'s (server.extra_args), each one argv "
    "item: no shell reads them.",
    default=(),
)
SERVER_EXTRA_ENV = EnvMap(
    name="MLFLOW_SERVER_EXTRA_ENV",
    doc="Variables `serve` adds to `mlflow server`'s environment (server.extra_env); the "
    "launcher's own win. Default: none.",
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


def _connect_to_item(item: str) -> None:
    name, equals, address = item.partition("=")
    if not (equals and name.strip() and address.strip()) or "=" in address:
        raise ValueError(item)


VERIFY_CONNECT_TO = TextList(
    name="MLFLOW_VERIFY_CONNECT_TO",
    doc="<name>=<address> pairs: a target named <name> is reached at <address>, <name> kept "
    "for TLS (SNI, the certificate's check) and Host, as curl's --connect-to does: a "
    "certificate's name, served by a load balancer known by its own DNS name.",
    meaning="comma-separated <name>=<address> pairs",
    item=_connect_to_item,
)
VERIFY_CA_BUNDLE = Text(
    name="MLFLOW_VERIFY_CA_BUNDLE",
    doc="PEM certificates of the CAs the https targets' certificates must chain to, instead "
    "of the public roots.",
    pattern=r"(?s)-----BEGIN CERTIFICATE-----.+-----END CERTIFICATE-----",
    meaning="PEM certificates (-----BEGIN CERTIFICATE----- ...)",
)


def declared() -> dict[str, Variable[Any]]:
    """Every declared variable, by name."""
    return {v.name: v for v in globals().values() if isinstance(v, Variable)}
