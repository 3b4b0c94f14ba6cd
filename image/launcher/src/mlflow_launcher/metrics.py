"""Prometheus metrics: `mlflow server --expose-prometheus` writes each worker's counters into a
directory on the pod's scratch space; `mlflow-launcher metrics` (the pod's `metrics` container)
serves their sum on its own port.

Why not MLflow's own /metrics: with authentication on, MLflow serves it to admins only (its
auth app refuses routes it has no rule for), and a scraper should not hold an admin login. The
counters say how many requests of which kind and status, and how long they took: no data, no
names, so the port needs no login; the NetworkPolicy decides who may reach it.

Why a server of its own rather than prometheus_client's (wsgiref): that one serves one
connection at a time and never times a client out, so one idle TCP connection blocked every
later scrape. Here one event loop holds every connection, each with a deadline, up to a cap;
the counters are summed in a worker thread (MultiProcessCollector reads files), one summing at
a time however many scrapes wait for it. One request per connection (`Connection: close`):
Prometheus reconnects for each scrape, and no idle keep-alive connection counts against the cap.

Measured with bench/metrics_flood.py (the image's packages, counters of 40 endpoints x 3
statuses): 54 MiB VmHWM (44 MiB PSS) after a first scrape; with 100 idle and 50 slow clients
held, 100 scrapes at once were all answered; after 2000 idle and 100 slow connections and 200
scrapes at once (the cap full: those scrapes refused), 55.5 MiB VmHWM (45 MiB PSS), the next
scrape answered. The old wsgiref exporter: 50 MiB at rest. The container's limit is 128 MiB.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow_launcher import contract, settings
from mlflow_launcher.errors import LauncherError

if TYPE_CHECKING:  # prometheus_client comes with MLflow; other commands never import it
    from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

METRICS_DIR_ENV = contract.EXPOSE_PROMETHEUS.name
PORT_ENV = contract.METRICS_PORT.name
PATH = contract.METRICS_PATH

REQUEST_SECONDS = contract.METRICS_REQUEST_SECONDS
RESPONSE_SECONDS = contract.METRICS_RESPONSE_SECONDS
MAX_CONNECTIONS = 256
"""Connections held at once; more are closed as soon as they are accepted. Bounds memory and
file descriptors (well under the 1024 open files a container may be limited to, with room for
the counters' files): a flood can make scrapes fail while it lasts, never end the process."""
MAX_HEADER_BYTES = 8192
"""A request line and headers longer than this are not a scrape."""
LOG_EVERY_SECONDS = 60.0


def reset_directory(env: Mapping[str, str]) -> None:
    """prometheus_client's multiprocess mode sums every file in the directory: the files of a
    container this pod ran before (a restart keeps the emptyDir) would add dead workers'
    counts for good. Emptied before the server starts."""
    path = env.get(METRICS_DIR_ENV, "").strip()
    if not path:
        return
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)


class _Tally:
    """Counts an event; logs the first at once, then at most once a minute with the count
    since (a flood must not become a flood of log lines)."""

    def __init__(self, message: str) -> None:
        self._message = message
        self._count = 0
        self._last = -math.inf

    def note(self, *args: object, exc_info: bool = False) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= LOG_EVERY_SECONDS:
            log.warning(self._message, self._count, *args, exc_info=exc_info)
            self._count, self._last = 0, now


_EXPECTED = (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)
"""What clients cause (silence, hang-ups, oversized headers): closed without a word."""


def _response(status: HTTPStatus, headers: Mapping[str, str], body: bytes, *, head: bool) -> bytes:
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head else body)


def _plain(status: HTTPStatus, **headers: str) -> bytes:
    return _response(
        status,
        {"Content-Type": "text/plain; charset=utf-8", **headers},
        f"{status.phrase}\n".encode(),
        head=False,
    )


def _parse(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    """Method, path and headers (lower-case names) of a request; None if it is not HTTP/1.x."""
    request_line, *lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1].split("?", 1)[0], headers


