"""OTLP trace bodies sent compressed, inflated here within the body limit.

MLflow's OTLP endpoint (POST /v1/traces, mlflow/server/otel_api.py) decompresses a gzip or
deflate body whole, without a bound (mlflow/tracing/utils/otlp.py, decompress_otlp_body:
`gzip.decompress`). Deflate packs a run of zeros about 1000 to 1: a body of 8 MiB, within the
body limit, inflates to about 8 GiB, and one signed-in request (a careless exporter's batch, or
a hostile one) would take the pod past its memory limit, with every request in flight. The
guard inflates such a body itself, a piece at a time, stops as soon as the result passes the
body limit (413), and hands MLflow the plain body, its Content-Encoding removed.
"""

from __future__ import annotations

import zlib

PATH = "/v1/traces"
"""MLflow's OTLP traces endpoint (mlflow/tracing/utils/otlp.py, OTLP_TRACES_PATH)."""
CHUNK_BYTES = 256 * 1024
"""Output per step of inflation: the most that can pass the limit before the check."""

_WINDOW_BITS = {
    # gzip's header and trailer (zlib: 16 + MAX_WBITS); as gzip.decompress, several members.
    b"gzip": (16 + zlib.MAX_WBITS,),
    # RFC 1950's zlib stream, else a raw deflate stream, as MLflow tries them.
    b"deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
}


class TooLarge(Exception):
    """The body inflates past the limit."""


def encoded(path: str, encoding: bytes | None) -> bool:
    """Whether this is an OTLP body in an encoding the guard inflates."""
    return path == PATH and encoding is not None and encoding.strip().lower() in _WINDOW_BITS


def inflate(body: bytes, encoding: bytes, limit: int) -> bytes | None:
    """`body` inflated; TooLarge as soon as it passes `limit` bytes; None if it does not
    decode (MLflow then answers its own 400 for it)."""
    for bits in _WINDOW_BITS[encoding.strip().lower()]:
        try:
            return _inflate(body, bits, limit)
        except zlib.error:
            continue
    return None


def _inflate(body: bytes, bits: int, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    pending = body
    while pending:
        decoder = zlib.decompressobj(bits)
        data = pending
        while data or not decoder.eof:
            piece = decoder.decompress(data, CHUNK_BYTES)
            size += len(piece)
            if size > limit:
                raise TooLarge
            out.append(piece)
            data = decoder.unconsumed_tail
            if not piece and not data:
                break
        if not decoder.eof:
            raise zlib.error("truncated stream")
        # gzip allows members one after another; a raw or zlib stream ends at its end.
        pending = decoder.unused_data if bits > zlib.MAX_WBITS else b""
    return b"".join(out)
