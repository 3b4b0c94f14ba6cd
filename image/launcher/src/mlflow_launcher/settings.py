"""Settings from the environment (the chart's ConfigMap), validated up front.

All problems are reported at once, each naming its variable, so a bad ConfigMap is fixed in one
round trip rather than one crash-loop per variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from mlflow_launcher.errors import LauncherError

T = TypeVar("T")

DEFAULT_PORTS = {"mysql": 3306, "postgres": 5432}
DEFAULT_CONNECT_ATTEMPTS = 10
DEFAULT_BACKOFF_MAX_SECONDS = 30.0
# The defaults below are the chart's values too (k8s_charts/contract.py sets them in the
# ConfigMap and sizes the server's startup probe from them); tests/unit/launcher/
# test_start_budget.py keeps the two in step.
DB_WAIT_ENV = "MLFLOW_DB_WAIT_SECONDS"
DEFAULT_DB_WAIT_SECONDS = 90.0
"""The whole wait for the database (and its read replica), counted from the launcher's start:
a bit more than an RDS Multi-AZ failover takes (typically 60-120 s: a pod that starts in one
waits it out or restarts with this message and tries again)."""
DEFAULT_DB_CONNECT_TIMEOUT_SECONDS = 5
"""Per connection attempt. The database is in the pod's VPC: a connect takes milliseconds."""
DEFAULT_DB_NETWORK_TIMEOUT_SECONDS = 10
"""How long a connection may stay silent (packets dropped, no reset) before it is given up."""
DEFAULT_DB_STATEMENT_TIMEOUT_SECONDS = 60
"""The server's bound on one statement (MLflow's requests)."""
LOCK_TIMEOUT_ENV = "MLFLOW_MIGRATION_LOCK_TIMEOUT_SECONDS"
# Long enough for any MLflow upgrade, short enough that a lock held by a lost session shows up as
# a failed init container within minutes instead of a pod stuck in Init for hours.
DEFAULT_MIGRATION_LOCK_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class DbEnvironment:
    """Where the database is and how hard to try reaching it."""

    engine: str  # "mysql" | "postgres"
    host: str
    port: int
    name: str
    secret_id: str
    ca_bundle: str
    connect_attempts: int
    backoff_max_seconds: float
    region: str | None
    migration_lock_timeout_seconds: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_SECONDS
    wait_seconds: float = DEFAULT_DB_WAIT_SECONDS
    connect_timeout_seconds: int = DEFAULT_DB_CONNECT_TIMEOUT_SECONDS
    network_timeout_seconds: int = DEFAULT_DB_NETWORK_TIMEOUT_SECONDS
    statement_timeout_seconds: int = DEFAULT_DB_STATEMENT_TIMEOUT_SECONDS
    read_host: str | None = None
    """A read replica of this database (same login, name and TLS): MLflow sends reads there."""
    read_port: int | None = None

    def replica(self) -> DbEnvironment | None:
        """The read replica's settings, or None when there is none."""
        if self.read_host is None:
            return None
        return replace(self, host=self.read_host, port=self.read_port or self.port, read_host=None)


@dataclass(frozen=True)
class ServerEnvironment:
    """What ``mlflow server`` is started with (everything but the store URI goes to argv)."""

    host: str
    port: int
    workers: int
    artifacts_destination: str
    allowed_hosts: tuple[str, ...]
    cors_allowed_origins: tuple[str, ...] = ()
    """Origins (besides localhost) whose browser pages may send state-changing API requests."""


