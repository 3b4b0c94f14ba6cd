"""The limits each server process enforces, from the environment (the chart's ConfigMap).

Parsed twice: by `serve` before it execs MLflow (so a bad value stops the pod with the
variable's name, not a crash loop of uvicorn workers), and by each worker when it builds the
app. Nothing here imports MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlflow_launcher.errors import LauncherError

MIB = 1024 * 1024

MAX_BODY_ENV = "MLFLOW_MAX_REQUEST_BODY_MIB"
MAX_ARTIFACT_ENV = "MLFLOW_MAX_PROXIED_ARTIFACT_MIB"
TRANSFERS_ENV = "MLFLOW_CONCURRENT_ARTIFACT_TRANSFERS"
SIGN_IN_CHECKS_ENV = "MLFLOW_CONCURRENT_SIGN_IN_CHECKS"
SIGN_IN_FAILURES_ENV = "MLFLOW_SIGN_IN_FAILURES_PER_MINUTE"
HEADER_TIMEOUT_ENV = "MLFLOW_HEADER_TIMEOUT_SECONDS"
"""Not in the ConfigMap: the default suits every deployment; tests shorten it."""

DEFAULT_MAX_BODY_MIB = 8
"""A signed-in request's body, artifacts aside (they stream). MLflow's largest ordinary
requests are far smaller: a log_batch at MLflow's own limits (1000 metrics, 100 params of 6000
characters, 100 tags) is under 2 MiB."""
DEFAULT_MAX_ARTIFACT_MIB = 2048
DEFAULT_TRANSFERS = 2
DEFAULT_SIGN_IN_CHECKS = 2
"""Password checks a process runs at once. werkzeug's scrypt takes 32 MiB and about 67 ms of
CPU per check (measured, bench/server.py); more at once only queues them on the CPU."""
DEFAULT_SIGN_IN_FAILURES = 10

ANONYMOUS_BODY_BYTES = 64 * 1024
"""What a request without a login may carry while auth is on: MLflow refuses it anyway, but
only after its Flask bridge has read the whole body into memory."""
BODY_BUDGET_REQUESTS = 1
"""Bodies of the largest allowed size a process holds at once (smaller ones share the budget);
one more gets a 503 to retry. Once MLflow has a body it costs several times its size: its
bridge holds two copies, and parsing JSON multiplies it (measured: a 15 MiB JSON array of
integers sent to log-batch grew a worker by 120 MiB, BODY_EXPANSION)."""
BODY_EXPANSION = 8
HEADER_TIMEOUT_SECONDS = 20
"""A connection must complete its request line and headers this long after it opens or after
its previous response: uvicorn waits forever by default, so idle or dribbling connections
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

    max_body_bytes: int = DEFAULT_MAX_BODY_MIB * MIB
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_MIB * MIB
    transfers: int = DEFAULT_TRANSFERS
    """Proxied artifact transfers per pod (all its processes together)."""
    sign_in_checks: int = DEFAULT_SIGN_IN_CHECKS
    sign_in_failures: int = DEFAULT_SIGN_IN_FAILURES
    """Failed password checks per minute for one login from one source before 429."""
    header_timeout_seconds: int = HEADER_TIMEOUT_SECONDS

    @property
    def body_budget_bytes(self) -> int:
        return self.max_body_bytes * BODY_BUDGET_REQUESTS


_BOUNDS = {
    MAX_BODY_ENV: (1, 1024),
    MAX_ARTIFACT_ENV: (1, 1024 * 1024),
    TRANSFERS_ENV: (1, 64),
    SIGN_IN_CHECKS_ENV: (1, 16),
    SIGN_IN_FAILURES_ENV: (1, 10000),
    HEADER_TIMEOUT_ENV: (1, 600),
}


def load(env: Mapping[str, str]) -> Limits:
    """The limits, defaults where a variable is unset; every bad value in one error."""
    defaults = Limits()
    values = {
        MAX_BODY_ENV: defaults.max_body_bytes // MIB,
        MAX_ARTIFACT_ENV: defaults.max_artifact_bytes // MIB,
        TRANSFERS_ENV: defaults.transfers,
        SIGN_IN_CHECKS_ENV: defaults.sign_in_checks,
        SIGN_IN_FAILURES_ENV: defaults.sign_in_failures,
        HEADER_TIMEOUT_ENV: defaults.header_timeout_seconds,
    }
    problems = []
    for name, (low, high) in _BOUNDS.items():
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or not low <= int(raw) <= high:
            problems.append(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
            continue
        values[name] = int(raw)
    if problems:
        raise LauncherError("invalid environment: " + "; ".join(problems))
    return Limits(
        max_body_bytes=values[MAX_BODY_ENV] * MIB,
        max_artifact_bytes=values[MAX_ARTIFACT_ENV] * MIB,
        transfers=values[TRANSFERS_ENV],
        sign_in_checks=values[SIGN_IN_CHECKS_ENV],
        sign_in_failures=values[SIGN_IN_FAILURES_ENV],
        header_timeout_seconds=values[HEADER_TIMEOUT_ENV],
    )
