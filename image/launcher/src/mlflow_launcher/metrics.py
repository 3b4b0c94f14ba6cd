"""Prometheus /metrics (`mlflow server --expose-prometheus`): a clean counters directory, and,
with authentication on, the login a scraper uses (MLflow serves /metrics to signed-in users)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

from mlflow_launcher.secret import Credentials

log = logging.getLogger(__name__)

METRICS_DIR_ENV = "MLFLOW_EXPOSE_PROMETHEUS"
SCRAPER_SECRET_ENV = "MLFLOW_AUTH_METRICS_SECRET_ID"  # noqa: S105 - a variable's name


def reset_directory(env: Mapping[str, str]) -> None:
    """prometheus_client's multiprocess mode sums every file in the directory: the files of a
    container this pod ran before (a restart keeps the emptyDir) would add dead workers'
    counts for good. Emptied before the server starts."""
    path = env.get(METRICS_DIR_ENV, "").strip()
    if not path:
        return
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)


def ensure_scraper(auth_database_uri: str, login: Credentials) -> None:
    """Create the scraper's user in the auth database unless it exists (a plain user: no
    admin rights; it reads what the default permission allows). Called by `migrate`, with
    the auth schema at head."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth_database_uri)
    try:
        if store.has_user(login.username):
            log.info("metrics user %s exists", login.username)
            return
        store.create_user(login.username, login.password)
        log.info("created the metrics user %s (for scraping /metrics)", login.username)
    finally:
        store.engine.dispose()
