"""The part logic of proxied uploads streamed to S3 (mlflow_launcher/stream_parts.py); the
repository itself runs against real servers in tests/integration/test_large_artifacts.py."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from mlflow_launcher.contract import MAX_UPLOAD_PARTS, MIN_UPLOAD_PART_MIB
from mlflow_launcher.stream_parts import MIB, AsyncStreamReader, part_bytes

S3_MIN_PART_BYTES = 5 * MIB


@pytest.mark.parametrize("limit_mib", [1, 2048, 80 * 1024, 1024 * 1024])
def test_parts_hold_the_largest_artifact_allowed(limit_mib):
    size, smallest = part_bytes(limit_mib * MIB), MIN_UPLOAD_PART_MIB * MIB
    assert size >= smallest >= S3_MIN_PART_BYTES
    assert size % MIB == 0
    assert size * MAX_UPLOAD_PARTS >= limit_mib * MIB
    # No larger than it must be: one MiB less would not fit, or it is the minimum.
    assert size == smallest or (size - MIB) * MAX_UPLOAD_PARTS < limit_mib * MIB


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop in a thread of its own, as uvicorn's is while the upload thread reads."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    asyncio.run_coroutine_threadsafe(_settle(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


async def _settle() -> None:
    """What a test left waiting on the loop (a cancelled read, a stalled body) ends first."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


async def _chunks(pieces: list[bytes], error: BaseException | None = None) -> AsyncIterator[bytes]:
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece
    if error is not None:
        raise error


def _pieces(total: int, seed: int) -> list[bytes]:
    """A body in chunks of uneven sizes, empty ones included (ASGI allows them)."""
    rng, pieces, left = random.Random(seed), [], total  # noqa: S311 (sizes, not secrets)
    while left:
        size = min(left, rng.choice([0, 1, 7, 1000, 65536, 300_000]))
        pieces.append(rng.randbytes(size))
        left -= size
    return pieces


@pytest.mark.parametrize("seed", range(5))
def test_reads_return_whole_parts_until_the_last(loop, seed):
    pieces = _pieces(1_234_567, seed)
    reader = AsyncStreamReader(_chunks(pieces), loop)
    part = 100_000
    parts = []
    while data := reader.read(part):
        parts.append(data)
    assert all(len(p) == part for p in parts[:-1])
    assert 0 < len(parts[-1]) <= part
    assert b"".join(parts) == b"".join(pieces)
    assert reader.read(part) == b""


def test_read_without_a_size_returns_the_rest(loop):
    pieces = _pieces(500_000, 9)
    reader = AsyncStreamReader(_chunks(pieces), loop)
    first = reader.read(123)
    assert first + reader.read() == b"".join(pieces)


def test_an_empty_body_reads_as_the_end(loop):
    assert AsyncStreamReader(_chunks([]), loop).read(MIB) == b""


class Disconnected(Exception):
    """Stands in for Starlette's ClientDisconnect."""


def test_a_client_gone_mid_body_is_an_error_not_the_end(loop):
    """Taken for the end, the cut body would be completed into an object."""
    reader = AsyncStreamReader(_chunks([b"a" * 1000] * 3, Disconnected()), loop)
    assert reader.read(1000) == b"a" * 1000
    with pytest.raises(Disconnected):
        reader.read(5000)


def test_cancel_stops_a_read_waiting_for_a_chunk(loop):
    never = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"x"
        await never.wait()
        yield b"y"

    reader = AsyncStreamReader(stalled(), loop)
    failed: list[BaseException] = []

    def read() -> None:
        try:
            reader.read(10)
        except BaseException as error:  # what the upload thread sees
            failed.append(error)

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(0.2)
    assert thread.is_alive(), "the read did not wait for the stalled body"
    reader.cancel()
    thread.join(5)
    assert not thread.is_alive() and failed, "the read is still waiting after cancel"
    with pytest.raises(asyncio.CancelledError):
        reader.read(1)  # and the next read does not wait at all
