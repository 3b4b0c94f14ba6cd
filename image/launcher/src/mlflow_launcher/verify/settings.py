"""What `verify` reads from its environment, and the values it must keep out of the logs."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, MutableSequence
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from mlflow_launcher import contract, redaction, secret
from mlflow_launcher.auth import ADMIN_SECRET_ENV
from mlflow_launcher.errors import LauncherError

TARGETS_ENV = contract.VERIFY_TARGETS.name
TIMEOUT_ENV = contract.VERIFY_TIMEOUT_SECONDS.name
SIGNAL_URL_ENV = contract.VERIFY_SIGNAL_URL.name
LOGS_COMMAND_ENV = contract.VERIFY_LOGS_COMMAND.name
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 - a variable's name
# The rollout the check waits for first (the chart sets all of them, or none for a check of
# whatever serves the targets now).
DEPLOYMENT_ENV = contract.VERIFY_DEPLOYMENT.name
NAMESPACE_ENV = contract.VERIFY_NAMESPACE.name
IMAGE_ENV = contract.VERIFY_IMAGE.name
POD_ANNOTATION_ENV = contract.VERIFY_POD_ANNOTATION.name
ROLLOUT_TIMEOUT_ENV = contract.VERIFY_ROLLOUT_TIMEOUT_SECONDS.name
CONNECT_TO_ENV = contract.VERIFY_CONNECT_TO.name
CA_BUNDLE_ENV = contract.VERIFY_CA_BUNDLE.name

T = TypeVar("T")


@dataclass(frozen=True)
class RolloutEnvironment:
    """The Deployment this deploy applied, and how long its rollout may take."""

    namespace: str
    name: str
    image: str
    """Every container of this deploy's pod template runs it (the asset's content hash)."""
    annotation: tuple[str, str] | None
    """A pod template annotation this deploy set (the config digest): name and value."""
    timeout_seconds: float


@dataclass(frozen=True)
class VerifyEnvironment:
    targets: tuple[str, ...]
    """Base URLs, without credentials and without a default port (as browsers send Host)."""
    timeout_seconds: float
    """How long each target may take to start answering."""
    credentials: tuple[str, str] | None
    """Username and password, which the MLflow client reads from MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD itself."""
    credentials_from: str = f"{USERNAME_ENV}/{PASSWORD_ENV}"
    """Where they came from, for a reason that says which login was refused."""
    rollout: RolloutEnvironment | None = None
    """The rollout to wait for before the targets are checked. Default: none."""
    connect_to: dict[str, str] = field(default_factory=dict)
    """Target host name -> the address it is reached at, the name kept for TLS and Host (the
    certificate's name -> the load balancer's). Default: none, every name resolved."""
    ca_bundle: str | None = None
    """PEM certificates of the CAs https targets must chain to. Default: the public roots."""

    def trusted(self) -> str:
        """What an https target's certificate must chain to, in words (for a reason)."""
        return f"the CAs in {CA_BUNDLE_ENV}" if self.ca_bundle else "a public root CA"


def secret_forms(env: Mapping[str, str]) -> list[str]:
    """What must never reach a log: the signal URL (a capability: whoever has it can decide
    the deploy's outcome) and the tracking password, in the forms they could appear in."""
    forms: list[str] = []
    url = env.get(SIGNAL_URL_ENV, "").strip()
    if url:
        query = urlsplit(url).query
        # Of the parameters, only the signature and a session token: masking every value
        # would also mask words such as "host" (X-Amz-SignedHeaders=host) in every message.
        forms += [url, query]
        for raw in query.split("&"):
            name, _, value = raw.partition("=")
            if "signature" in name.lower() or "token" in name.lower():
                forms += [value, *(v for _, v in parse_qsl(raw))]  # as sent, and decoded
    password = env.get(PASSWORD_ENV, "")
    if password:
        user_pass = f"{env.get(USERNAME_ENV, '')}:{password}".encode()
        forms += [*redaction.forms(password), base64.b64encode(user_pass).decode()]
    return sorted({f for f in forms if len(f) >= redaction.SHORTEST}, key=len, reverse=True)


