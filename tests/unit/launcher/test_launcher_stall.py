"""A request's client held to a pace (guard/stall.py), with stand-ins for MLflow and uvicorn:
a client that stops sending its body or taking its answer loses what it holds (a transfer slot,
the body budget) within the deadline; one that is slow but steady, and a server that paces a
stream itself, are left alone. The same against the real server: tests/integration/test_guard.py."""

from __future__ import annotations

import asyncio
import json

from mlflow_launcher.guard import limits
from mlflow_launcher.guard.asgi import Guard
from mlflow_launcher.guard.stall import ABORT_EXTENSION, STALL_SETTING
from mlflow_launcher.guard.transfers import Slots

MIB = limits.MIB
STALL = 0.3
ARTIFACT = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.bin"


def _guard(tmp_path, app, **limit_values) -> Guard:
    return Guard(
        app,
        limits.Limits(client_stall_seconds=STALL, **limit_values),
        sign_in=None,
        unprotected=lambda path: True,
        slots=Slots(tmp_path / "slots", limit_values.get("transfers", 1)),
    )


def _scope(path: str, method: str, headers=(), client: Client | None = None) -> dict:
    scope = {
        "type": "http",
        "path": path,
        "method": method,
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "client": ("10.0.0.1", 40000),
    }
    if client is not None:  # as guard/protocol.py gives it
        scope["extensions"] = {ABORT_EXTENSION: {"abort": client.abort}}
    return scope


class Client:
    """uvicorn's side of one connection: the body's pieces at the times given (None: nothing
    more, ever), and a reader that takes `takes` body messages and then stops reading."""

    def __init__(self, pieces: list[tuple[float, bytes | None]], takes: int | None = None):
        self.pieces, self.takes = list(pieces), takes
        self.sent: list[dict] = []
        self.gone = asyncio.Event()
        self.aborted = False

    async def receive(self) -> dict:
        if not self.pieces:
            await self.gone.wait()  # the body is done: a wait for the client to leave
            return {"type": "http.disconnect"}
        delay, piece = self.pieces.pop(0)
        await asyncio.sleep(delay)
        if piece is None:
            await asyncio.Event().wait()  # a client that sends nothing more
        return {"type": "http.request", "body": piece, "more_body": bool(self.pieces)}

    async def send(self, message: dict) -> None:
        bodies = sum(m["type"] == "http.response.body" for m in self.sent)
        if self.takes is not None and bodies >= self.takes:
            await asyncio.Event().wait()  # uvicorn draining for a client that reads no more
        self.sent.append(message)

    def abort(self) -> None:
        """uvicorn's transport.abort(): the connection is lost, its receive says so."""
        self.aborted = True
        self.gone.set()

    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


class Reader:
    """MLflow's app reading a whole body, answering 200 with its size; it records how each
    body it read ended (its last message)."""

    def __init__(self) -> None:
        self.ends: list[dict] = []

    async def __call__(self, scope, receive, send):
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                self.ends.append(message)
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def _serve(guard: Guard, scope: dict, client: Client, timeout: float = 10) -> None:
    asyncio.run(asyncio.wait_for(guard(scope, client.receive, client.send), timeout))


def test_a_body_that_stops_coming_is_answered_408_and_frees_the_body_budget(tmp_path):
    """One process's whole body budget held by a client that declared the largest body and
    sends no more of it: every other request with a body would get 503 until it left."""
    app = Reader()
    guard = _guard(tmp_path, app, max_body_bytes=MIB)
    declared = [("content-length", str(MIB))]
    stalled = Client([(0, b"x" * 1024), (0, None)])
    statuses: list[int | None] = []

    async def run():
        held = asyncio.create_task(
            guard(
                _scope("/api/2.0/mlflow/runs/log-batch", "POST", declared),
                stalled.receive,
                stalled.send,
            )
        )
        await asyncio.sleep(STALL / 3)
        statuses.append(await small_post())
        await asyncio.wait_for(held, STALL * 3)
        statuses.append(await small_post())

    async def small_post() -> int | None:
        client = Client([(0, b"{}")])
        small = _scope("/api/2.0/mlflow/runs/log-batch", "POST", [("content-length", "2")])
        await guard(small, client.receive, client.send)
        return client.status()

    asyncio.run(run())
    assert statuses == [503, 200]  # held while the client stalled; free once it had
    assert app.ends[0] == {"type": "http.disconnect"}  # MLflow saw the client leave
    assert stalled.status() == 408
    message = json.loads(stalled.body())["message"]
    assert STALL_SETTING in message and "0.3 s" in message


