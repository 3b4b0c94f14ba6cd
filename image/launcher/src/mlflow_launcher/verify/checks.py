"""The plain HTTP checks of one target: /health, Host on the API, a browser-style write."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

from mlflow_launcher.errors import VerificationFailed
from mlflow_launcher.verify.messages import _cause, _mlflow_error, first_line, short_error
from mlflow_launcher.verify.settings import (
    ADMIN_SECRET_ENV,
    PASSWORD_ENV,
    USERNAME_ENV,
    VerifySettings,
)

log = logging.getLogger(__name__)

RETRY_INTERVAL_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 30.0
# What a load balancer, or a Service without ready pods behind it, answers while starting.
# (MLflow itself answers 503 when its database is unreachable: that is a verdict, see _answer.)
TRANSIENT_STATUSES = frozenset({502, 503, 504})

# An /api/ path: MLflow exempts /health and /version from its Host check.
HOST_CHECK_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
# The UI lists experiments with this POST, sending its page's Origin.
BROWSER_PATH = "/ajax-api/2.0/mlflow/experiments/search"
# MLflow's refusals (mlflow/server/security_utils.py).
INVALID_HOST_BODY = "Invalid Host header"
CORS_BLOCKED_BODY = "Cross-origin request blocked"


@contextmanager
def _step(target: str, what: str) -> Iterator[None]:
    """Logs the step's time, or turns an unexpected error into a reason naming the step."""
    start = time.monotonic()
    try:
        yield
    except VerificationFailed:
        raise
    except Exception as exc:
        raise VerificationFailed(f"{target}: {what} failed: {short_error(exc)}") from exc
    log.info("verify %s: %s ok (%.2f s)", target, what, time.monotonic() - start)


def _auth_headers(credentials: tuple[str, str] | None) -> dict[str, str]:
    """Basic auth, as the MLflow client sends it from the same two variables."""
    if credentials is None:
        return {}
    token = base64.b64encode(":".join(credentials).encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _request(
    url: str, method: str = "GET", headers: Mapping[str, str] | None = None, body: bytes = b""
) -> tuple[int, str]:
    """(status, body) of one request; an HTTP error status is an answer, not an exception.
    Host is the URL's own, as every client of that URL sends it."""
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked to be http(s)
        url, data=body or None, method=method, headers=dict(headers or {})
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, response.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(65536).decode(errors="replace")


def _answer(
    target: str, path: str, deadline: float, timeout: float, *, healthy: bool = True, **request
) -> tuple[int, str]:
    """The first answer that is not transient, retrying every few seconds until `deadline`
    (at least one try); `timeout` is the setting the reason names.

    An error MLflow itself answers (its JSON error body) is final, 503 included: MLflow
    answers 503 when its database is unreachable, and that reason should be reported now, in
    MLflow's words, not after minutes as "no answer". So is a request accepted but never
    answered once /health answers (`healthy`): the server, not the way to it, is stuck (MLflow
    retries a database it cannot reach for minutes on the first request of a worker).
    """
    while True:
        try:
            status, body = _request(f"{target}{path}", **request)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(_cause(exc), ssl.SSLCertVerificationError):
                # A certificate that does not verify will not start verifying by waiting.
                raise VerificationFailed(f"{target}: TLS: {short_error(exc)}") from exc
            if healthy and isinstance(exc, TimeoutError):  # connected, sent, no answer
                method = request.get("method", "GET")
                raise VerificationFailed(
                    f"{target}: {method} {path} got no answer within "
                    f"{REQUEST_TIMEOUT_SECONDS:g} s, though /health answers"
                ) from exc
            last = short_error(exc)
        else:
            if status not in TRANSIENT_STATUSES or _mlflow_error(body) is not None:
                return status, body
            last = f"HTTP {status}" + (f": {first_line(body, 100)}" if body.strip() else "")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise VerificationFailed(f"{target}: no answer within {timeout:g} s (last: {last})")
        time.sleep(min(RETRY_INTERVAL_SECONDS, remaining))


def wait_healthy(target: str, deadline: float, settings: VerifySettings) -> None:
    status, body = _answer(target, "/health", deadline, settings.timeout_seconds, healthy=False)
    if status != 200:
        raise VerificationFailed(f"{target}: GET /health answered {status}: {first_line(body)}")


def check_host(target: str, deadline: float, settings: VerifySettings, auth: dict) -> None:
    status, body = _answer(
        target, HOST_CHECK_PATH, deadline, settings.timeout_seconds, headers=auth
    )
    if status == 200:
        return
    host = urlsplit(target).netloc
    if status == 403 and INVALID_HOST_BODY in body:
        raise VerificationFailed(
            f"{target}: MLflow refuses Host '{host}' (403): it is missing from the server's "
            "allowed hosts (MLFLOW_ALLOWED_HOSTS, config server.allowed_hosts)"
        )
    if status == 401:
        given = (
            f"{settings.credentials_from} was refused"
            if settings.credentials
            else f"no login was given ({USERNAME_ENV}/{PASSWORD_ENV} or {ADMIN_SECRET_ENV})"
        )
        raise VerificationFailed(f"{target}: the server requires authentication (401) and {given}")
    raise VerificationFailed(
        f"{target}: GET {HOST_CHECK_PATH} answered {status}: {first_line(body)}"
    )


def check_browser_write(target: str, deadline: float, settings: VerifySettings, auth: dict) -> None:
    """What the UI's first write-method call sends from a page served under this name."""
    parts = urlsplit(target)
    origin = f"{parts.scheme}://{parts.netloc}"
    headers = {"Content-Type": "application/json", "Origin": origin, **auth}
    status, body = _answer(
        target,
        BROWSER_PATH,
        deadline,
        settings.timeout_seconds,
        method="POST",
        headers=headers,
        body=json.dumps({"max_results": 1}).encode(),
    )
    if status == 200:
        return
    if status == 403 and CORS_BLOCKED_BODY in body:
        raise VerificationFailed(
            f"{target}: a browser page served from {origin} could not write (the UI is broken "
            "under this name): MLflow's CORS origins (MLFLOW_CORS_ALLOWED_ORIGINS) do not list it"
        )
    raise VerificationFailed(
        f"{target}: a browser-style POST {BROWSER_PATH} answered {status}: {first_line(body)}"
    )
