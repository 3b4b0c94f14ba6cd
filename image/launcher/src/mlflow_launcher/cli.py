"""``mlflow-launcher <command>``: the image's entrypoint (under tini); `mlflow-launcher
--help` lists the commands."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from mlflow_launcher import (
    app,
    auth,
    contract,
    dblogin,
    dburl,
    gc,
    lost_connections,
    metrics,
    readiness,
    redaction,
    replica,
    rollups,
    runner,
    schema,
    secret,
    server,
    settings,
    snapshot,
    sso,
    sso_secret,
    trace_archival,
    verify,
    wait,
    workspaces,
)
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.guard import limits
from mlflow_launcher.wait import driver_message

log = logging.getLogger("mlflow_launcher")
UVICORN_HEADER_BYTES_ENV = "UVICORN_H11_MAX_INCOMPLETE_EVENT_SIZE"
"""uvicorn's --h11-max-incomplete-event-size, read from the environment by its CLI."""

TERMINATION_LOG = "/dev/termination-log"
"""The kubelet's default terminationMessagePath."""
TERMINATION_MESSAGE_BYTES = 4096
"""The kubelet keeps at most 4096 bytes of it (and 12 KiB over all of a pod's containers)."""
LOCAL_DIR_ENV = "MLFLOW_LOCAL_DIR"
LOCAL_DEFAULT_DIR = ".local-mlflow"
LOCAL_DEFAULTS = {
    contract.HOST.name: "127.0.0.1",
    contract.WORKERS.name: "1",
    contract.ALLOWED_HOSTS.name: "localhost,localhost:*,127.0.0.1,127.0.0.1:*",
}
"""Where `local` differs from the contract's defaults (a laptop: loopback, one worker)."""


class _Redact(logging.Filter):
    """Masks secrets (the database password; for `verify`, the signal URL and the tracking
    password) in every record: a second line of defence behind careful messages."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def mask(self, message: str) -> str:
        # Longest first: a form inside a longer one must not leave the rest of the longer one.
        for value in sorted(set(self.secrets), key=len, reverse=True):
            message = message.replace(value, "***")
        return message

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.mask(record.getMessage()), None
        return True


_redact = _Redact()


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(app.LOG_FORMAT))
    handler.addFilter(_redact)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _mask(*secrets: str) -> None:
    """Mask each value in every form it could be logged in."""
    for value in secrets:
        _redact.secrets += redaction.forms(value)


_STARTED = wait.process_started()


def _policy(db: settings.DbEnvironment) -> wait.RetryPolicy:
    """One deadline for the whole wait (primary and replica), from this process's start."""
    return wait.RetryPolicy(
        db.connect_attempts, db.backoff_max_seconds, deadline=_STARTED + db.wait_seconds
    )


def _credentials(db: settings.DbEnvironment, secret_id: str | None = None) -> secret.Credentials:
    """The login in `secret_id` (default: the server's, MLFLOW_DB_SECRET_ID), masked in logs."""
    creds = secret.fetch_credentials(secret_id or db.secret_id, region=db.region)
    _mask(creds.password)
    return creds


def _connect(db: settings.DbEnvironment, creds: secret.Credentials) -> Engine:
    """Wait until the database answers over verified TLS; the engine is for the launcher's own
    quick checks (each statement bounded by the network timeout)."""
    url = dburl.build_url(db, creds, statement=db.network_timeout_seconds)
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
    wait.wait_for_database(engine, _policy(db), ca_bundle=db.ca_bundle)
    return engine


def _read_replica_uri(db: settings.DbEnvironment, creds: secret.Credentials) -> str | None:
    """The replica's store URI for MLflow (the primary's login), once the replica is ready;
    None when there is no replica."""
    read = db.replica()
    if read is None:
        return None
    log.info("read replica %s:%s: MLflow sends reads there", read.host, read.port)
    check_url = dburl.build_url(read, creds, statement=read.network_timeout_seconds)
    with wait.engine_for(check_url) as engine:
        replica.wait_until_ready(engine, _policy(read), ca_bundle=read.ca_bundle)
    return dburl.uri_for_mlflow(
        dburl.build_url(read, creds, statement=read.statement_timeout_seconds)
    )


