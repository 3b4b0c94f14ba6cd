"""A request's client held to a pace: each MiB it sends or takes within a deadline of waiting.

uvicorn times neither a request's body nor its response: a client may send headers that declare
a body and then send it a byte a minute, or start a download and stop reading. The guard would
wait with it, holding what the request holds meanwhile: a proxied transfer's slot (all of the
pod's, `server.concurrent_artifact_transfers`, taken by as many such clients), or a process's
whole body budget (every other request with a body then refused with 503). A load balancer ends
a silent connection only (the ALB after 60 s, the NLB after 350 s); one that dribbles it lets
through.

Here only the time the request spends waiting on its client counts: in `receive` while its body
is incomplete, in `send` while uvicorn drains what the client has not taken yet (it waits before
writing each message). Time the server spends on its own work (MLflow's store, S3, a stream it
paces itself) does not. A client that keeps the request waiting for `seconds` before the next
MiB (or the body's end) has stalled; from then on the request sees it as a client that left: its
body reads end in `http.disconnect` and what it sends goes nowhere, and so MLflow stops its work.
A stalled body is answered 408 when nothing was answered yet; a stalled response's connection is
aborted through the server's ABORT extension, since closing it would wait for the client to take
the buffered rest, which it may never do.

The deadlines are kept by one watchdog task per process (Stalls), which looks at the requests
waiting on their clients every TICK_FRACTION of the deadline and cancels a wait that ran out.
A wait itself only notes the clock and its task: asyncio.timeout cost 5.2 us per wait, three
waits a request. Measured in one process, a small POST through the guard to a stand-in app:
2.0 us of CPU without a pace, 24 us with asyncio.timeout, 7-9 us with the watchdog; MLflow
itself spends milliseconds on such a request.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from enum import Enum
from typing import Any

from mlflow_launcher.guard.limits import MIB

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ABORT_EXTENSION = "mlflow_on_eks.abort"
"""In a request scope's "extensions": {"abort": callable} closing its connection at once,
without flushing (guard/protocol.py sets it)."""
STALL_SETTING = "MLFLOW_CLIENT_STALL_SECONDS"
DISCONNECT: Message = {"type": "http.disconnect"}
_STALLED = object()


class Stalled(Enum):
    SENDING = "sending its body"
    TAKING = "taking the answer"


TICK_FRACTION = 0.1
"""How often the watchdog looks, as a fraction of the deadline: a stall is seen within 110%."""
MAX_TICK_SECONDS = 1.0


class Stalls:
    """One process's requests and their deadline; its watchdog runs while any is in flight."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(seconds * TICK_FRACTION, MAX_TICK_SECONDS)
        self._paces: set[Pace] = set()
        self._watchdog: asyncio.Task[None] | None = None

    def pace(self, scope: MutableMapping[str, Any]) -> Pace:
        """A pace for a request now starting; `done` with it when the request ends."""
        pace = Pace(scope, self.seconds)
        self._paces.add(pace)
        if self._watchdog is None or self._watchdog.done():
            # In a context of its own: not the request's that happens to start it.
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch(), context=contextvars.Context()
            )
        return pace

    def done(self, pace: Pace) -> None:
        self._paces.discard(pace)

    async def _watch(self) -> None:
        while self._paces:
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            for pace in list(self._paces):
                pace.check(now)


class Pace:
    """One request's waiting on its client: `receive` and `send` wrapped."""

    def __init__(self, scope: MutableMapping[str, Any], seconds: float) -> None:
        self.scope, self.seconds = scope, seconds
        self.stalled: Stalled | None = None
        self.started = False  # a response start reached the client's connection
        self._waited = 0.0  # waiting on the client since its last whole MiB
        self._counted = 0
        self._body_done = False
        # The waits in progress, one a direction (an app may read while it sends): when each
        # began, and the task waiting.
        self._waits: dict[Stalled, tuple[float, asyncio.Task[Any]]] = {}
        self._cancelled: Stalled | None = None

    def receive(self, receive: Receive) -> Receive:
        async def paced() -> Message:
            if self.stalled is not None:
                return DISCONNECT
            if self._body_done:  # after the body: a wait for the client to leave, not timed
                return await receive()
            message = await self._within(receive(), Stalled.SENDING)
            if message is _STALLED:
                return DISCONNECT
            if message["type"] != "http.request" or not message.get("more_body", False):
                self._body_done = True
            self._count(len(message.get("body", b"")))
            return message

        return paced

    def send(self, send: Send) -> Send:
        async def paced(message: Message) -> None:
            if self.stalled is not None:
                return  # as uvicorn does for a client that has left
            if await self._within(send(message), Stalled.TAKING) is _STALLED:
                return
            self.started = True
            self._count(len(message.get("body", b"")))

        return paced

    def check(self, now: float) -> None:
        """The watchdog's look: cancel the wait in progress once it has run out."""
        for stall, (since, waiter) in list(self._waits.items()):
            if self._cancelled is None and self._waited + (now - since) >= self.seconds:
                # The waiting task is suspended inside `_within` (the loop runs one task at a
                # time and a wait is listed only there): the cancellation lands in its wait.
                self._cancelled = stall
                waiter.cancel()

    async def _within(self, waiting: Awaitable[Any], stall: Stalled) -> Any:
        """What `waiting` returns, or _STALLED when the client stalls in it."""
        began, task = time.monotonic(), asyncio.current_task()
        assert task is not None  # a coroutine of the server's: always run by a task
        cancelling = task.cancelling()
        self._waits[stall] = (began, task)
        try:
            return await waiting
        except asyncio.CancelledError:
            # Ours alone, as asyncio.timeout tells: another cancellation (the server's
            # shutdown) at the same time is passed on.
            if self._cancelled is not stall or task.uncancel() > cancelling:
                raise
            self._stall(stall)
            return _STALLED
        finally:
            self._waited += time.monotonic() - began
            del self._waits[stall]

    def _count(self, size: int) -> None:
        self._counted += size
        if self._counted >= MIB:
            self._counted %= MIB
            self._waited = 0.0

    def _stall(self, stall: Stalled) -> None:
        self.stalled = stall
        log.info(
            "%s %s: the client stalled %s (no MiB in %g s of waiting; %s)",
            self.scope.get("method"),
            self.scope.get("path"),
            stall.value,
            self.seconds,
            STALL_SETTING,
        )
        if stall is Stalled.TAKING:
            abort = self.scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")
            if abort is not None:
                abort()

    def message(self) -> str:
        return (
            f"the request's body stalled: no MiB of it (or its end) came within "
            f"{self.seconds:g} s of waiting ({STALL_SETTING}); send it at a steady pace"
        )
