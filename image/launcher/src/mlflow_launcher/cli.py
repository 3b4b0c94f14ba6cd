"""``mlflow-launcher {migrate,serve,local,verify}``: the image's entrypoint (under tini)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, Engine

from mlflow_launcher import dburl, schema, secret, server, settings, verify, wait
from mlflow_launcher.errors import LauncherError

log = logging.getLogger("mlflow_launcher")

LOCAL_DIR_ENV = "MLFLOW_LOCAL_DIR"
LOCAL_DEFAULT_DIR = ".local-mlflow"
LOCAL_DEFAULTS = {
    "MLFLOW_HOST": "127.0.0.1",
    "MLFLOW_PORT": "5000",
    "MLFLOW_WORKERS": "1",
    "MLFLOW_ALLOWED_HOSTS": "localhost,localhost:*,127.0.0.1,127.0.0.1:*",
}


class _Redact(logging.Filter):
    """Masks secrets (the database password; for `verify`, the signal URL and the tracking
    password) in every record: a second line of defence behind careful messages."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for value in self.secrets:
            message = message.replace(value, "***")
        record.msg, record.args = message, None
        return True


_redact = _Redact()


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s mlflow-launcher %(levelname)s %(message)s"))
    handler.addFilter(_redact)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _as_in_a_url(password: str) -> str:
    """The password as SQLAlchemy writes it into a URL string."""
    rendered = URL.create("x", username="u", password=password, host="h")
    return rendered.render_as_string(hide_password=False).split("u:", 1)[1].rsplit("@h", 1)[0]


def _connect(db: settings.DbSettings) -> tuple[Engine, URL]:
    """Secret -> URL -> engine, then wait until the database answers over verified TLS."""
    creds = secret.fetch_credentials(db.secret_id, region=db.region)
    url = dburl.build_url(db, creds)
    # Mask the raw, the driver's and the URL-encoded forms: urllib's, and SQLAlchemy's own,
    # which differs (it leaves spaces and some punctuation as they are) and is what the store
    # URI shows.
    for pw in {creds.password, url.password}:
        forms = {pw, quote(pw, safe=""), quote_plus(pw), _as_in_a_url(pw)}
        _redact.secrets += [v for v in forms if len(v) >= 4]
    engine = wait.make_engine(url)
    log.info(
        "connecting to %s database %s:%s/%s as %s (TLS verified against %s)",
        db.engine,
        db.host,
        db.port,
        db.name,
        creds.username,
        db.ca_bundle,
    )
    policy = wait.RetryPolicy(db.connect_attempts, db.backoff_max_seconds)
    wait.wait_for_database(engine, policy, ca_bundle=db.ca_bundle)
    return engine, url


def cmd_migrate() -> None:
    db = settings.load_db(os.environ)
    engine, _ = _connect(db)
    schema.migrate(engine, db.migration_lock_timeout_seconds)


def cmd_serve() -> None:
    db, srv = settings.load_db_and_server(os.environ)
    engine, url = _connect(db)
    schema.require_head(engine)
    engine.dispose()
    log.info("starting mlflow server on %s:%s (%d workers)", srv.host, srv.port, srv.workers)
    server.exec_server(srv, dburl.uri_for_mlflow(url))


def cmd_local() -> None:
    """Preview the server as configured, on a SQLite file and a local artifact folder."""
    base = Path(os.environ.get(LOCAL_DIR_ENV) or LOCAL_DEFAULT_DIR).resolve()
    (base / "artifacts").mkdir(parents=True, exist_ok=True)
    defaults = {**LOCAL_DEFAULTS, "MLFLOW_ARTIFACTS_DESTINATION": str(base / "artifacts")}
    srv = settings.load_local_server(os.environ, defaults)
    url = URL.create("sqlite", database=str(base / "mlflow.db"))
    schema.migrate(wait.make_engine(url))
    log.info("local preview: http://%s:%s (data in %s)", srv.host, srv.port, base)
    server.exec_server(srv, dburl.uri_for_mlflow(url))


def cmd_verify() -> None:
    """Prove the deployed server works under each of its names; tell CloudFormation."""
    verify.run(os.environ, _redact.secrets)


COMMANDS = {
    "migrate": (cmd_migrate, "bring the database schema to head under an advisory lock"),
    "serve": (cmd_serve, "check the schema is at head, then exec mlflow server"),
    "local": (cmd_local, "preview the server on SQLite + a local folder (no AWS)"),
    "verify": (cmd_verify, "use the deployed server as a user would; signal CloudFormation"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlflow-launcher", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        COMMANDS[args.command][0]()
    except LauncherError as exc:
        log.error("%s", exc)
        return exc.exit_code
    return 0
