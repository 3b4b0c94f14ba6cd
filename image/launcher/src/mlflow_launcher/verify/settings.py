"""What `verify` reads from its environment, and the values it must keep out of the logs."""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Mapping, MutableSequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from mlflow_launcher import redaction, secret
from mlflow_launcher.auth import ADMIN_SECRET_ENV
from mlflow_launcher.errors import LauncherError

TARGETS_ENV = "MLFLOW_VERIFY_TARGETS"
TIMEOUT_ENV = "MLFLOW_VERIFY_TIMEOUT_SECONDS"
SIGNAL_URL_ENV = "MLFLOW_VERIFY_SIGNAL_URL"
LOGS_COMMAND_ENV = "MLFLOW_VERIFY_LOGS_COMMAND"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 - a variable's name

# Load balancer targets register, DNS propagates and pods start within minutes of a deploy.
DEFAULT_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class VerifySettings:
    targets: tuple[str, ...]
    """Base URLs, without credentials and without a default port (as browsers send Host)."""
    timeout_seconds: float
    """How long each target may take to start answering."""
    credentials: tuple[str, str] | None
    """Username and password, which the MLflow client reads from MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD itself."""
    credentials_from: str = f"{USERNAME_ENV}/{PASSWORD_ENV}"
    """Where they came from, for a reason that says which login was refused."""


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


def load(env: Mapping[str, str]) -> VerifySettings:
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
    timeout = DEFAULT_TIMEOUT_SECONDS
    raw_timeout = env.get(TIMEOUT_ENV, "").strip()
    if raw_timeout:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = math.nan
        if not (math.isfinite(timeout) and timeout > 0):
            problems.append(f"{TIMEOUT_ENV}={raw_timeout!r} is not a positive number of seconds")
    if problems:
        raise LauncherError("; ".join(problems))
    username, password = env.get(USERNAME_ENV, ""), env.get(PASSWORD_ENV, "")
    credentials = (username, password) if username or password else None
    return VerifySettings(tuple(dict.fromkeys(targets)), timeout, credentials)


def sign_in_as_admin(
    settings: VerifySettings, env: Mapping[str, str], log_secrets: MutableSequence[str]
) -> VerifySettings:
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
    return VerifySettings(
        settings.targets,
        settings.timeout_seconds,
        (login.username, login.password),
        f"the admin login in {ADMIN_SECRET_ENV}",
    )
