"""The app each uvicorn worker serves: MLflow's own, behind the guard (mlflow_launcher.guard).

`serve` starts `mlflow server --app-name mlflow-on-eks`; MLflow finds this factory through the
`mlflow.app` entry point (image/launcher/pyproject.toml) and, under uvicorn, runs it in each
worker (`--factory`). With AUTH_ENV set to `basic-auth` it builds MLflow's basic-auth app, as
`--app-name basic-auth` would; the admin user is then created by the first worker, as MLflow
does when no CLI bootstrapped it (mlflow.server.auth `_init_store_for_app`).

The changes to MLflow's behaviour made here are, each pinned to MLflow 3.17's internals and
each proven by a real-server test (tests/integration/test_guard.py, test_read_replica.py,
test_sso.py, test_large_artifacts.py), so an upgrade of MLflow that moves them fails those
tests instead of passing silently:
- password checks are bounded per process, and skipped when the guard just made the same one
  (`_bound_password_checks`);
- a process remembers each user's record (its admin flag) as long as it remembers the user's
  password check (`_remember_users`);
- proxied downloads stream from S3 as the client reads them, the artifact API's and the UI's
  (s3_download.py); where MLflow's own route still answers, it learns the object's size before
  it fetches it into scratch space (`_bound_downloads`);
- the answers of MLflow's Flask views wait for the client instead of being queued whole in
  memory (`_bound_wsgi_answers`);
- a proxied upload streams to S3 in parts instead of being spooled to scratch space first
  (s3_stream.py, registered for `s3://` in the worker only: clients and the gc Job, which
  never take a proxied upload, keep MLflow's repository);
- with a read replica, only searches read it (`_replica_for_searches`): a run created a
  moment ago is not on the replica yet, and a write to it (which reads it first), the
  permission check of a non-admin's write, and the client's read back of it would otherwise
  fail until the replica caught up;
- with single sign-on, MLflow's native FastAPI routes keep its own Basic path for requests
  without the ALB's header (`_basic_auth_without_token`);
- a MySQL connection the database closed is replaced by the pool, not handed to a request
  (lost_connections.py; test_bounded_waits.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlflow_launcher import contract, lost_connections
from mlflow_launcher.guard import limits as limits_module
from mlflow_launcher.guard.asgi import Guard
from mlflow_launcher.guard.sign_in import SignInGate, already_verified
from mlflow_launcher.guard.transfers import (
    CURRENT,
    SLOTS_DIRECTORY,
    Direction,
    Slots,
    Transfer,
    too_large_message,
)

LOG_FORMAT = "%(asctime)s mlflow-launcher %(levelname)s %(message)s"
"""The launcher's log lines, its CLI's and its workers' alike."""
APP_NAME = "mlflow-on-eks"
"""This factory's name in the `mlflow.app` entry point group."""
AUTH_ENV = "MLFLOW_ON_EKS_AUTH"
"""Set by `serve` to `basic-auth` when authentication is on; unset, the app has none."""
BASIC_AUTH = "basic-auth"

# The Flask views (mlflow.server.handlers, named after their functions) whose reads go to the
# replica: searches, most of the read load (the UI's lists and charts too). Any other view reads
# the primary: a write reads what it changes (create_run its experiment, log_metric with a model
# its run), and MLflow's client reads back one thing it just wrote (end_run the run, to print
# its URL; log_artifact the run's artifact URI; a registry update the model, to refuse prompts).
REPLICA_VIEWS = (
    "_search_",
    "_deprecated_search_",
    "_batch_get_",
    "_query_trace_metrics",
    "_calculate_trace_filter_correlation",
    "_graphql",
    "get_metric_history_bulk_interval",
)


