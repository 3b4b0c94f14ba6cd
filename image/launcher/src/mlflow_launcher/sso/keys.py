"""The ALB's public keys, fetched by key ID from the Region's endpoint and kept.

A key is a PEM-encoded P-256 public key at <base URL><kid> (Elastic Load Balancing docs, "User
claims encoding and signature verification"). Only a token that passed every check of its
header gets here, so only someone who knows the ALB's ARN can make the process fetch at all,
and then within bounds: one fetch at a time, FETCHES_PER_MINUTE per process, each with a short
timeout and a size cap; a key ID AWS does not know is not asked for again for a while. Keys
are kept for the process's life (AWS's key for an ID does not change), at most KEYS_KEPT.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlflow_launcher.sso.token import Refused

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 3.0
MAX_KEY_BYTES = 4096
"""A P-256 public key in PEM is 178 bytes."""
KEYS_KEPT = 16
FAILURES_KEPT = 1024
FETCHES_PER_MINUTE = 10
UNKNOWN_KEY_SECONDS = 300.0
"""A key ID the endpoint does not have (404, or S3's 403 in GovCloud) is refused this long
without asking again."""
RETRY_SECONDS = 10.0
"""After a fetch that failed otherwise (network, timeout, 5xx), the next try waits this long."""


class KeyUnavailable(Exception):
    """A fetch that failed; `unknown`: the endpoint answered that it has no such key."""

    def __init__(self, reason: str, *, unknown: bool = False) -> None:
        super().__init__(reason)
        self.unknown = unknown


def fetch_pem(url: str) -> bytes:
    """GET the key, bounded in time and size (urllib verifies https against the system CAs)."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only (the contract's pattern)
            body = response.read(MAX_KEY_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise KeyUnavailable(f"HTTP {error.code}", unknown=error.code in (403, 404)) from None
    except (urllib.error.URLError, OSError) as error:
        raise KeyUnavailable(str(getattr(error, "reason", error))) from None
    if len(body) > MAX_KEY_BYTES:
        raise KeyUnavailable(f"an answer over {MAX_KEY_BYTES} bytes")
    return body


@dataclass(frozen=True)
class _Failure:
    until: float
    reason: str
    status: int

    def refusal(self, now: float) -> Refused:
        # A new exception each time: one raised again and again keeps every traceback.
        retry = self.until - now if self.status == 503 else None
        return Refused(self.reason, self.status, retry_after=retry)


class Keys:
    def __init__(
        self,
        base_url: str,
        *,
        fetch: Callable[[str], bytes] = fetch_pem,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url
        self._fetch, self._clock = fetch, clock
        self._keys: OrderedDict[str, ec.EllipticCurvePublicKey] = OrderedDict()
        self._failures: OrderedDict[str, _Failure] = OrderedDict()
        self._fetched: deque[float] = deque()
        self._lock = threading.Lock()
        self._fetching = threading.Lock()

    def get(self, kid: str) -> ec.EllipticCurvePublicKey:
        """The key; Refused (401) for a key AWS does not have, (503) for one it cannot get now."""
        key = self._known(kid)
        if key is not None:
            return key
        with self._fetching:  # one at a time; a second asker for the same key finds it kept
            key = self._known(kid)
            if key is not None:
                return key
            self._count_fetch()
            try:
                key = _p256(self._fetch(self.base_url + kid))
            except KeyUnavailable as error:
                raise self._failed(kid, error) from None
            with self._lock:
                self._keys[kid] = key
                while len(self._keys) > KEYS_KEPT:
                    self._keys.popitem(last=False)
            log.info("fetched the load balancer's public key %s from %s", kid, self.base_url)
            return key

    def _known(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """A kept key, or None; Refused while a failed fetch of it is recent."""
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                self._keys.move_to_end(kid)
                return key
            failure, now = self._failures.get(kid), self._clock()
            if failure is not None and failure.until > now:
                raise failure.refusal(now)
            return None

    def _count_fetch(self) -> None:
        now = self._clock()
        with self._lock:
            while self._fetched and self._fetched[0] <= now - 60:
                self._fetched.popleft()
            if len(self._fetched) >= FETCHES_PER_MINUTE:
                wait = self._fetched[0] + 60 - now
                raise Refused(
                    "the server fetched as many load balancer keys this minute as it may; "
                    "retry in a moment",
                    503,
                    retry_after=wait,
                )
            self._fetched.append(now)

    def _failed(self, kid: str, error: KeyUnavailable) -> Refused:
        if error.unknown:
            reason = f"no load balancer key {kid} in this Region: not signed by AWS"
            failure = _Failure(self._clock() + UNKNOWN_KEY_SECONDS, reason, 401)
        else:
            log.warning("cannot fetch the load balancer's public key %s: %s", kid, error)
            reason = f"cannot fetch the load balancer's public key now ({error}); retry soon"
            failure = _Failure(self._clock() + RETRY_SECONDS, reason, 503)
        with self._lock:
            self._failures[kid] = failure
            self._failures.move_to_end(kid)
            while len(self._failures) > FAILURES_KEPT:
                self._failures.popitem(last=False)
        return failure.refusal(self._clock())


def _p256(pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyUnavailable("an answer that is not a PEM public key") from None
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        raise KeyUnavailable("a key that is not a P-256 one")
    return key