class Exporter:
    """The connection handler: `connection` is asyncio.start_server's callback."""

    def __init__(self, registry: Collector) -> None:
        from prometheus_client.exposition import choose_encoder, gzip_accepted

        self._registry = registry
        self._choose_encoder, self._gzip_accepted = choose_encoder, gzip_accepted
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        self._pending: dict[tuple[str, bool], asyncio.Future[bytes]] = {}
        self._open = 0
        self._refused = _Tally(
            "%d connection(s) refused since the last such line: %d open at once is the cap (a "
            "flood, or clients that hold connections open)"
        )
        self._failed = _Tally("%d request(s) failed unexpectedly since the last such line")

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_CONNECTIONS:
            writer.transport.abort()
            self._refused.note(MAX_CONNECTIONS)
            return
        self._open += 1
        answered = False
        try:
            await self._exchange(reader, writer)
            answered = True
        except _EXPECTED:
            pass
        except Exception:  # one connection's bug must not end the exporter
            self._failed.note(exc_info=True)
        finally:
            self._open -= 1
            if answered:
                writer.close()  # drained: a FIN after the answer
            else:
                writer.transport.abort()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(REQUEST_SECONDS):
            request = _parse(await reader.readuntil(b"\r\n\r\n"))
        async with asyncio.timeout(RESPONSE_SECONDS):
            writer.write(await self._answer(request))
            await writer.drain()

    async def _answer(self, request: tuple[str, str, dict[str, str]] | None) -> bytes:
        if request is None:
            return _plain(HTTPStatus.BAD_REQUEST)
        method, path, headers = request
        if path != PATH:
            return _plain(HTTPStatus.NOT_FOUND)
        if method not in ("GET", "HEAD"):
            return _plain(HTTPStatus.METHOD_NOT_ALLOWED, Allow="GET, HEAD")
        # The same negotiation as prometheus_client's own servers (format, then gzip).
        encoder, content_type = self._choose_encoder(headers.get("accept", ""))
        compress = self._gzip_accepted(headers.get("accept-encoding", ""))
        try:
            body = await self._shared(encoder, content_type, compress)
        except Exception:  # e.g. a counters file a worker killed mid-write left unreadable
            self._failed.note(exc_info=True)
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR)
        fields = {"Content-Type": content_type}
        if compress:
            fields["Content-Encoding"] = "gzip"
        return _response(HTTPStatus.OK, fields, body, head=method == "HEAD")

    def _shared(
        self, encoder: Callable[[Collector], bytes], content_type: str, compress: bool
    ) -> Awaitable[bytes]:
        """The body being made for the same format, or a new one, in the worker thread:
        scrapes that arrive while the counters are summed share that sum, so a burst of them
        costs one."""
        key = (content_type, compress)
        future = self._pending.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, _body, encoder, self._registry, compress)
            self._pending[key] = future
            future.add_done_callback(lambda _: self._pending.pop(key, None))
        # A client that hangs up (its task cancelled) must not cancel the others' answer.
        return asyncio.shield(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _body(encoder: Callable[[Collector], bytes], registry: Collector, compress: bool) -> bytes:
    body = encoder(registry)
    return gzip.compress(body) if compress else body


async def _serve(port: int, exporter: Exporter) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # The pod's shutdown: end at once (nothing to finish; a scrape in flight is retried).
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    address = "0.0.0.0"  # noqa: S104 - the pod's port, fenced by the NetworkPolicy
    try:
        server = await asyncio.start_server(
            exporter.connection, address, port, limit=MAX_HEADER_BYTES
        )
    except OSError as error:
        raise LauncherError(f"cannot listen on port {port} ({PORT_ENV}): {error}") from None
    log.info("serving the server's metrics on port %s", port)
    await stop.wait()
    # Not wait_closed(): from Python 3.12 it waits for open connections. asyncio.run cancels
    # their tasks on return, and each closes its own socket.
    server.close()


def serve(env: Mapping[str, str]) -> None:
    """Serve the workers' summed counters on 0.0.0.0:MLFLOW_METRICS_PORT until SIGTERM."""
    values = settings.parse(env, contract.EXPOSE_PROMETHEUS, contract.METRICS_PORT)
    directory, port = values[METRICS_DIR_ENV], values[PORT_ENV]
    if not directory or port is None:
        raise LauncherError(
            f"{METRICS_DIR_ENV} (the counters directory) and {PORT_ENV} (a port) must be set; "
            f"got {directory!r} and {port!r}"
        )
    Path(directory).mkdir(parents=True, exist_ok=True)  # the server may not have started yet
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    log.info("summing the counters in %s", directory)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    exporter = Exporter(registry)
    try:
        asyncio.run(_serve(port, exporter))
    finally:
        exporter.close()
