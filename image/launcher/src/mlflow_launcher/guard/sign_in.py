"""Password checks before MLflow's: off the event loop, a few at a time, failures slowed down.

MLflow checks a Basic login with werkzeug's scrypt (32 MiB and about 67 ms of CPU each, by
design), on every request whose login is not in its sign-in cache. Unbounded, 64 concurrent
wrong passwords took a 650 MiB server to 1.5 GiB (measured, bench/hostile.py); on MLflow's
native FastAPI routes the check even runs on the event loop, so the pod's probes stall with it.
Here a process runs at most `Limits.sign_in_checks` checks at once, in threads, lets a bounded
queue wait for them, refuses a source that keeps failing for a login, and answers a wrong
password itself before the request's body is read. A login it accepted is marked for the rest
of the request, so MLflow's own check of the same login does not hash the password again.

This module knows MLflow only through the two callables it is given (`check`, `remembered`);
sso/gate.py runs the ALB's tokens through the same kind of slots (`CheckSlots`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, TypeVar

from mlflow_launcher.guard.limits import (
    FAILURE_WINDOW_SECONDS,
    SIGN_IN_QUEUE,
    SIGN_IN_WAIT_SECONDS,
    Limits,
)

GATEWAY_PREFIX = "/gateway/"
GATEWAY_AUTH_HEADER = b"x-mlflow-authorization"
"""On /gateway/ routes MLflow reads the login from this header first (the Authorization header
carries the caller's provider key there); mlflow.gateway.constants.MLFLOW_GATEWAY_AUTH_HEADER."""
MAX_TRACKED_KEYS = 10_000
"""Throttle entries kept per process; the oldest go first, so spraying logins cannot grow it."""

_FINGERPRINT_KEY = secrets.token_bytes(32)
T = TypeVar("T")

VERIFIED: ContextVar[bytes | None] = ContextVar("mlflow_on_eks_verified_login", default=None)
"""The fingerprint of the login this request's check accepted, for `already_verified`."""


@dataclass(frozen=True)
class Login:
    username: str
    password: str = field(repr=False)

    @property
    def fingerprint(self) -> bytes:
        return fingerprint(self.username, self.password)


def fingerprint(username: str, password: str) -> bytes:
    """A per-process keyed digest: the password itself is never kept beyond the request."""
    message = username.encode() + b"\0" + password.encode(errors="surrogatepass")
    return hmac.new(_FINGERPRINT_KEY, message, hashlib.sha256).digest()


def already_verified(username: str, password: str) -> bool:
    """Whether this request's login was just accepted by the gate (MLflow's store calls this
    before hashing the password again)."""
    verified = VERIFIED.get()
    return verified is not None and hmac.compare_digest(verified, fingerprint(username, password))


def login_from(scope: dict[str, Any]) -> Login | None:
    """The Basic login MLflow will check for this request, parsed as werkzeug parses it for
    Flask routes (base64, then UTF-8); None without one."""
    headers = {name: value for name, value in scope.get("headers", ())}
    value = None
    if scope.get("path", "").startswith(GATEWAY_PREFIX):
        value = headers.get(GATEWAY_AUTH_HEADER)
    value = value or headers.get(b"authorization")
    if not value:
        return None
    scheme, _, rest = value.decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(rest.strip(" \t"), validate=True).decode()
    except (binascii.Error, UnicodeError):
        return None
    username, _, password = decoded.partition(":")
    return Login(username, password)


class Verdict(Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    THROTTLED = "throttled"
    BUSY = "busy"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    retry_after: float = 0.0


class Throttle:
    """Failed checks per (source, login) over a sliding window, checks in flight counted as
    failures until they end: a burst of guesses sent at once is held to the limit too.

    The source is the TCP peer: behind an NLB in IP mode without client IP preservation (its
    default for TCP/TLS target groups) that is the load balancer node, shared by its clients.
    So it counts per login too, and never over all logins of a source: a guesser spraying many
    logins through a shared node would otherwise stop every new sign-in behind it (their rate
    is bounded by the checks a process runs at once, SignInGate). Logins MLflow still
    remembers are not checked, so not slowed."""

    def __init__(self, per_login: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_login = per_login
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._in_flight: dict[tuple[str, str], int] = {}

    def retry_after(self, source: str, username: str) -> float | None:
        """Seconds until this source may try this login again, or None if it may now."""
        key = (source, username)
        times = self._failures.get(key, deque())
        now = self._clock()
        while times and times[0] <= now - FAILURE_WINDOW_SECONDS:
            times.popleft()
        in_flight = self._in_flight.get(key, 0)
        if len(times) + in_flight < self.per_login:
            return None
        if len(times) < self.per_login:  # checks still running fill the rest: one ends soon
            return 1.0
        return times[-self.per_login] + FAILURE_WINDOW_SECONDS - now

    def begin(self, source: str, username: str) -> None:
        key = (source, username)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, source: str, username: str, *, failed: bool) -> None:
        key = (source, username)
        if self._in_flight.get(key, 0) <= 1:
            self._in_flight.pop(key, None)
        else:
            self._in_flight[key] -= 1
        if failed:
            self.failed(source, username)

    def failed(self, source: str, username: str) -> None:
        key = (source, username)
        times = self._failures.pop(key, None) or deque(maxlen=self.per_login)
        times.append(self._clock())
        self._failures[key] = times
        while len(self._failures) > MAX_TRACKED_KEYS:
            self._failures.popitem(last=False)


class CheckSlots:
    """Checks that cost CPU or wait (a password's hash, a token's key and signature), run in
    threads: at most `count` at once in a process, SIGN_IN_QUEUE more waiting for a slot at
    most SIGN_IN_WAIT_SECONDS; `run` returns BUSY for one beyond that."""

    def __init__(self, count: int) -> None:
        self._slots = asyncio.Semaphore(count)
        self._waiting = 0

    def full(self) -> bool:
        return self._waiting >= SIGN_IN_QUEUE

    async def run(self, check: Callable[..., T], *args: Any) -> T | Literal[Verdict.BUSY]:
        if self.full():
            return Verdict.BUSY
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), SIGN_IN_WAIT_SECONDS)
        except TimeoutError:
            return Verdict.BUSY
        finally:
            self._waiting -= 1
        try:
            return await asyncio.to_thread(check, *args)
        finally:
            self._slots.release()


