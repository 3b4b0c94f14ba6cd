"""SQL trace rollups left behind: the one check of the store that `mlflow server` makes before
it starts uvicorn and the launcher's other checks do not.

MLflow 3.17.2 (mlflow/server/__init__.py `_run_server`, through
mlflow.tracing.trace_rollup_service `validate_sql_trace_rollup_startup`) refuses to start with
SQL trace rollups off (MLFLOW_SQL_TRACE_ROLLUPS_ENABLED, default false) while rows of them are
left in the store: the rollups would go stale. `serve` makes the same check on the launcher's
own connection, without importing MLflow (seconds of CPU that the workers spend again): the
same tables (mlflow.store.db.trace_rollups, the built families' models), the same reading of
the variable (mlflow.environment_variables `_BooleanEnvironmentVariable`).
tests/unit/launcher/test_launcher_rollups.py pins the table names and the verdicts to MLflow's
own; tests/integration/test_migrations.py refuses a store with a row left, on both engines.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlflow_launcher.errors import LauncherError

ENABLED = "MLFLOW_SQL_TRACE_ROLLUPS_ENABLED"
TABLES = (
    "sql_trace_metric_daily_rollups",
    "sql_span_cost_daily_rollups",
    "sql_assessment_daily_rollups",
)
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def enabled(env: Mapping[str, str]) -> bool:
    """The server's reading of MLFLOW_SQL_TRACE_ROLLUPS_ENABLED in `env`; a value MLflow would
    refuse in every worker is refused here, once."""
    value = env.get(ENABLED)
    if value is None:
        return False
    if value.lower() not in _TRUE + _FALSE:
        raise LauncherError(
            f"invalid environment: {ENABLED}={value!r}: MLflow takes true, false, 1 or 0 (any case)"
        )
    return value.lower() in _TRUE


def refuse_left_behind(engine: Engine, env: Mapping[str, str]) -> None:
    """With rollups off in the server's environment `env`, refuse a store holding any."""
    if enabled(env):
        return
    present = set(sa.inspect(engine).get_table_names())
    with engine.connect() as connection:
        left = [
            table
            for table in TABLES
            if table in present
            and connection.execute(
                sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)
            ).first()
            is not None
        ]
    if left:
        raise LauncherError(
            f"SQL trace rollups are off ({ENABLED} unset or false) but the database holds "
            f"rollup rows ({', '.join(left)}), which would go stale: turn them back on "
            f"(server.extra_env {ENABLED}: 'true'), or stop every MLflow server on this "
            "database and delete them with `mlflow db delete-trace-rollups <database URI>` "
            "(MLflow 3.17.2's own refusal)"
        )
