"""What each server process enforces before MLflow sees a request: the guard (asgi.py), its
limits (limits.py), password checks (sign_in.py), proxied transfers (transfers.py), and the
request-header deadline of its HTTP protocol (protocol.py). See docs/operations.md, "Limits"."""

PROTOCOL = f"{__name__}.protocol:HeaderDeadlineProtocol"
"""uvicorn's `--http` import string (UVICORN_HTTP) for the protocol with the header deadline."""
