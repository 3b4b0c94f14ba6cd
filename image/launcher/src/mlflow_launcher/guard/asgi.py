"""The guard: an ASGI middleware in front of MLflow's whole app, in each server process.

MLflow answers most routes from its Flask app behind a bridge that reads the whole request body
into memory (two to three copies of it) before Flask's basic-auth hook runs, and it limits no
body's size; so one unauthenticated POST could cost the process its size several times over.
Here, before MLflow sees a request:

1. a login is checked (sign_in.SignInGate): a wrong one is answered 401 without reading the
   body; a source that keeps failing gets 429, a process with all its checks busy 503. With
   single sign-on, the ALB's signed header is the login instead (sso/gate.py), when present;
2. a body is bounded: `Limits.max_body_bytes` with a login (or with auth off),
   ANONYMOUS_BODY_BYTES without one (MLflow would refuse it anyway), and all bodies a process
   holds at once by `Limits.body_budget_bytes` (503 beyond); a declared Content-Length over
   the limit is refused before a byte is read, a chunked body as soon as it passes it;
3. a proxied artifact transfer (transfers.py) takes one of the pod's transfer slots and is
   held to the artifact size limit; its streaming upload is exempt from the body limits, and
   reaches MLflow in messages of contract.UPLOAD_MESSAGE_MIB, not uvicorn's small pieces;
4. a compressed OTLP trace body is inflated here, within the body limit (otlp.py): MLflow
   would inflate it whole;
5. a client that keeps the request waiting, sending its body or taking the answer slower than
   a MiB per `Limits.client_stall_seconds`, is taken to have left (stall.py), so it holds no
   transfer slot or body budget for long.

Every refusal says which limit it hit and how to change or avoid it (responses.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from mlflow_launcher import contract
from mlflow_launcher.guard import otlp, responses
from mlflow_launcher.guard.limits import (
    ANONYMOUS_BODY_BYTES,
    LINGER_BYTES,
    LINGER_SECONDS,
    MIB,
    Limits,
)
from mlflow_launcher.guard.sign_in import (
    GATEWAY_PREFIX,
    VERIFIED,
    Login,
    SignInGate,
    Verdict,
    login_from,
)
from mlflow_launcher.guard.stall import Pace, Stalled, Stalls
from mlflow_launcher.guard.transfers import (
    CURRENT,
    Direction,
    Slots,
    Transfer,
    busy_message,
    direction,
    too_large_message,
)

if TYPE_CHECKING:
    from mlflow_launcher.sso.gate import TokenGate

log = logging.getLogger(__name__)
UNREADABLE_USERS_RETRY_SECONDS = 5.0
"""Retry-After when the users' database did not answer the sign-in check."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_SETTING = "server.max_request_body_mib"
BUSY_RETRY_SECONDS = 5
UPLOAD_MESSAGE_BYTES = contract.UPLOAD_MESSAGE_MIB * MIB


