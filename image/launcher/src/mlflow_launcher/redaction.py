"""The forms a secret can take in a log line, for the log filter to mask."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL

SHORTEST = 4
"""Shorter forms would match ordinary text by chance."""


def _as_in_a_url(value: str) -> str:
    """The value as SQLAlchemy writes a password into a URL string."""
    rendered = URL.create("x", username="u", password=value, host="h")
    return rendered.render_as_string(hide_password=False).split("u:", 1)[1].rsplit("@h", 1)[0]


def forms(value: str) -> set[str]:
    """Raw, and URL-encoded as urllib and as SQLAlchemy do it (SQLAlchemy leaves spaces and
    some punctuation as they are, and is what a store URI shows)."""
    found = {value, quote(value, safe=""), quote_plus(value), _as_in_a_url(value)}
    return {form for form in found if len(form) >= SHORTEST}
