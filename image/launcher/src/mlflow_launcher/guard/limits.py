"""The limits each server process enforces, from the environment (the chart's ConfigMap).

Parsed twice: by `serve` before it execs MLflow (so a bad value stops the pod with the
variable's name, not a crash loop of uvicorn workers), and by each worker when it builds the
app. Nothing here imports MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlflow_launcher import contract, settings

MIB = 1024 * 1024

# Names, defaults and bounds: the contract's (its declarations say why each default).
MAX_BODY_ENV = contract.MAX_REQUEST_BODY_MIB.name
MAX_ARTIFACT_ENV = contract.MAX_PROXIED_ARTIFACT_MIB.name
TRANSFERS_ENV = contract.CONCURRENT_ARTIFACT_TRANSFERS.name
SIGN_IN_CHECKS_ENV = contract.CONCURRENT_SIGN_IN_CHECKS.name
SIGN_IN_FAILURES_ENV = contract.SIGN_IN_FAILURES_PER_MINUTE.name
HEADER_TIMEOUT_ENV = contract.HEADER_TIMEOUT_SECONDS.name
CLIENT_STALL_ENV = contract.CLIENT_STALL_SECONDS.name

ANONYMOUS_BODY_BYTES = 64 * 1024
"""What a request without a login may carry while auth is on: MLflow refuses it anyway, but
only after its Flask bridge has read the whole body into memory."""
BODY_BUDGET_REQUESTS = 1
"""Bodies of the largest allowed size a process holds at once (smaller ones share the budget);
one more gets a 503 to retry. Once MLflow has a body it costs several times its size: its
bridge holds two copies, and parsing JSON multiplies it (measured: a 15 MiB JSON array of
integers sent to log-batch grew a worker by 120 MiB, BODY_EXPANSION)."""
BODY_EXPANSION = 8
HEADER_TIMEOUT_SECONDS: int = contract.HEADER_TIMEOUT_SECONDS.default
"""uvicorn waits forever for a request's headers by default, so idle or dribbling connections
would pile up until the process runs out of file descriptors or memory."""
LINGER_BYTES = 64 * MIB
LINGER_SECONDS = 10.0
"""Before it refuses a request whose body it has not read, the guard reads and drops up to
this much of it: a client still sending would otherwise get a connection reset instead of the
refusal's reason. A larger body is cut off (the connection closes) once this much is gone."""
SIGN_IN_QUEUE = 64
"""Requests a process lets wait for a free password check; more get 503 at once."""
SIGN_IN_WAIT_SECONDS = 10.0
FAILURE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Limits:
    """What one server process enforces (see docs/operations.md, "Limits")."""

    max_body_bytes: int = contract.MAX_REQUEST_BODY_MIB.default * MIB
    max_artifact_bytes: int = contract.MAX_PROXIED_ARTIFACT_MIB.default * MIB
    transfers: int = contract.CONCURRENT_ARTIFACT_TRANSFERS.default
    """Proxied artifact transfers per pod (all its processes together)."""
    sign_in_checks: int = contract.CONCURRENT_SIGN_IN_CHECKS.default
    sign_in_failures: int = contract.SIGN_IN_FAILURES_PER_MINUTE.default
    """Failed password checks per minute for one login from one source before 429."""
    header_timeout_seconds: int = HEADER_TIMEOUT_SECONDS
    client_stall_seconds: float = contract.CLIENT_STALL_SECONDS.default
    """Waiting on a request's client for one MiB of its body or answer (guard/stall.py)."""

    @property
    def body_budget_bytes(self) -> int:
        return self.max_body_bytes * BODY_BUDGET_REQUESTS


def load(env: Mapping[str, str]) -> Limits:
    """The limits, defaults where a variable is unset; every bad value in one error."""
    values = settings.parse(
        env,
        contract.MAX_REQUEST_BODY_MIB,
        contract.MAX_PROXIED_ARTIFACT_MIB,
        contract.CONCURRENT_ARTIFACT_TRANSFERS,
        contract.CONCURRENT_SIGN_IN_CHECKS,
        contract.SIGN_IN_FAILURES_PER_MINUTE,
        contract.HEADER_TIMEOUT_SECONDS,
        contract.CLIENT_STALL_SECONDS,
    )
    return Limits(
        max_body_bytes=values[MAX_BODY_ENV] * MIB,
        max_artifact_bytes=values[MAX_ARTIFACT_ENV] * MIB,
        transfers=values[TRANSFERS_ENV],
        sign_in_checks=values[SIGN_IN_CHECKS_ENV],
        sign_in_failures=values[SIGN_IN_FAILURES_ENV],
        header_timeout_seconds=values[HEADER_TIMEOUT_ENV],
        client_stall_seconds=values[CLIENT_STALL_ENV],
    )