class Guard:
    def __init__(
        self,
        app: App,
        limits: Limits,
        *,
        sign_in: SignInGate | None,
        unprotected: Callable[[str], bool],
        slots: Slots,
        sso: TokenGate | None = None,
        gateway_token: str | None = None,
    ) -> None:
        """`sign_in` None: authentication is off. `unprotected(path)`: MLflow's routes that
        need no login (health, static files, server-info), where it ignores a login. `sso`:
        the ALB's tokens, with single sign-on on (authentication on). `gateway_token`: the job
        runner's jobs' password on /gateway/ (server.GATEWAY_TOKEN_ENV), None elsewhere."""
        self.app, self.limits, self.sign_in, self.sso = app, limits, sign_in, sso
        self.unprotected, self.slots = unprotected, slots
        self.gateway_token = gateway_token
        self._held = 0  # body bytes this process holds for requests in flight
        self._stalls = Stalls(limits.client_stall_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pace = self._stalls.pace(scope)
        try:
            await self._serve(scope, pace.receive(receive), pace.send(send), pace)
        except _ClientLeft:
            pass
        except Exception:
            if pace.stalled is None:
                raise  # after a stall: MLflow's error at a client gone (stall.py logs it)
        finally:
            self._stalls.done(pace)
        if pace.stalled is Stalled.SENDING and not pace.started:
            await responses.refuse(send, 408, pace.message(), error_code="BAD_REQUEST")

    async def _serve(self, scope: Scope, receive: Receive, send: Send, pace: Pace) -> None:
        path, method = scope["path"], scope["method"]
        signed_in = self.sign_in is None
        if self.sign_in is not None and not self.unprotected(path):
            token = self.sso.token_from(scope) if self.sso is not None else None
            login = login_from(scope) if token is None else None
            if token is not None:
                if not await self._token_signed_in(token, scope, receive, send):
                    return
                signed_in = True
            elif login is not None and self._gateway_job(login, path):
                signed_in = True
            elif login is not None:
                if not await self._signed_in(login, scope, receive, send):
                    return
                signed_in = True
        transfer = direction(method, path)
        if transfer is not None:
            if not signed_in:  # every transfer route needs a login: MLflow's answer, sooner
                await _linger(scope, receive)
                await responses.not_authenticated(send)
                return
            await self._transfer(transfer, scope, receive, send, pace)
            return
        limit = self.limits.max_body_bytes if signed_in else ANONYMOUS_BODY_BYTES
        if signed_in and otlp.encoded(path, _header(scope, b"content-encoding")):
            await self._inflated(limit, scope, receive, send)
            return
        await self._bounded(limit, signed_in, scope, receive, send)

    def _gateway_job(self, login: Login, path: str) -> bool:
        """A job of the runner's calling its /gateway/ as the user who submitted it, with the
        runner's token for a password (mlflow/genai/scorers/job.py). No password check could
        pass it, so MLflow checks it itself, on /gateway/ only (server/auth
        `_authenticate_fastapi_request`); not marked VERIFIED, which would let MLflow's store
        take it as the user's password."""
        return (
            self.gateway_token is not None
            and path.startswith(GATEWAY_PREFIX)
            and hmac.compare_digest(login.password.encode(), self.gateway_token.encode())
        )

    async def _signed_in(self, login: Login, scope: Scope, receive: Receive, send: Send) -> bool:
        """Check the login; answer the request and return False when it fails."""
        assert self.sign_in is not None
        client = scope.get("client")
        try:
            outcome = await self.sign_in.verify(login, client[0] if client else "")
        except Exception as exc:  # MLflow's store: the users' database away (a failover)
            # Not a wrong password (no 401, which clients do not retry) and not a bare 500 with
            # a traceback: MLflow's own answer to a database it cannot reach.
            first_line = (str(exc).splitlines() or [""])[0][:200]
            log.warning("sign-in check failed: %s: %s", type(exc).__name__, first_line)
            await _linger(scope, receive)
            await responses.refuse(
                send,
                503,
                "the sign-in check could not read the users' database; retry in a few seconds",
                error_code="TEMPORARILY_UNAVAILABLE",
                retry_after=UNREADABLE_USERS_RETRY_SECONDS,
            )
            return False
        if outcome.verdict is Verdict.ACCEPTED:
            VERIFIED.set(login.fingerprint)
            return True
        await _linger(scope, receive)
        if outcome.verdict is Verdict.REFUSED:
            await responses.not_authenticated(send)
        elif outcome.verdict is Verdict.THROTTLED:
            await responses.refuse(
                send,
                429,
                f"too many failed sign-ins as {login.username!r} from this address; retry in "
                f"{outcome.retry_after:.0f} s (limit: {self.limits.sign_in_failures} per minute, "
                "server.sign_in_failures_per_minute)",
                retry_after=outcome.retry_after,
            )
        else:
            await responses.refuse(
                send,
                503,
                "the server is checking as many passwords as it may at once "
                "(server.concurrent_sign_in_checks); retry in a few seconds",
                error_code="TEMPORARILY_UNAVAILABLE",
                retry_after=outcome.retry_after,
            )
        return False

    async def _token_signed_in(
        self, token: str, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """Check the ALB's token; answer the request and return False when it fails. No
        Basic challenge: behind the ALB a browser would ask for a password."""
        assert self.sso is not None
        client = scope.get("client")
        answer = await self.sso.verify(token, client[0] if client else None)
        if answer.refusal is None:
            return True
        await _linger(scope, receive)
        refusal = answer.refusal
        await responses.refuse(
            send,
            refusal.status,
            f"single sign-on refused: {refusal.reason}",
            error_code="UNAUTHENTICATED" if refusal.status == 401 else "TEMPORARILY_UNAVAILABLE",
            retry_after=refusal.retry_after,
        )
        return False

    async def _bounded(
        self, limit: int, signed_in: bool, scope: Scope, receive: Receive, send: Send
    ) -> None:
        length = _content_length(scope)
        if length is not None and length > limit:
            await _linger(scope, receive)
            await self._too_large(send, length, limit, signed_in)
            return
        if length is None and _chunked(scope):
            body = await _read_up_to(receive, limit)
            if body is None:
                await _linger(scope, receive)
                await self._too_large(send, limit + 1, limit, signed_in)
                return
            length, receive = len(body), _replay(body, receive)
        held = length or 0
        if held and self._held and self._held + held > self.limits.body_budget_bytes:
            await _linger(scope, receive)
            await responses.refuse(
                send,
                503,
                "the server holds as many request bodies as it may at once; retry in a few seconds",
                error_code="TEMPORARILY_UNAVAILABLE",
                retry_after=BUSY_RETRY_SECONDS,
            )
            return
        self._held += held
        try:
            await self.app(scope, receive, send)
        finally:
            self._held -= held

    async def _inflated(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        """A compressed OTLP body: read (within the limit), inflated (within the limit), and
        passed on plain, held to the body budget as a plain body of its size is."""
        length = _content_length(scope)
        body = None if length is not None and length > limit else await _read_up_to(receive, limit)
        if body is None:
            await _linger(scope, receive)
            await self._too_large(send, max(length or 0, limit + 1), limit, signed_in=True)
            return
        encoding = _header(scope, b"content-encoding") or b""
        try:
            plain = otlp.inflate(body, encoding, limit)
        except otlp.TooLarge:
            await responses.refuse(
                send,
                413,
                f"the {encoding.decode(errors='replace')} body of {len(body) / MIB:.1f} MiB "
                f"inflates past this server's limit of {limit // MIB} MiB ({MAX_BODY_SETTING}); "
                "export smaller batches (the OpenTelemetry SDK's max_export_batch_size)",
            )
            return
        if plain is None:  # not valid: MLflow refuses it with its own 400, without inflating
            await self._bounded(limit, True, scope, _replay(body, receive), send)
            return
        del body
        headers = [
            (key, value)
            for key, value in scope["headers"]
            if key not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(plain)).encode()))
        await self._bounded(
            limit, True, {**scope, "headers": headers}, _replay(plain, receive), send
        )

    async def _too_large(self, send: Send, length: int, limit: int, signed_in: bool) -> None:
        if not signed_in:
            await responses.refuse(
                send,
                401,
                f"sign in first: a request without a login may carry at most {limit // 1024} KiB",
                error_code="UNAUTHENTICATED",
                challenge=True,
            )
            return
        await responses.refuse(
            send,
            413,
            f"request body of {length / MIB:.1f} MiB is over this server's limit of "
            f"{limit // MIB} MiB ({MAX_BODY_SETTING}); artifacts go through the artifact API "
            "(mlflow.log_artifact), which this limit does not apply to",
        )

    async def _transfer(
        self, kind: Direction, scope: Scope, receive: Receive, send: Send, pace: Pace
    ) -> None:
        limit = self.limits.max_artifact_bytes
        length = _content_length(scope)
        if kind is Direction.UPLOAD and length is not None and length > limit:
            await _linger(scope, receive)
            await responses.refuse(send, 413, too_large_message(kind, length, limit))
            return
        slot = self.slots.take()
        if slot is None:
            await _linger(scope, receive)
            await responses.refuse(
                send,
                503,
                busy_message(self.limits.transfers),
                error_code="TEMPORARILY_UNAVAILABLE",
                retry_after=BUSY_RETRY_SECONDS,
            )
            return
        transfer = Transfer(limit)
        token = CURRENT.set(transfer)
        held = [slot]
        ended = False
        refused = False

        def release() -> None:
            # Before the client can have the whole answer: it may start its next transfer at
            # once. An upload's spool file is gone before MLflow answers at all (its handler
            # deletes it first) and a client may take an empty 200 as complete on its
            # headers; a download's goes with the last byte it streams.
            if held:
                self.slots.give_back(held.pop())

        async def counted() -> Message:
            """The body's next UPLOAD_MESSAGE_BYTES (the rest at its end), joined from
            uvicorn's pieces: each message costs MLflow's middleware layers the same whatever
            its size (contract.UPLOAD_MESSAGE_MIB). Each piece counts against the artifact
            size limit as it arrives."""
            nonlocal ended
            pieces: list[bytes] = []
            joined = 0
            while True:
                message = await receive()
                ended = message["type"] != "http.request" or not message.get("more_body", False)
                if message["type"] != "http.request":
                    return message  # the client left: the upload fails, what was joined too
                piece = message.get("body", b"")
                if not transfer.add(len(piece)):
                    # MLflow sees the client go away: its upload stops and its parts are aborted.
                    return {"type": "http.disconnect"}
                pieces.append(piece)
                joined += len(piece)
                if ended or joined >= UPLOAD_MESSAGE_BYTES:
                    body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    return {"type": "http.request", "body": body, "more_body": not ended}

        answer = _Answer(kind)

        async def checked(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and transfer.too_large:
                refused = True  # MLflow's answer (its error, or none) gives way to ours
            if refused:
                return
            if answer.complete_with(message):
                release()
            await send(message)
            if pace.stalled is not None:
                release()  # now: MLflow may take a while to see the client gone

        try:
            await self.app(scope, counted if kind is Direction.UPLOAD else receive, checked)
        except Exception:
            if not (refused or transfer.too_large):
                raise
            log.info(
                "%s %s stopped: artifact over the proxied size limit",
                scope["method"],
                scope["path"],
            )
        finally:
            CURRENT.reset(token)
            release()
        if refused or transfer.too_large:
            if kind is Direction.UPLOAD and not ended:
                await _linger(scope, receive, started=True)
            await responses.refuse(send, 413, too_large_message(kind, transfer.moved, limit))


NO_BODY_STATUSES = (204, 304)
"""Answers that end with their headers (RFC 9110, 6.4.1). (HEAD takes no transfer slot.)"""


class _Answer:
    """When the client has a transfer's whole answer: an upload's with its headers (an empty
    200 may end there), a download's with its last body message, or sooner, with the message
    that completes the length it declared (the streamed download, s3_download.py: its empty
    last message comes after the client has every byte), or with its headers when it has no
    body (a 304 to a conditional GET)."""

    def __init__(self, kind: Direction) -> None:
        self.kind = kind
        self.declared: int | None = None
        self.sent = 0

    def complete_with(self, message: Message) -> bool:
        if message["type"] == "http.response.start":
            if self.kind is Direction.UPLOAD:
                return True
            if message["status"] in NO_BODY_STATUSES:
                return True
            length = dict(message.get("headers", ())).get(b"content-length", b"")
            self.declared = int(length) if length.strip().isdigit() else None
            return self.declared == 0
        if self.kind is Direction.UPLOAD or message["type"] != "http.response.body":
            return False
        self.sent += len(message.get("body", b""))
        ended = not message.get("more_body", False)
        return ended or (self.declared is not None and self.sent >= self.declared)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None or not value.strip().isdigit():
        return None  # h11 refuses a malformed one before the app is called
    return int(value)


def _chunked(scope: Scope) -> bool:
    return b"chunked" in (_header(scope, b"transfer-encoding") or b"").lower()


async def _linger(scope: Scope, receive: Receive, *, started: bool = False) -> None:
    """Read and drop what is left of an unread body, up to LINGER_BYTES / LINGER_SECONDS, so
    a client still sending it gets the refusal rather than a reset connection. Not when the
    client waits for `100 Continue` and was not asked for the body (`started`): it sends
    nothing unless asked."""
    if not started and (_header(scope, b"expect") or b"").lower() == b"100-continue":
        return
    if not (_content_length(scope) or _chunked(scope)):
        return

    async def drop() -> None:
        dropped = 0
        while dropped < LINGER_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drop(), LINGER_SECONDS)


class _ClientLeft(Exception):
    """The client left (or stalled) while the guard read its body: no one to answer."""


async def _read_up_to(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes `limit` (the rest is never read). Raises
    _ClientLeft when the client leaves first: MLflow is not called with part of a body."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientLeft
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then disconnect notices, as before

    return replay
