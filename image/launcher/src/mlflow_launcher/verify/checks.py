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
from mlflow_launcher.verify.retry import TRANSIENT_STATUSES, Retries
from mlflow_launcher.verify.settings import (
    ADMIN_SECRET_ENV,
    PASSWORD_ENV,
    USERNAME_ENV,
    VerifyEnvironment,
)
from mlflow_launcher.verify.tls import client_context

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 30.0

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
    url: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    context: ssl.SSLContext | None = None,
) -> tuple[int, str]:
    """(status, body) of one request; an HTTP error status is an answer, not an exception.
    Host is the URL's own, as every client of that URL sends it; `context` verifies an https
    target's certificate (for the URL's host name)."""
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked to be http(s)
        url, data=body or None, method=method, headers=dict(headers or {})
    )
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=REQUEST_TIMEOUT_SECONDS, context=context
        ) as response:
            return response.status, response.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(65536).decode(errors="replace")


def _answer(
    target: str,
    path: str,
    deadline: float,
    settings: VerifyEnvironment,
    *,
    healthy: bool = True,
    **request,
) -> tuple[int, str]:
    """The first answer that is not transient, retrying every few seconds until `deadline`
    (at least one try); the reason names `settings.timeout_seconds`.

    Transient (retry.TRANSIENT_STATUSES): no connection; a request accepted but not answered;
    429, 500, 502, 503 and 504, MLflow's own included (while its database is unreachable, as in
    a Multi-AZ failover, it answers 503 TEMPORARILY_UNAVAILABLE, or 500 where the error escapes
    its handlers, as in the sign-in check). Past the deadline the last of them
    is the reason: in MLflow's words for its own error, "though /health answers" for a request
    that was never answered (`healthy`: the server, not the way to it, is stuck). A certificate
    that does not verify fails at once.
    """
    timeout = settings.timeout_seconds
    method = request.get("method", "GET")
    retries = Retries(target, f"{method} {path}", deadline)
    context = client_context(settings.ca_bundle)
    while True:
        try:
            status, body = _request(f"{target}{path}", context=context, **request)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(_cause(exc), ssl.SSLCertVerificationError):
                raise VerificationFailed(tls_reason(target, exc, settings)) from exc
            note = short_error(exc)
            if healthy and isinstance(exc, TimeoutError):  # connected, sent, no answer
                reason = (
                    f"{target}: {method} {path} got no answer within "
                    f"{REQUEST_TIMEOUT_SECONDS:g} s, though /health answers{_for(timeout)}"
                )
            else:
                reason = f"{target}: no answer within {timeout:g} s (last: {note})"
        else:
            if status not in TRANSIENT_STATUSES:
                return status, body
            note = f"HTTP {status}" + (f": {first_line(body, 100)}" if body.strip() else "")
            if status == 500 or _mlflow_error(body) is not None:  # the server's own words
                reason = f"{target}: {method} {path} answered {status}: {first_line(body)}"
                reason += _for(timeout)
            else:  # a load balancer's or proxy's: the server itself not reached yet
                reason = f"{target}: no answer within {timeout:g} s (last: {note})"
        if not retries.wait(note):
            raise VerificationFailed(reason)


def _for(timeout: float) -> str:
    return f" (still after {timeout:g} s)"


def tls_reason(target: str, exc: BaseException, settings: VerifyEnvironment) -> str:
    """Why an https target's certificate does not verify, and what it must be: one that
    covers the target's name and chains to the trusted CAs, served where the name leads."""
    host = urlsplit(target).hostname
    where = settings.connect_to.get(host or "")
    served = f" (served at {where})" if where else ""
    return (
        f"{target}: TLS: {short_error(exc)}{served}; the certificate must cover {host} and "
        f"chain to {settings.trusted()}"
    )


def wait_healthy(target: str, deadline: float, settings: VerifyEnvironment) -> None:
    status, body = _answer(target, "/health", deadline, settings, healthy=False)
    if status != 200:
        raise VerificationFailed(f"{target}: GET /health answered {status}: {first_line(body)}")


def check_host(target: str, deadline: float, settings: VerifyEnvironment, auth: dict) -> None:
    status, body = _answer(target, HOST_CHECK_PATH, deadline, settings, headers=auth)
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


def check_browser_write(
    target: str, deadline: float, settings: VerifyEnvironment, auth: dict
) -> None:
    """What the UI's first write-method call sends from a page served under this name."""
    parts = urlsplit(target)
    origin = f"{parts.scheme}://{parts.netloc}"
    headers = {"Content-Type": "application/json", "Origin": origin, **auth}
    status, body = _answer(
        target,
        BROWSER_PATH,
        deadline,
        settings,
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
