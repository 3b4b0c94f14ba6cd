"""Refusals the guard sends itself, before MLflow sees the request.

Each says which limit was hit and what to do, in MLflow's JSON error shape (`error_code`,
`message`), which its client turns into the exception's text. A refusal sent before the body
was read closes the connection, so a large body is not drained after the answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

NOT_AUTHENTICATED = (
    "You are not authenticated. Please see "
    "https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow "
    "on how to authenticate."
)
"""MLflow's own 401 text (mlflow/server/auth), so a refused login reads the same whichever
layer refused it."""
BASIC_CHALLENGE = (b"www-authenticate", b'Basic realm="mlflow"')


async def refuse(
    send: Send,
    status: int,
    message: str,
    *,
    error_code: str = "REQUEST_LIMIT_EXCEEDED",
    retry_after: float | None = None,
    challenge: bool = False,
) -> None:
    body = json.dumps({"error_code": error_code, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    if challenge:
        headers.append(BASIC_CHALLENGE)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def not_authenticated(send: Send) -> None:
    """The answer to a wrong password, as MLflow gives it (plain text, a Basic challenge)."""
    body = NOT_AUTHENTICATED.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                BASIC_CHALLENGE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
