"""Wait for the database: retries with exponential backoff until a deadline, but no retry
where waiting cannot help (wrong password, TLS verification failure): those fail at once with
one message, so a bad secret does not become a retry storm that locks the account or floods the
logs.

The deadline counts from the launcher's own start, so the server container's startup probe,
sized from the same number (k8s_charts/contract.py), never kills `serve` before it says why.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from mlflow_launcher.errors import LauncherError
from mlflow_launcher.settings import DB_WAIT_ENV

log = logging.getLogger(__name__)

MYSQL_ACCESS_DENIED = 1045
MYSQL_TLS_ERROR = 2026
"""libmariadb's CR_SSL_CONNECTION_ERROR: "TLS/SSL error: <why>". A handshake cut by the network
reports it too, so only the reasons below are final."""
PG_INVALID_PASSWORD = "28P01"  # noqa: S105 - an SQLSTATE, not a password
_AUTH_MARKERS = ("password authentication failed", "access denied for user")
_NO_TLS_MARKER = "server does not support it"
"""libmariadb under VERIFY_IDENTITY (MYSQL_OPT_SSL_ENFORCE): "SSL is required, but the server
does not support it"."""
_PG_TLS_MARKERS = ("certificate verify failed", "does not match host name", "root certificate file")
"""libpq's reasons under verify-full. libmariadb's (code 2026) all name the certificate: the
chain, as OpenSSL's X509 reasons ("self-signed certificate in certificate chain", "unable to get
local issuer certificate", "certificate has expired"), and the host name ("Validation of SSL
server certificate failed")."""


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries at most; the n-th wait is ``min(max_delay, base * 2**(n-1))`` seconds,
    cut short at ``deadline`` (a ``time.monotonic()`` value), where one last try is made; none
    starts after it. A try is bounded by the connection's own timeouts (dburl)."""

    attempts: int
    max_delay: float
    base: float = 1.0
    deadline: float = math.inf

    def delays(self) -> list[float]:
        return [min(self.max_delay, self.base * 2**n) for n in range(self.attempts - 1)]


class AuthenticationFailed(LauncherError):
    """The database rejected the credentials: retrying would not help."""


class TlsVerificationFailed(LauncherError):
    """The server's certificate did not verify against MLFLOW_DB_CA_BUNDLE."""


def driver_message(exc: BaseException) -> str:
    """The driver's own message (the SQLAlchemy wrapper adds SQL and links, not information)."""
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__


def classify(exc: BaseException, ca_bundle: str) -> LauncherError | None:
    """A fatal LauncherError for failures that retrying cannot fix, None for transient ones."""
    orig = getattr(exc, "orig", None) or exc
    message = driver_message(exc)
    lowered = message.lower()
    code = orig.args[0] if getattr(orig, "args", None) else None
    if (
        code == MYSQL_ACCESS_DENIED
        or getattr(orig, "pgcode", None) == PG_INVALID_PASSWORD
        or any(m in lowered for m in _AUTH_MARKERS)
    ):
        return AuthenticationFailed(
            f"database rejected the credentials from the secret (not retrying): {message}"
        )
    if code == MYSQL_TLS_ERROR and _NO_TLS_MARKER in lowered:
        # Waiting would not make the server offer TLS.
        return TlsVerificationFailed(
            f"the database server offers no TLS; refusing to connect in plain text "
            f"(not retrying): {message}"
        )
    if any(m in lowered for m in _PG_TLS_MARKERS) or (
        code == MYSQL_TLS_ERROR and "certificate" in lowered
    ):
        return TlsVerificationFailed(
            f"TLS verification of the database server failed against the CA bundle "
            f"MLFLOW_DB_CA_BUNDLE={ca_bundle} (not retrying): {message}"
        )
    return None


def process_started() -> float:
    """When this process started, on the ``time.monotonic()`` clock: Python's own start and
    the imports before any launcher code runs count against the container's startup probe
    too. (/proc's start time is in clock ticks since boot, as CLOCK_BOOTTIME.)"""
    now = time.monotonic()
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now  # not Linux: from now on
    return now - max(0.0, age)


def wait_for(
    connect: Callable[[], None],
    policy: RetryPolicy,
    *,
    ca_bundle: str,
    what: str,
    state: str = "reachable",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Call ``connect`` until it succeeds, a fatal error occurs, or the attempts or the time
    run out; ``state`` names what a success shows in the messages ("reachable")."""
    delays = policy.delays()
    for attempt in range(1, policy.attempts + 1):
        try:
            connect()
        except LauncherError:
            raise
        except Exception as exc:  # the driver's exception types vary; classify() sorts them
            fatal = classify(exc, ca_bundle)
            if fatal is not None:
                raise fatal from None
            reason = driver_message(exc)
            remaining = policy.deadline - clock()
            if attempt == policy.attempts or remaining <= 0:
                raise LauncherError(
                    f"{what} not {state} after {attempt} attempts: {reason} (the wait is "
                    f"bounded by MLFLOW_DB_CONNECT_ATTEMPTS tries and by {DB_WAIT_ENV} from "
                    "the launcher's start)"
                ) from None
            delay = min(delays[attempt - 1], remaining)
            log.warning(
                "%s not %s (attempt %d/%d): %s; retrying in %.1f s",
                what,
                state,
                attempt,
                policy.attempts,
                reason,
                delay,
            )
            sleep(delay)
        else:
            if attempt > 1:
                log.info("%s %s after %d attempts", what, state, attempt)
            return


def make_engine(url: URL) -> Engine:
    # NullPool: the launcher opens a handful of short connections; nothing to keep warm.
    return create_engine(url, poolclass=NullPool)


@contextlib.contextmanager
def engine_for(url: URL) -> Iterator[Engine]:
    """An engine for the block, disposed after it."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def probe(engine: Engine) -> None:
    """One round trip, and on MySQL proof that the session is encrypted.

    libmariadb refuses a server without TLS under VERIFY_IDENTITY, but MySQL drivers have
    fallen back to plain text before (PyMySQL before 1.2; libmariadb where only a CA is given),
    while libpq's verify-full never does: a driver change must not silently downgrade, so on
    MySQL the launcher checks the session cipher itself as well.
    """
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        if engine.dialect.name == "mysql":
            row = conn.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).first()
            if row is None or not row[1]:
                raise TlsVerificationFailed(
                    "the MySQL session is not encrypted: the server did not offer TLS "
                    "(refusing to send queries in plain text)"
                )


def wait_for_database(engine: Engine, policy: RetryPolicy, *, ca_bundle: str) -> None:
    url = engine.url
    wait_for(
        lambda: probe(engine),
        policy,
        ca_bundle=ca_bundle,
        what=f"database {url.host}:{url.port}/{url.database}",
    )
