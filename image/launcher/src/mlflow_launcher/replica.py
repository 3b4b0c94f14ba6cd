"""The read replica: MLflow may send reads to it only once it answers over verified TLS and
has replayed the primary's schema.

MLflow checks the replica's schema revision once, when each worker opens its store, and stops
the worker if it differs from head. Right after a migration an RDS replica can lag the primary
by seconds to minutes, the server's login (made or changed by the migration Job) included;
waiting here (bounded, like the wait for the primary) turns that lag into a log line instead
of a crash loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from mlflow_launcher import schema, wait


class ReplicaBehind(Exception):
    """The replica answers but has not replayed the primary's schema yet. Not a LauncherError:
    wait_for retries other exceptions and stops at LauncherErrors, and lag ends by itself."""


def wait_until_ready(
    engine: Engine,
    policy: wait.RetryPolicy,
    *,
    ca_bundle: str,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    head = schema.head_revision()

    def check() -> None:
        try:
            wait.probe(engine)
        except Exception as exc:  # the driver's exception types vary; classify() sorts them
            if isinstance(wait.classify(exc, ca_bundle), wait.AuthenticationFailed):
                # The primary took this login a moment ago: the replica has not replayed the
                # migration Job's CREATE USER / ALTER USER yet.
                raise ReplicaBehind(
                    "it refuses the login the primary accepts: it has not replayed the "
                    "login's creation or new password yet (replication lag)"
                ) from None
            raise
        current = schema.current_revision(engine)
        if current != head:
            raise ReplicaBehind(
                f"its schema is at revision {current or '(none)'}, the primary's at head "
                f"{head}: the replica has not replayed the migration yet (replication lag)"
            )

    url = engine.url
    wait.wait_for(
        check,
        policy,
        ca_bundle=ca_bundle,
        what=f"read replica {url.host}:{url.port}/{url.database}",
        state="ready",
        sleep=sleep,
    )