def test_a_dribbled_body_stalls_though_each_piece_comes_within_the_deadline(tmp_path):
    """A byte every half deadline: never silent for long, yet no MiB ever arrives."""
    app = Reader()
    guard = _guard(tmp_path, app)
    dribble = Client([(STALL / 2, b"x")] * 50)
    _serve(
        guard, _scope("/api/2.0/mlflow/runs/log-batch", "POST", [("content-length", "50")]), dribble
    )
    assert dribble.status() == 408
    assert app.ends == [{"type": "http.disconnect"}]


def test_a_slow_steady_upload_is_not_cut(tmp_path):
    """8 MiB in half-MiB pieces, one per STALL/3: far longer than the deadline in all, each MiB
    within it."""
    app = Reader()
    guard = _guard(tmp_path, app, max_artifact_bytes=16 * MIB)
    pieces = [(STALL / 3, b"x" * (MIB // 2))] * 16
    client = Client(pieces)
    _serve(guard, _scope(ARTIFACT, "PUT", [("content-length", str(8 * MIB))]), client)
    assert (client.status(), client.body()) == (200, str(8 * MIB).encode())


def test_an_upload_that_stops_frees_its_slot_and_mlflow_sees_the_client_leave(tmp_path):
    app = Reader()
    guard = _guard(tmp_path, app, max_artifact_bytes=16 * MIB)
    stalled = Client([(0, b"x" * MIB), (0, b"x" * 1024), (0, None)])
    _serve(guard, _scope(ARTIFACT, "PUT", [("content-length", str(4 * MIB))]), stalled)
    assert stalled.status() == 408
    assert app.ends == [{"type": "http.disconnect"}]  # its upload stops, its parts aborted
    slot = guard.slots.take()
    assert slot is not None, "the stalled upload still holds the pod's only transfer slot"
    Slots.give_back(slot)


class Download:
    """MLflow's streamed download: 1 MiB messages of `size`, and a task listening for the
    client to leave that ends the stream when it does (as Starlette's StreamingResponse)."""

    def __init__(self, messages: int, pause: float = 0.0) -> None:
        self.messages, self.pause = messages, pause
        self.sent = 0
        self.left = False

    async def __call__(self, scope, receive, send):
        await receive()  # the empty body of a GET

        async def stream():
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(self.messages):
                await asyncio.sleep(self.pause)  # S3, or whatever the server waits for
                await send({"type": "http.response.body", "body": b"x" * MIB, "more_body": True})
                self.sent += 1
            await send({"type": "http.response.body", "body": b""})

        async def listen():
            await receive()
            self.left = True

        streaming, listening = asyncio.create_task(stream()), asyncio.create_task(listen())
        await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
        for task in (streaming, listening):
            task.cancel()


def test_a_download_the_client_stops_taking_is_aborted_and_frees_its_slot(tmp_path):
    app = Download(messages=64)
    guard = _guard(tmp_path, app, transfers=1)
    reader = Client([(0, b"")], takes=2)  # takes 2 MiB, then reads nothing more

    async def run():
        served = asyncio.create_task(
            guard(_scope(ARTIFACT, "GET", client=reader), reader.receive, reader.send)
        )
        await asyncio.sleep(STALL * 2)
        assert served.done(), "the download still waits for a client that takes nothing"
        return guard.slots.take()

    slot = asyncio.run(run())
    assert slot is not None, "the stalled download still holds the pod's only transfer slot"
    Slots.give_back(slot)
    assert reader.aborted  # its connection closed without waiting to flush
    assert app.left and app.sent < 64  # MLflow saw the client leave and stopped streaming


def test_a_stream_the_server_paces_itself_is_not_cut(tmp_path):
    """Only waiting on the client counts: a response whose messages the server spaces out (a
    gateway's streamed completion, S3 slow to answer) runs past the deadline in all."""
    app = Download(messages=6, pause=STALL / 2)
    guard = _guard(tmp_path, app)
    client = Client([(0, b"")])
    _serve(guard, _scope(ARTIFACT, "GET"), client)
    assert (client.status(), len(client.body())) == (200, 6 * MIB)
    assert not app.left  # the listener's wait, after the body, is not timed


def test_the_servers_own_cancellation_is_passed_on_not_taken_for_a_stall(tmp_path):
    """A shutdown cancels the request's task while it waits on its client: the request ends
    cancelled, as it would without the guard, and is not answered 408."""
    guard = _guard(tmp_path, Reader())
    waiting = Client([(0, b"x"), (0, None)])
    scope = _scope("/api/2.0/mlflow/runs/log-batch", "POST", [("content-length", "10")])

    async def run() -> bool:
        served = asyncio.create_task(guard(scope, waiting.receive, waiting.send))
        await asyncio.sleep(STALL / 3)
        served.cancel()
        await asyncio.wait({served})
        return served.cancelled()

    assert asyncio.run(run())
    assert waiting.status() is None