def create_app() -> Guard:
    _log_from_the_worker()
    lost_connections.install()  # before MLflow makes its engines
    _submit_jobs()
    limits = limits_module.load(os.environ)
    slots = Slots(Path(tempfile.gettempdir()) / SLOTS_DIRECTORY, limits.transfers)
    _bound_downloads()
    _bound_wsgi_answers()
    _stream_uploads(limits.max_artifact_bytes)
    _replica_for_searches()
    if os.environ.get(AUTH_ENV) != BASIC_AUTH:
        from mlflow.server.fastapi_app import app

        _stream_downloads(app)
        return Guard(app, limits, sign_in=None, unprotected=lambda _path: True, slots=slots)

    from mlflow.server import auth

    from mlflow_launcher.sso import mlflow_auth
    from mlflow_launcher.sso.gate import TokenGate

    _bound_password_checks(auth.store, threading.BoundedSemaphore(limits.sign_in_checks))
    _remember_users(
        auth.store, auth.auth_config.auth_cache_ttl_seconds, auth.auth_config.auth_cache_max_size
    )
    app = auth.create_app()
    _stream_downloads(app)
    gate = SignInGate(
        limits,
        check=lambda username, password: auth._authenticate_cached(username, password) is not None,
        remembered=lambda username, password: _remembered(auth, username, password),
    )
    sso = mlflow_auth.current()
    tokens = None
    if sso is not None:
        _basic_auth_without_token(auth)
        tokens = TokenGate(sso, limits.sign_in_checks)
    return Guard(
        app,
        limits,
        sign_in=gate,
        unprotected=auth.is_unprotected_route,
        slots=slots,
        sso=tokens,
        # Set by `serve` in the job runner pod only (server.py); its jobs' gateway password.
        gateway_token=os.environ.get("_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN") or None,
    )


def _submit_jobs() -> None:
    """An API pod's worker (MLFLOW_JOB_ROLE=submit) records jobs for the runner pod: MLflow's
    `submit_job` reads these two at each call (mlflow/server/jobs/__init__.py) and, on the
    executor engine, returns once the job's PENDING row is written. Set here, in the worker,
    not for the `mlflow server` CLI, which would start a runner of its own with them
    (mlflow/server/__init__.py `_run_server`)."""
    if os.environ.get(contract.JOB_ROLE.name) == "submit":
        os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "true"
        os.environ["MLFLOW_SERVER_JOB_EXECUTION_ENGINE"] = "executor"


def _basic_auth_without_token(auth: Any) -> None:
    """With a custom `authorization_function` (single sign-on's), MLflow's FastAPI middleware
    authenticates every request to its native routes (artifacts, /gateway/) by calling it in a
    synthetic Flask request, which loses what its own Basic path does there: the
    X-MLflow-Authorization header on /gateway/ and the job runner's internal token. Requests
    without the ALB's header keep that path, as they would without single sign-on."""
    from mlflow_launcher.sso import HEADER

    bridge = auth._authenticate_custom_for_fastapi
    if getattr(bridge, "mlflow_on_eks_sso", False):
        return

    def authenticate(request: Any) -> Any:
        if request.headers.get(HEADER):
            return bridge(request)
        return auth._authenticate_fastapi_request(request)

    authenticate.mlflow_on_eks_sso = True  # type: ignore[attr-defined]
    auth._authenticate_custom_for_fastapi = authenticate


def _log_from_the_worker() -> None:
    """The launcher's messages from a server worker (the guard's, single sign-on's): uvicorn
    configures its own loggers only, and without a handler Python drops INFO records. At
    MLflow's level (MLFLOW_LOGGING_LEVEL, which `serve` sets from MLFLOW_LOG_LEVEL)."""
    logger = logging.getLogger("mlflow_launcher")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(os.environ.get("MLFLOW_LOGGING_LEVEL", "INFO").upper())
    logger.propagate = False


def _remembered(auth: Any, username: str, password: str) -> bool:
    """Whether MLflow's sign-in cache holds this login now (no hashing, no waiting)."""
    cache = auth._USER_AUTH_CACHE
    if cache is None:
        return False
    key = auth._auth_cache_key(username, password)
    with auth._USER_AUTH_CACHE_LOCK:
        return key in cache


def _bound_password_checks(store: Any, slots: threading.BoundedSemaphore) -> None:
    """MLflow's own password checks (its Flask hook, its FastAPI middleware, its after-request
    handlers) go through the store's `authenticate_user`: at most `slots` hash at once, and a
    login the guard accepted for this request is not hashed again. A password set (a user
    created, by an admin or at a first single sign-on, or a password changed) is hashed within
    the same slots: the memory the chart sizes (32 MiB per concurrent check) holds for every
    scrypt of the process."""
    check, create, update = store.authenticate_user, store.create_user, store.update_user

    def authenticate_user(username: str, password: str, **options: Any) -> bool:
        if already_verified(username, password):
            return True
        with slots:
            return check(username, password, **options)

    def create_user(*args: Any, **options: Any) -> Any:
        with slots:
            return create(*args, **options)

    def update_user(username: str, password: str | None = None, **options: Any) -> Any:
        if password is None:
            return update(username, password, **options)
        with slots:
            return update(username, password, **options)

    store.authenticate_user = authenticate_user
    store.create_user = create_user
    store.update_user = update_user


