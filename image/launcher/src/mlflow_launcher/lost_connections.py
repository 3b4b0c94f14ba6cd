"""A MySQL connection whose TLS stream has ended counts as lost, so the pool replaces it.

libmariadb (the image's MySQL client library, under mysqlclient) reports a connection that the
server or the network closed without TLS's close_notify as error 2026, "TLS/SSL error:
unexpected eof while reading" (OpenSSL 3 reports such an end as a protocol error; MariaDB's
server closes that way on purpose, and a restart, a failover or a cut route closes that way
too). SQLAlchemy's MySQL dialect counts only other codes (2006, 2013, ...) as a disconnect, so
MLflow's `pool_pre_ping` raised the error instead of reconnecting. Once the database was back,
each stale pooled connection failed one request: a search got 503, and a valid login whose
check met one got a 500, or MLflow's 401 (both seen; tests/integration/test_bounded_waits.py).
PyMySQL reported the same end as 2013 and reconnected.

Every 2026 is marked a disconnect here: SQLAlchemy then reconnects at the pre-ping, or
invalidates the pool after a failed statement. A 2026 while connecting (no TLS, a certificate
that does not verify) still fails that connect, and wait.classify still decides whether it is
final.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from mlflow_launcher.wait import MYSQL_TLS_ERROR


def _lost_tls_stream(context: Any) -> None:
    """SQLAlchemy's handle_error hook (an ExceptionContext): marks, never replaces, the error."""
    if context.is_disconnect or context.dialect.name != "mysql":
        return
    args = getattr(context.original_exception, "args", None)
    if args and args[0] == MYSQL_TLS_ERROR:
        context.is_disconnect = True


def install() -> None:
    """For every engine of this process, MLflow's included (idempotent)."""
    if not event.contains(Engine, "handle_error", _lost_tls_stream):
        event.listen(Engine, "handle_error", _lost_tls_stream)