def load_signal_url(env: Mapping[str, str]) -> str | None:
    value = env.get(SIGNAL_URL_ENV, "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Never echo the value: it is a capability.
        raise LauncherError(f"{SIGNAL_URL_ENV} is set but is not an http(s) URL")
    return value


def parse_target(value: str) -> str:
    """`value` as a base URL; a ValueError says what is wrong with it."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("carries credentials (use MLFLOW_TRACKING_USERNAME/PASSWORD)")
    if parts.query or parts.fragment:
        raise ValueError("has a query or fragment (give the server's base URL)")
    port = parts.port  # raises ValueError for a port that is not a number
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"


def load(env: Mapping[str, str]) -> VerifyEnvironment:
    """Every problem at once, each naming its variable."""
    problems: list[str] = []
    targets: list[str] = []
    entries = [e.strip() for e in env.get(TARGETS_ENV, "").split(",") if e.strip()]
    if not entries:
        problems.append(f"{TARGETS_ENV} is not set (comma-separated base URLs of the server)")
    for index, entry in enumerate(entries, start=1):
        try:
            target = parse_target(entry)
        except ValueError as exc:
            shown = f"entry {index}" if "@" in entry else repr(entry)
            problems.append(f"{TARGETS_ENV}: {shown} {exc}")
        else:
            targets.append(target)
    timeout = _parsed(env, contract.VERIFY_TIMEOUT_SECONDS, problems)
    rollout = _rollout(env, problems)
    connect_to = _connect_to(env, targets, problems)
    ca_bundle = _parsed(env, contract.VERIFY_CA_BUNDLE, problems)
    if problems:
        raise LauncherError("; ".join(problems))
    username, password = env.get(USERNAME_ENV, ""), env.get(PASSWORD_ENV, "")
    credentials = (username, password) if username or password else None
    return VerifyEnvironment(
        tuple(dict.fromkeys(targets)),
        timeout,
        credentials,
        rollout=rollout,
        connect_to=connect_to,
        ca_bundle=ca_bundle,
    )


def _connect_to(env: Mapping[str, str], targets: list[str], problems: list[str]) -> dict[str, str]:
    """Each pair's name must be a target's host: a pair for no target is a chart mistake that
    would otherwise check the name where DNS points it, not at the load balancer."""
    pairs = _parsed(env, contract.VERIFY_CONNECT_TO, problems) or ()
    hosts = {urlsplit(target).hostname for target in targets}
    addresses = {}
    for pair in pairs:
        name, _, address = pair.partition("=")
        name = name.strip().lower()
        if name not in hosts:
            problems.append(f"{CONNECT_TO_ENV}: {name} is not the host of any of {TARGETS_ENV}")
        addresses[name] = address.strip()
    return addresses


def _parsed(
    env: Mapping[str, str], variable: contract.Variable[T], problems: list[str]
) -> T | None:
    """`variable`'s value, or None with its problem added to `problems`."""
    try:
        return variable.parse(env)
    except contract.ContractError as error:
        problems.append(str(error))
        return None


def _rollout(env: Mapping[str, str], problems: list[str]) -> RolloutEnvironment | None:
    """None without MLFLOW_VERIFY_DEPLOYMENT: the check then uses whatever answers now."""
    name = env.get(DEPLOYMENT_ENV, "").strip()
    if not name:
        return None
    values = {key: env.get(key, "").strip() for key in (NAMESPACE_ENV, IMAGE_ENV)}
    for key, value in values.items():
        if not value:
            problems.append(f"{key} is not set ({DEPLOYMENT_ENV} names a Deployment to wait for)")
    annotation = None
    raw = env.get(POD_ANNOTATION_ENV, "").strip()
    if raw:
        key, equals, value = raw.partition("=")
        if not (equals and key and value):
            problems.append(f"{POD_ANNOTATION_ENV}={raw!r} is not <annotation>=<value>")
        annotation = (key, value)
    timeout = _parsed(env, contract.VERIFY_ROLLOUT_TIMEOUT_SECONDS, problems)
    return RolloutEnvironment(values[NAMESPACE_ENV], name, values[IMAGE_ENV], annotation, timeout)


def sign_in_as_admin(
    settings: VerifyEnvironment, env: Mapping[str, str], log_secrets: MutableSequence[str]
) -> VerifyEnvironment:
    """With authentication on, the chart names the admin login's secret instead of giving a
    login: read it (as the server does) and hand it to the MLflow client. A login given in
    MLFLOW_TRACKING_USERNAME/PASSWORD wins."""
    secret_id = env.get(ADMIN_SECRET_ENV, "").strip()
    if settings.credentials is not None or not secret_id:
        return settings
    region = env.get("AWS_REGION", "").strip() or None
    try:
        login = secret.fetch_credentials(secret_id, region=region)
    except LauncherError as exc:
        raise LauncherError(f"reading the admin login ({ADMIN_SECRET_ENV}): {exc}") from None
    log_secrets.extend(secret_forms({USERNAME_ENV: login.username, PASSWORD_ENV: login.password}))
    os.environ[USERNAME_ENV], os.environ[PASSWORD_ENV] = login.username, login.password
    return replace(
        settings,
        credentials=(login.username, login.password),
        credentials_from=f"the admin login in {ADMIN_SECRET_ENV}",
    )