class _Reader:
    """Reads variables and collects every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name, "").strip()
        if value:
            return value
        if default is None:
            self.problems.append(f"{name} is not set")
        return default

    def parse(
        self, name: str, convert: Callable[[str], T], what: str, default: str | None = None
    ) -> T | None:
        value = self.raw(name, default)
        if value is None:
            return None
        try:
            return convert(value)
        except ValueError:
            self.problems.append(f"{name} must be {what}, got {value!r}")
            return None

    def check(self) -> None:
        if self.problems:
            raise LauncherError("invalid environment: " + "; ".join(self.problems))


def _engine(value: str) -> str:
    if value not in DEFAULT_PORTS:
        raise ValueError(value)
    return value


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(value)
    return port


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _finite_seconds(value: str) -> float:
    number = _positive_float(value)
    if not math.isfinite(number):  # "inf" would bring back the endless wait
        raise ValueError(value)
    return number


def _hosts(value: str) -> tuple[str, ...]:
    hosts = tuple(h.strip() for h in value.split(",") if h.strip())
    if not hosts:
        raise ValueError(value)
    return hosts


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in value.split(",") if o.strip())
    # MLflow compares scheme://host[:port] exactly (or with fnmatch when a `*` is present);
    # a path or a missing scheme would never match what a browser sends.
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ValueError(origin)
    return origins


def _readable_file(value: str) -> str:
    if not Path(value).is_file() or not os.access(value, os.R_OK):
        raise ValueError(value)
    return value


def _server(r: _Reader, defaults: Mapping[str, str]) -> ServerEnvironment | None:
    host = r.raw("MLFLOW_HOST", defaults.get("MLFLOW_HOST", "0.0.0.0"))  # noqa: S104 - pod IP
    port = r.parse("MLFLOW_PORT", _port, "a TCP port", defaults.get("MLFLOW_PORT", "5000"))
    workers = r.parse(
        "MLFLOW_WORKERS", _positive_int, "a positive integer", defaults.get("MLFLOW_WORKERS", "2")
    )
    destination = r.raw(
        "MLFLOW_ARTIFACTS_DESTINATION", defaults.get("MLFLOW_ARTIFACTS_DESTINATION")
    )
    allowed = r.parse(
        "MLFLOW_ALLOWED_HOSTS",
        _hosts,
        "a comma-separated list of Host patterns",
        defaults.get("MLFLOW_ALLOWED_HOSTS"),
    )
    # Optional: without it MLflow admits browser writes from localhost pages only.
    origins = r.parse(
        "MLFLOW_CORS_ALLOWED_ORIGINS",
        _origins,
        "a comma-separated list of origins such as https://mlflow.example.com",
        defaults.get("MLFLOW_CORS_ALLOWED_ORIGINS", ""),
    )
    if None in (host, port, workers, destination, allowed, origins):
        return None
    return ServerEnvironment(host, port, workers, destination, allowed, origins)  # type: ignore[arg-type]


def _db(r: _Reader) -> DbEnvironment | None:
    engine = r.parse("MLFLOW_DB_ENGINE", _engine, '"mysql" or "postgres"')
    host = r.raw("MLFLOW_DB_HOST")
    # An invalid engine is already reported; its port default does not matter then.
    default_port = str(DEFAULT_PORTS.get(engine or "mysql"))
    port = r.parse("MLFLOW_DB_PORT", _port, "a TCP port", default_port)
    name = r.raw("MLFLOW_DB_NAME", "mlflow")
    secret_id = r.raw("MLFLOW_DB_SECRET_ID")
    ca_bundle = r.parse("MLFLOW_DB_CA_BUNDLE", _readable_file, "a readable CA bundle file")
    attempts = r.parse(
        "MLFLOW_DB_CONNECT_ATTEMPTS",
        _positive_int,
        "a positive integer",
        str(DEFAULT_CONNECT_ATTEMPTS),
    )
    backoff = r.parse(
        "MLFLOW_DB_CONNECT_BACKOFF_MAX_SECONDS",
        _positive_float,
        "a positive number of seconds",
        str(DEFAULT_BACKOFF_MAX_SECONDS),
    )
    lock_timeout = r.parse(
        LOCK_TIMEOUT_ENV,
        _finite_seconds,
        "a positive number of seconds",
        str(DEFAULT_MIGRATION_LOCK_TIMEOUT_SECONDS),
    )
    wait_seconds = r.parse(
        DB_WAIT_ENV, _finite_seconds, "a positive number of seconds", str(DEFAULT_DB_WAIT_SECONDS)
    )
    timeouts = {
        var: r.parse(var, _positive_int, "a positive whole number of seconds", str(default))
        for var, default in (
            ("MLFLOW_DB_CONNECT_TIMEOUT_SECONDS", DEFAULT_DB_CONNECT_TIMEOUT_SECONDS),
            ("MLFLOW_DB_NETWORK_TIMEOUT_SECONDS", DEFAULT_DB_NETWORK_TIMEOUT_SECONDS),
            ("MLFLOW_DB_STATEMENT_TIMEOUT_SECONDS", DEFAULT_DB_STATEMENT_TIMEOUT_SECONDS),
        )
    }
    # Optional: a read replica of the same instance (RDS replicas share its login and port).
    read_host = r.raw("MLFLOW_DB_READ_HOST", "")
    read_port = r.parse("MLFLOW_DB_READ_PORT", _port, "a TCP port", str(port or default_port))
    region = r.env.get("AWS_REGION") or r.env.get("AWS_DEFAULT_REGION") or None
    values = (engine, host, port, name, secret_id, ca_bundle, attempts, backoff)
    bounds = (lock_timeout, wait_seconds, read_port, *timeouts.values())
    if None in values or None in bounds:
        return None
    connect, network, statement = timeouts.values()
    return DbEnvironment(
        *values,  # type: ignore[arg-type]
        region=region,
        migration_lock_timeout_seconds=lock_timeout,  # type: ignore[arg-type]
        wait_seconds=wait_seconds,  # type: ignore[arg-type]
        connect_timeout_seconds=connect,  # type: ignore[arg-type]
        network_timeout_seconds=network,  # type: ignore[arg-type]
        statement_timeout_seconds=statement,  # type: ignore[arg-type]
        read_host=read_host or None,
        read_port=read_port if read_host else None,
    )


def load_db(env: Mapping[str, str]) -> DbEnvironment:
    """Settings for ``migrate``."""
    reader = _Reader(env)
    db = _db(reader)
    reader.check()
    assert db is not None
    return db


def load_db_and_server(env: Mapping[str, str]) -> tuple[DbEnvironment, ServerEnvironment]:
    """Settings for ``serve`` (validated together, so every problem shows in one message)."""
    reader = _Reader(env)
    db = _db(reader)
    server = _server(reader, {})
    reader.check()
    assert db is not None and server is not None
    return db, server


def load_local_server(env: Mapping[str, str], defaults: Mapping[str, str]) -> ServerEnvironment:
    """Settings for ``local``: the embedded defaults apply where the environment is silent."""
    reader = _Reader(env)
    server = _server(reader, defaults)
    reader.check()
    assert server is not None
    return server