def _remember_users(
    store: Any, seconds: float, size: int, clock: Callable[[], float] = time.monotonic
) -> None:
    """MLflow reads the signed-in user's record from the auth database on every request, once
    per question it asks of it: three times for one search_runs (is the sender an admin, before
    the request, in the search's experiment filter and after it), a session of three statements
    each (SELECT, COMMIT, the pool's ROLLBACK): 10 of a search's 20 statements on MariaDB, 15 of
    a tracking run's 61 (measured, bench/README.md). Here a process keeps a user's record
    (`store.get_user`) for `seconds`, the time it keeps the user's password check
    (auth.sign_in_cache_seconds, MLflow's auth_cache_ttl_seconds): a removed admin flag or a
    deleted user reaches the other processes within it, the window docs/configuration.md gives
    for a changed password. The process's own changes (`update_user`, `delete_user`) apply at
    once. 0 seconds: every request reads it, as MLflow does."""
    if seconds <= 0:
        return
    get_user, update_user, delete_user = store.get_user, store.update_user, store.delete_user
    users: OrderedDict[str, tuple[float, Any]] = OrderedDict()
    lock = threading.Lock()
    changes = 0  # a record read before a change of this process is not kept

    def remembered_get_user(username: str) -> Any:
        now = clock()
        with lock:
            kept = users.get(username)
            if kept is not None and kept[0] > now:
                return kept[1]
            seen = changes
        user = get_user(username)  # its errors (no such user) are not kept
        with lock:
            if seen == changes:
                users[username] = (now + seconds, user)
                users.move_to_end(username)
                while len(users) > size:
                    users.popitem(last=False)
        return user

    def forget(username: str) -> None:
        nonlocal changes
        with lock:
            changes += 1
            users.pop(username, None)

    def remembering_update_user(username: str, *args: Any, **options: Any) -> Any:
        try:
            return update_user(username, *args, **options)
        finally:
            forget(username)

    def remembering_delete_user(username: str, *args: Any, **options: Any) -> Any:
        try:
            return delete_user(username, *args, **options)
        finally:
            forget(username)

    store.get_user = remembered_get_user
    store.update_user = remembering_update_user
    store.delete_user = remembering_delete_user


def _bound_downloads() -> None:
    """Before a proxied download fetches objects into scratch space, their size: over the limit
    (a directory's files count together), the request fails with 413 instead.

    Checked where the request's thread calls the repository (`download_artifacts`, and
    `_download_file` for trace data, which MLflow calls directly): MLflow's download pool
    threads do not carry the request's context."""
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    download_artifacts = S3ArtifactRepository.download_artifacts
    download_file = S3ArtifactRepository._download_file
    if getattr(download_artifacts, "mlflow_on_eks_bounded", False):
        return

    def bounded_download_artifacts(self: Any, artifact_path: str, dst_path: Any = None) -> Any:
        transfer = CURRENT.get()
        if transfer is None:
            return download_artifacts(self, artifact_path, dst_path)
        _count(transfer, _tree_size(self, artifact_path))
        token = CURRENT.set(None)  # counted: the files it fetches are not counted again
        try:
            return download_artifacts(self, artifact_path, dst_path)
        finally:
            CURRENT.reset(token)

    def bounded_download_file(self: Any, remote_file_path: str, local_path: str) -> None:
        transfer = CURRENT.get()
        if transfer is not None:
            _count(transfer, _object_size(self, remote_file_path))
        download_file(self, remote_file_path, local_path)

    bounded_download_artifacts.mlflow_on_eks_bounded = True  # type: ignore[attr-defined]
    S3ArtifactRepository.download_artifacts = bounded_download_artifacts  # type: ignore[method-assign]
    S3ArtifactRepository._download_file = bounded_download_file  # type: ignore[method-assign]


