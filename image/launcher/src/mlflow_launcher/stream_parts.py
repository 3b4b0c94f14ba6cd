"""A proxied upload's body in parts: their size, and a blocking reader of an ASGI body for the
thread that sends them (s3_stream.py). Nothing here imports MLflow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from concurrent.futures import Future

from mlflow_launcher import contract
from mlflow_launcher.guard.limits import MIB


def part_bytes(max_artifact_bytes: int) -> int:
    """The part size for the server's artifact size limit (contract.upload_part_mib)."""
    return contract.upload_part_mib(-(-max_artifact_bytes // MIB)) * MIB


class AsyncStreamReader:
    """A blocking `read(size)` over an async stream of chunks, for a thread other than the event
    loop's. `read(size)` returns `size` bytes, fewer only at the end of the stream; an error of
    the stream (a client gone away: Starlette's ClientDisconnect) is raised to the reader, never
    taken for the end of the body. The chunks of one read are gathered on `loop` in one go:
    uvicorn hands a body over in pieces of 64 KiB or less, and a round trip between the threads
    for each would cost more than the copy."""

    def __init__(self, chunks: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks: AsyncIterator[bytes] = aiter(chunks)
        self._loop = loop
        self._left = b""  # what the last chunk had beyond the last read
        self._ended = False
        self._pending: Future[tuple[list[bytes], bool]] | None = None
        self._cancelled = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        wanted = None if size is None or size < 0 else size
        parts = [self._left]
        if not self._ended and (wanted is None or len(self._left) < wanted):
            more = None if wanted is None else wanted - len(self._left)
            chunks, self._ended = self._gather(more)
            parts += chunks
        over = 0 if wanted is None else sum(map(len, parts)) - wanted
        self._left = b""
        if over > 0:
            # Only the last chunk is split, so the read costs one copy of its bytes (the join)
            # and not two (a join of more, then a slice of it): a part is 8 MiB or more.
            last = parts[-1]
            parts[-1], self._left = last[: len(last) - over], last[len(last) - over :]
        return b"".join(parts)

    def _gather(self, size: int | None) -> tuple[list[bytes], bool]:
        if self._cancelled:
            raise asyncio.CancelledError("the request was cancelled")
        self._pending = asyncio.run_coroutine_threadsafe(_gather(self._chunks, size), self._loop)
        try:
            return self._pending.result()
        finally:
            self._pending = None

    def cancel(self) -> None:
        """Make the reading thread's wait for chunks, current or next, raise: its request was
        cancelled."""
        self._cancelled = True
        pending = self._pending
        if pending is not None:
            pending.cancel()


async def _gather(chunks: AsyncIterator[bytes], size: int | None) -> tuple[list[bytes], bool]:
    """Chunks until they hold `size` bytes (None: all of them), and whether the stream ended."""
    gathered: list[bytes] = []
    held = 0
    while size is None or held < size:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            return gathered, True
        gathered.append(chunk)
        held += len(chunk)
    return gathered, False