def cmd_migrate() -> None:
    db = settings.load_db(os.environ)
    auth_settings = auth.load(os.environ)
    guard = snapshot.Guard(snapshot.load(os.environ))
    creds = _credentials(db)
    admin_secret_id = os.environ.get(dblogin.ADMIN_SECRET_ENV, "").strip()
    if admin_secret_id:
        # The migration Job: with the master login, make the server's login and give it
        # MLflow's databases; then migrate as the server's login, which so owns what it makes.
        admin = _connect(
            replace(db, name=dblogin.MAINTENANCE_DATABASE[db.engine]),
            _credentials(db, admin_secret_id),
        )
        databases = [db.name, *([auth_settings.db_name] if auth_settings else [])]
        dblogin.ensure(admin, creds, databases)
        admin.dispose()
    _connect(db, creds).dispose()
    # No statement bound for the schema changes (dburl): an ALTER of a large table takes long.
    url = dburl.build_url(db, creds)
    engine = wait.make_engine(url)

    def migrate_auth() -> None:
        assert auth_settings is not None
        auth.create_database(engine, auth_settings.db_name)
        with wait.engine_for(auth.database_url(url, auth_settings)) as auth_engine:
            auth.migrate(auth_engine, before_change=guard)

    # The auth schema under the same lock: MLflow's workers would otherwise race its upgrade.
    schema.migrate(
        engine,
        db.migration_lock_timeout_seconds,
        then=migrate_auth if auth_settings else None,
        before_change=guard,
    )


def cmd_wait_schema() -> None:
    """Until the migration Job has made the server's login and brought the schemas to head
    (the server pod's init container: the server's login, no snapshot, no migration)."""
    db = settings.load_db(os.environ)
    auth_settings = auth.load(os.environ)
    wait_settings = readiness.load(os.environ)
    creds = _credentials(db)
    url = dburl.build_url(db, creds, statement=db.network_timeout_seconds)
    log.info(
        "waiting for the schemas at head on %s:%s/%s as %s",
        db.host,
        db.port,
        db.name,
        creds.username,
    )
    with wait.engine_for(url) as engine:
        readiness.wait_for_head(lambda: _behind(engine, db, auth_settings), wait_settings)


def _behind(
    engine: Engine, db: settings.DbEnvironment, auth_settings: auth.AuthEnvironment | None
) -> list[str]:
    """What is not ready yet, in words; raises what waiting cannot mend (TLS)."""
    try:
        wait.probe(engine)
    except Exception as exc:  # the driver's exception types vary; classify() sorts them
        fatal = wait.classify(exc, db.ca_bundle)
        if isinstance(fatal, wait.AuthenticationFailed):
            # On a first deploy the Job has not made the server's login yet.
            return [
                f"the database refuses the server's login (not made yet?): {driver_message(exc)}"
            ]
        if fatal is not None:
            raise fatal from None
        return [f"the database does not answer: {driver_message(exc)}"]
    pending = []
    current, head = schema.current_revision(engine), schema.head_revision()
    # A newer MLflow's schema is not waited for: no Job of this image will ever change it.
    schema.refuse_newer("the database schema", current, head, schema.known_revisions())
    if current != head:
        pending.append(f"the tracking schema is at {current or '(empty)'}, not head {head}")
    if auth_settings is not None:
        try:
            with wait.engine_for(auth.database_url(engine.url, auth_settings)) as auth_engine:
                current, head = auth.revisions(auth_engine)
        except SQLAlchemyError:
            pending.append(f"the auth database {auth_settings.db_name} is not there yet")
        else:
            if current != head:
                pending.append(f"the auth schema is at {current or '(empty)'}, not head {head}")
    return pending