class SignInGate:
    """Runs the password checks of one process.

    `check(username, password)` is MLflow's check (it fills MLflow's sign-in cache);
    `remembered(username, password)` says whether MLflow's cache already holds the login, in
    which case nothing is hashed and nothing waits.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        check: Callable[[str, str], bool],
        remembered: Callable[[str, str], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check, self._remembered = check, remembered
        self._slots = CheckSlots(limits.sign_in_checks)
        self.throttle = Throttle(limits.sign_in_failures, clock)

    async def verify(self, login: Login, source: str) -> Outcome:
        if self._remembered(login.username, login.password):
            return Outcome(Verdict.ACCEPTED)
        wait = self.throttle.retry_after(source, login.username)
        if wait is not None:
            return Outcome(Verdict.THROTTLED, wait)
        if self._slots.full():
            return Outcome(Verdict.BUSY, SIGN_IN_WAIT_SECONDS)
        refused = False  # only a check that answered "no" counts against the login
        self.throttle.begin(source, login.username)
        try:
            result = await self._slots.run(self._check, login.username, login.password)
            if result is Verdict.BUSY:
                return Outcome(Verdict.BUSY, SIGN_IN_WAIT_SECONDS)
            refused = not result
        finally:
            # A check that raised (the database down, a failover) says nothing of the password:
            # counted as a failure, a client retrying through an outage would be throttled for
            # minutes after the database is back.
            self.throttle.end(source, login.username, failed=refused)
        return Outcome(Verdict.REFUSED if refused else Verdict.ACCEPTED)
