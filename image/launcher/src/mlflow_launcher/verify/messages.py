"""Errors and answers cut to the one line a stack event's reason has room for."""

from __future__ import annotations

import json
import re

MAX_ERROR_CHARS = 300

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()\]>]+)")
_TOO_MANY = re.compile(r"too many (\d{3}) error responses")
_API_PREFIX = re.compile(r"^API request to \S+ failed with (?:timeout )?exception ")


def _cause(exc: BaseException) -> BaseException:
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else exc


def one_line(text: str, limit: int | None = MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        return text[: limit - 3] + "..."
    return text


def short_error(exc: BaseException) -> str:
    """The part of an error that says what went wrong, on one line."""
    cause = _cause(exc)
    if isinstance(cause, OSError) and cause.strerror:
        return one_line(cause.strerror)
    text = " ".join(str(cause).split()) or type(cause).__name__
    if match := _TOO_MANY.search(text):
        # The client's retries drop the server's answer; the server logs the error itself.
        return f"the server answered HTTP {match.group(1)} on every try (its log says why)"
    if match := _ERRNO.search(text):
        return one_line(match.group(1))
    return one_line(_API_PREFIX.sub("", text))


def _mlflow_error(body: str) -> str | None:
    """`CODE: message` of an MLflow error body (JSON with error_code and message)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict) and "error_code" in parsed and "message" in parsed:
        return f"{parsed['error_code']}: {parsed['message']}"
    return None


def first_line(body: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An MLflow error body as `CODE: message`, any other body's first line."""
    body = _mlflow_error(body) or body
    lines = [line for line in body.splitlines() if line.strip()]
    return one_line(lines[0] if lines else "(empty body)", limit)