WSGI_MESSAGES_QUEUED = 1
"""What the WSGI bridge's thread may queue ahead of the client: one message, which is one 1 MiB
chunk of a download (MLflow's ARTIFACT_STREAM_CHUNK_SIZE), within what the chart's memory rule
allows each transfer slot."""


def _bound_wsgi_answers() -> None:
    """MLflow's Flask views (the UI's downloads among them: `/get-artifact` and the like) answer
    through starlette's WSGI bridge (mlflow/server/fastapi_app.py `_EfficientWSGIResponder`), whose
    thread hands each chunk of the answer to the event loop through a queue without bound
    (starlette/middleware/wsgi.py, a memory object stream of size `math.inf`). It reads a
    download as fast as S3 (or the scratch space) gives it, so a client that reads slowly has the
    whole file held in memory: 209 MiB more for 188 MiB (tests/integration/test_guard.py), a
    2 GiB model past the pod's memory limit; 5 MiB bounded. Bounded, the thread waits for the
    client. A client that leaves does not stop it: uvicorn's sends then return at once, so the
    thread reads the rest of the answer into nowhere, as it did unbounded (MLflow's spool
    fetched it whole first)."""
    import anyio
    from starlette.middleware import wsgi

    init = wsgi.WSGIResponder.__init__
    if getattr(init, "mlflow_on_eks_bounded", False):
        return

    def bounded_init(self: Any, app: Any, scope: Any) -> None:
        init(self, app, scope)
        self.stream_send.close()
        self.stream_receive.close()
        self.stream_send, self.stream_receive = anyio.create_memory_object_stream(
            WSGI_MESSAGES_QUEUED
        )

    bounded_init.mlflow_on_eks_bounded = True  # type: ignore[attr-defined]
    wsgi.WSGIResponder.__init__ = bounded_init  # type: ignore[method-assign]


def _stream_uploads(max_artifact_bytes: int) -> None:
    """Proxied uploads to S3 as streams (s3_stream.py); imported here, as it imports MLflow."""
    from mlflow_launcher import s3_stream

    s3_stream.register(max_artifact_bytes)


def _stream_downloads(app: Any) -> None:
    """Proxied downloads from S3 as streams (s3_download.py): the artifact API's, ahead of
    MLflow's route, and the UI's, inside MLflow's Flask views."""
    from mlflow_launcher import s3_download

    s3_download.add_routes(app)
    s3_download.stream_ui_downloads()


def _count(transfer: Transfer, size: int) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if not transfer.add(size):
        raise MlflowException(
            too_large_message(Direction.DOWNLOAD, transfer.moved, transfer.limit),
            INVALID_PARAMETER_VALUE,
        )


def _object_size(repository: Any, path: str) -> int:
    from mlflow_launcher.s3_download import object_params

    head = repository._get_s3_client().head_object(**object_params(repository, path))
    return int(head["ContentLength"])


def _tree_size(repository: Any, path: str | None) -> int:
    """What `download_artifacts(path)` will fetch: one object, or a directory's files (listed
    as MLflow lists them to download them)."""
    if path and not repository._is_directory(path):
        return _object_size(repository, path)
    return sum(f.file_size or 0 for f in repository._iter_artifacts_recursive(path or ""))


def _replica_for_searches() -> None:
    """Send to the replica only the reads of the views in REPLICA_VIEWS (MLflow's permission
    checks of them included: they read the rows the search will). Must run before the first
    store is made."""
    from flask import has_request_context, request
    from mlflow.store.db import utils
    from mlflow.store.model_registry import sqlalchemy_store as registry

    def on_replica() -> bool:
        return has_request_context() and (request.endpoint or "").startswith(REPLICA_VIEWS)

    def routing_session_maker(write_session_maker: Any, read_session_maker: Any, db_type: str):
        # mlflow.store.db.utils._get_routing_session_maker, with on_replica deciding reads.
        write = utils._get_managed_session_maker(write_session_maker, db_type)
        read = utils._get_managed_session_maker(read_session_maker, db_type)

        @contextlib.contextmanager
        def make_managed_session(read_only: bool = True) -> Iterator[Any]:
            with (read if read_only and on_replica() else write)(read_only=read_only) as session:
                yield session

        return make_managed_session

    # The tracking store looks it up here when it is made; the registry store imported it.
    utils._get_routing_session_maker = routing_session_maker
    registry._get_routing_session_maker = routing_session_maker
