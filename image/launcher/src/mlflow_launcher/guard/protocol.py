"""uvicorn's HTTP/1.1 protocol with a deadline for a request's headers.

uvicorn (0.54, h11) waits for a request's headers without limit: any data on the connection
cancels its keep-alive timer, and a new connection has none. A client that opens connections
and sends nothing, or a byte now and then, holds a file descriptor and buffers each until the
process runs out of one or the other, and needs no login to do so. Here a connection must
complete its request line and headers within `Limits.header_timeout_seconds` of opening, and of each
response that keeps it alive; otherwise it is closed. Bodies and responses are not timed
here: the guard holds a request's client to a pace (guard/stall.py), and aborts a connection
whose client stopped taking the answer through the ABORT_EXTENSION each request's scope gets
here (uvicorn's close would wait for the client to take what is buffered first).

Selected with uvicorn's `--http` option (its UVICORN_HTTP variable), which takes an import
string (uvicorn.config.Config.load).
"""

from __future__ import annotations

import asyncio
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from mlflow_launcher.guard import limits
from mlflow_launcher.guard.stall import ABORT_EXTENSION

_TIMEOUT = limits.load(os.environ).header_timeout_seconds


class HeaderDeadlineProtocol(H11Protocol):
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request's headers are in
            self._disarm()
        if self.cycle is not None:  # its task has not run yet: the scope is the app's
            extensions = self.cycle.scope.setdefault("extensions", {})
            extensions.setdefault(ABORT_EXTENSION, {"abort": self.transport.abort})

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(_TIMEOUT, self._expire)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