def cmd_serve() -> None:
    db, srv = settings.load_db_and_server(os.environ)
    auth_settings = auth.load(os.environ)
    sso_settings = settings.load_sso(os.environ)
    archival = trace_archival.load(os.environ)
    if sso_settings is not None and auth_settings is None:
        raise LauncherError(
            f"invalid environment: {contract.SSO_ALB_ARN.name} is set but authentication is "
            "off: single sign-on makes MLflow users, which needs the MLFLOW_AUTH_* variables"
        )
    limits.load(os.environ)  # each worker reads them again; a bad one must stop the pod here
    # Every secret first: the database wait's deadline counts from the launcher's start, so the
    # time these reads take comes out of the wait instead of adding to the start.
    creds = _credentials(db)
    auth_secrets = _auth_secrets(auth_settings, db.region)
    check = _connect(db, creds)
    schema.require_head(check)
    if srv.workspaces:
        log.info("workspaces on (X-MLFLOW-WORKSPACE; absent: the default workspace)")
    else:
        workspaces.refuse_hidden(check)
    # The server's value: server.extra_env wins over the pod's (server.server_env).
    rollups.refuse_left_behind(check, {**os.environ, **srv.extra_env})
    check.dispose()
    read_uri = _read_replica_uri(db, creds)
    store_url = dburl.build_url(db, creds, statement=db.statement_timeout_seconds)
    secrets = None
    if auth_settings is None or auth_secrets is None:
        log.warning(
            "authentication is off: whoever reaches the server may read, change and delete "
            "everything"
        )
    else:
        secrets = _auth_environment(auth_settings, auth_secrets, check.url, store_url, sso_settings)
    metrics.reset_directory(os.environ)
    features = {}
    if archival is not None:
        log.info(
            "trace archival on: spans of traces older than %s go to %s (checked every %d s)",
            archival.retention,
            archival.location,
            archival.interval_seconds,
        )
        path = trace_archival.write_config(Path(tempfile.gettempdir()), archival)
        features = trace_archival.server_env(path)
    log.info("starting mlflow server on %s:%s (%d workers)", srv.host, srv.port, srv.workers)
    _log_extras(srv)
    server.exec_server(
        srv,
        dburl.uri_for_mlflow(store_url),
        read_uri=read_uri,
        secrets=secrets,
        features=features,
    )


def _log_extras(srv: settings.ServerEnvironment) -> None:
    """What the user added (server.extra_args, extra_env): the contract let no secret in, but
    of the variables only the names are logged all the same."""
    if srv.extra_args:
        log.info("extra arguments for mlflow server: %s", shlex.join(srv.extra_args))
    if srv.extra_env:
        log.info("extra variables for mlflow server: %s", ", ".join(sorted(srv.extra_env)))


def _auth_secrets(
    auth_settings: auth.AuthEnvironment | None, region: str | None
) -> auth.AuthSecrets | None:
    if auth_settings is None:
        return None
    secrets = auth.fetch_secrets(auth_settings, region=region)
    _mask(*secrets.values())
    return secrets


def _auth_environment(
    auth_settings: auth.AuthEnvironment,
    secrets: auth.AuthSecrets,
    check_url: URL,
    store_url: URL,
    sso_settings: settings.SsoEnvironment | None = None,
) -> dict:
    """Check the auth schema and write the config file MLflow reads."""
    with wait.engine_for(auth.database_url(check_url, auth_settings)) as auth_engine:
        auth.require_head(auth_engine)
    config = auth.write_config(
        Path(tempfile.gettempdir()),
        database_uri=dburl.uri_for_mlflow(auth.database_url(store_url, auth_settings)),
        default_permission=auth_settings.default_permission,
        admin_username=secrets.admin.username,
        cache_seconds=auth_settings.cache_seconds,
        authorization_function=sso.AUTHORIZATION_FUNCTION
        if sso_settings
        else auth.BASIC_AUTH_FUNCTION,
        grant_default_workspace_access=auth_settings.grant_default_workspace_access,
    )
    log.info(
        "authentication on (basic-auth): users in database %s, default permission %s, admin %s, "
        "sign-in checks remembered %d s per process",
        auth_settings.db_name,
        auth_settings.default_permission,
        secrets.admin.username,
        auth_settings.cache_seconds,
    )
    env = auth.server_env(secrets, config)
    if sso_settings is not None:
        _log_sso(sso_settings)
        env[UVICORN_HEADER_BYTES_ENV] = str(sso.HEADER_BYTES)
    return env


def _log_sso(config: settings.SsoEnvironment) -> None:
    log.info(
        "single sign-on on: a request load balancer %s signed is its IdP user's (username "
        "from claim %s, %s; header accepted from %s)",
        config.alb_arn,
        config.username_claim,
        f"admins: group {config.admin_group!r} of claim {config.groups_claim}"
        if config.admin_group
        else "admin rights granted in MLflow",
        ", ".join(map(str, config.trusted_networks)) or "any address",
    )
    if not config.aws_keys:
        log.warning(
            "single sign-on trusts the keys at %s (%s), not AWS's endpoint",
            config.key_url,
            contract.SSO_KEY_URL.name,
        )


