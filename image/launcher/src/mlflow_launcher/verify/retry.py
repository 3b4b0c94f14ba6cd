"""Waiting out what passes by itself, within a target's deadline.

A deploy meets passing failures as a matter of course: a load balancer still registering its
targets (502/503/504, or no connection), a Multi-AZ failover of the database (MLflow answers
503 TEMPORARILY_UNAVAILABLE until its new primary takes connections, usually one to two
minutes: Amazon RDS User Guide, "Multi-AZ DB instance deployments", failover), a replica that
has not yet applied a write. Failing the deploy on one of them rolls it back, which after a
schema migration leaves the old pods unable to start. So each step is retried until the
target's deadline and fails with its last reason; what cannot get better by waiting (401/403,
404, a refused Host or Origin, a certificate that does not verify, wrong bytes back) fails at
once. The MLflow client's own retries stay short (client.CLIENT_HTTP_DEFAULTS): this loop does
the waiting, with a reason for every round.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from mlflow_launcher.errors import VerificationFailed
from mlflow_launcher.verify.messages import short_error

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_INTERVAL_SECONDS = 5.0
LOG_EVERY_SECONDS = 60.0
"""A reason that stays the same is logged again this often, not on every round."""
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Too many requests; a proxy without a healthy target behind it; a gateway timeout; and the
server's own 500 and 503, which is what MLflow answers while its database is unreachable (503
TEMPORARILY_UNAVAILABLE from its stores; 500 where that error escapes a handler: measured with
sign-in on, the login check meets the database first). A 500 that stays (a bucket the server
cannot write) is reported when the deadline passes, in the same words."""
_TOO_MANY = re.compile(r"too many (\d{3}) error responses")
# The requests/urllib3/http.client errors for a connection that failed or went silent, by class
# name: requests' own are OSError subclasses alongside its HTTPError, so isinstance cannot tell.
_NO_ANSWER = frozenset(
    {
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "TimeoutError",
        "ChunkedEncodingError",
        "ProtocolError",
        "RemoteDisconnected",
        "IncompleteRead",
        "NewConnectionError",
    }
)


class NotYet(VerificationFailed):
    """A step whose answer may still change (a search that does not see the run yet); the
    message is the reason if it has not changed by the deadline."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def transient(exc: BaseException) -> bool:
    """Whether an error of the MLflow client (or requests under it) may pass by itself."""
    chain = list(_chain(exc))
    names = {cls.__name__ for error in chain for cls in type(error).__mro__}
    if "SSLError" in names or "SSLCertVerificationError" in names:
        return False  # a certificate that does not verify will not start verifying
    text = " ".join(str(error) for error in chain)
    if (match := _TOO_MANY.search(text)) and int(match.group(1)) in TRANSIENT_STATUSES:
        return True
    for error in chain:
        status = getattr(error, "get_http_status_code", None)
        if callable(status) and status() in TRANSIENT_STATUSES:
            return True
    return bool(names & _NO_ANSWER)


class Retries:
    """Rounds until `deadline` (time.monotonic): `wait(reason)` logs the reason now and then
    and sleeps, or returns False once the deadline has passed."""

    def __init__(self, target: str, what: str, deadline: float) -> None:
        self.target, self.what, self.deadline = target, what, deadline
        self._logged, self._logged_at = "", 0.0

    def wait(self, reason: str) -> bool:
        now = time.monotonic()
        remaining = self.deadline - now
        if remaining <= 0:
            return False
        if reason != self._logged or now - self._logged_at >= LOG_EVERY_SECONDS:
            log.info(
                "verify %s: %s: %s; retrying for up to %.0f s more",
                self.target,
                self.what,
                reason,
                remaining,
            )
            self._logged, self._logged_at = reason, now
        time.sleep(min(RETRY_INTERVAL_SECONDS, remaining))
        return True


def attempt(target: str, what: str, deadline: float, action: Callable[[], T]) -> T:
    """`action()`, retried through transient failures until `deadline`; logs the step's time,
    or fails with a reason naming the target and the step."""
    start = time.monotonic()
    retries = Retries(target, what, deadline)
    while True:
        try:
            result = action()
        except NotYet as exc:
            if not retries.wait(str(exc)):
                raise VerificationFailed(str(exc)) from exc
            continue
        except VerificationFailed:
            raise
        except Exception as exc:
            reason = f"{target}: {what} failed: {short_error(exc)}"
            if not (transient(exc) and retries.wait(short_error(exc))):
                raise VerificationFailed(reason) from exc
            continue
        log.info("verify %s: %s ok (%.2f s)", target, what, time.monotonic() - start)
        return result