def cmd_gc() -> None:
    """Permanently remove deleted runs and experiments older than MLFLOW_GC_OLDER_THAN."""
    gc_settings = gc.load(os.environ)  # first: a missing age must stop before any connection
    with gc.time_limit(gc_settings.timeout_seconds, started=_STARTED):
        db = settings.load_db(os.environ)
        auth_settings = auth.load(os.environ)
        creds = _credentials(db)
        login = None
        if auth_settings is not None:
            login = secret.fetch_credentials(auth_settings.admin_secret_id, region=db.region)
            _mask(login.password)
        check = _connect(db, creds)
        schema.require_head(check)
        check.dispose()
        # No statement outlives the run's own limit (on PostgreSQL the server cancels it).
        store_url = dburl.build_url(db, creds, statement=gc_settings.timeout_seconds)
        gc.run(dburl.uri_for_mlflow(store_url), gc_settings, login)


def cmd_metrics() -> None:
    """The pod's metrics container: the server workers' counters, summed, without a login."""
    metrics.serve(os.environ)


def cmd_runner_alive() -> None:
    """The job runner pod's liveness probe: exit 0 while MLflow's job runner runs."""
    runner.check()


def cmd_local() -> None:
    """Preview the server as configured, on a SQLite file and a local artifact folder."""
    base = Path(os.environ.get(LOCAL_DIR_ENV) or LOCAL_DEFAULT_DIR).resolve()
    (base / "artifacts").mkdir(parents=True, exist_ok=True)
    defaults = {**LOCAL_DEFAULTS, contract.ARTIFACTS_DESTINATION.name: str(base / "artifacts")}
    srv = settings.load_local_server(os.environ, defaults)
    limits.load(os.environ)
    url = URL.create("sqlite", database=str(base / "mlflow.db"))
    schema.migrate(wait.make_engine(url))
    log.info("local preview: http://%s:%s (data in %s); Ctrl-C stops it", srv.host, srv.port, base)
    _log_extras(srv)
    status = server.run_in_foreground(srv, dburl.uri_for_mlflow(url))
    if status:
        raise LauncherError(f"mlflow server exited with status {status}")
    log.info("stopped")


def cmd_verify() -> None:
    """Prove the deployed server works under each of its names; tell CloudFormation."""
    verify.run(os.environ, _redact.secrets)


def cmd_sync_sso_secret() -> None:
    """Copy the IdP client's credentials into the Secret the sign-in load balancer reads."""
    sso_secret.sync(os.environ, _redact.secrets)


COMMANDS = {
    "migrate": (cmd_migrate, "bring the database schema to head under an advisory lock"),
    "wait-schema": (cmd_wait_schema, "wait until the migration Job has the schemas at head"),
    "serve": (cmd_serve, "check the schemas are at head, then exec mlflow server"),
    "local": (cmd_local, "preview the server on SQLite + a local folder (no AWS)"),
    "gc": (cmd_gc, "permanently remove deleted runs and experiments (mlflow gc)"),
    "metrics": (cmd_metrics, "serve the server workers' Prometheus counters on their own port"),
    "runner-alive": (cmd_runner_alive, "exit 0 while MLflow's job runner runs (its liveness)"),
    "verify": (cmd_verify, "use the deployed server as a user would; signal CloudFormation"),
    "sync-sso-secret": (
        cmd_sync_sso_secret,
        "copy the IdP client's credentials from Secrets Manager into the ALB's Secret",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlflow-launcher", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    _setup_logging()
    lost_connections.install()  # the launcher's engines, and MLflow's in `gc`
    try:
        COMMANDS[args.command][0]()
    except LauncherError as exc:
        log.error("%s", exc)
        _termination_message(_redact.mask(str(exc)))
        return exc.exit_code
    return 0


def _termination_message(message: str) -> None:
    """The error as the container's termination message, which the API then shows in the
    pod's status (lastState.terminated.message): the deploy check names it when a pod of the
    rollout crash-loops. The kubelet mounts the file when the container starts (Kubernetes
    docs, "Determine the Reason for Pod Failure"). Never created: outside a container there
    is no such file, and writing one into /dev would be a root user's surprise."""
    data = message.encode()[:TERMINATION_MESSAGE_BYTES]
    try:
        descriptor = os.open(TERMINATION_LOG, os.O_WRONLY | os.O_TRUNC)
    except OSError:
        return
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
