"""Start the server: settings go to argv, the store URI (with the password) only to env.

The settings are `mlflow server`'s options (`server_argv`); an API pod then execs the uvicorn
server those options would start, without MLflow's CLI process (uvicorn_start), and the job
runner's pod execs `mlflow server` itself. ``exec`` rather than a child process: under tini (the
image's PID 1) the server then gets SIGTERM directly, for a graceful shutdown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from secrets import token_hex

from mlflow_launcher import app, contract, guard, uvicorn_start
from mlflow_launcher.settings import ServerEnvironment

# The envvars ``mlflow server --backend-store-uri`` and ``--read-replica-backend-store-uri``
# read (click option envvars in mlflow.cli).
BACKEND_STORE_URI_ENV: str = contract.BACKEND_STORE_URI_FLAG.envvar  # type: ignore[assignment]
READ_REPLICA_URI_ENV: str = contract.READ_REPLICA_URI_FLAG.envvar  # type: ignore[assignment]
LOGGING_LEVEL_ENV = "MLFLOW_LOGGING_LEVEL"
UVICORN_LOG_LEVEL_ENV = "UVICORN_LOG_LEVEL"
# Launcher-only variables the server has no use for; dropped so they do not leak into workers.
_LAUNCHER_ONLY = tuple(
    variable.name
    for variable in (
        contract.DB_SECRET_ID,
        contract.AUTH_ADMIN_SECRET_ID,
        contract.AUTH_FLASK_SECRET_ID,
        contract.AUTH_KEK_SECRET_ID,
        contract.SERVER_EXTRA_ARGS,
        contract.SERVER_EXTRA_ENV,
    )
)
# MLflow's job execution (GenAI jobs: scorer runs, evaluation, issue detection, prompt
# optimization, online scoring) by the pod's role (MLFLOW_JOB_ROLE), MLflow 3.17.2's
# mlflow/server/__init__.py `_run_server` and mlflow/server/jobs/. Its default engine (huey) keeps
# a queue per pod in /dev/shm and re-queues on start the unfinished jobs of every pod; the
# `executor` engine records each job as a PENDING row in the backend's `jobs` table
# (jobs/__init__.py `submit_job`) and one runner (jobs/_executor_runner.py) claims and runs the
# rows, documented for a single runner. So: API pods (`submit`) record rows and run nothing; the
# one runner pod (`run`) runs them. The variables below are the roles' (the contract refuses them
# in server.extra_env).
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
JOB_ENGINE_ENV = "MLFLOW_SERVER_JOB_EXECUTION_ENGINE"
PERIODIC_TASKS_ENV = "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS"
HUEY_REDIS_ENV = "MLFLOW_SERVER_JOB_HUEY_REDIS_URL"
GATEWAY_TOKEN_ENV = "_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN"  # noqa: S105 - its name
EXECUTOR_ENGINE = "executor"
JOB_VARIABLES = (
    JOB_EXECUTION_ENV,
    JOB_ENGINE_ENV,
    PERIODIC_TASKS_ENV,
    HUEY_REDIS_ENV,
    GATEWAY_TOKEN_ENV,
)
# What each role's `mlflow server` CLI gets. With execution on, the CLI starts the runner
# (`_launch_job_execution_runner`); off, it starts none: `submit` pods turn it on in each worker
# only (app.py `_submit_jobs`), where `submit_job` reads it, so they record jobs and run none.
JOB_ROLE_ENV = {
    "off": {JOB_EXECUTION_ENV: "false"},
    "submit": {JOB_EXECUTION_ENV: "false"},
    "run": {
        JOB_EXECUTION_ENV: "true",
        JOB_ENGINE_ENV: EXECUTOR_ENGINE,
        # The executor runner starts the periodic tasks' huey consumer whatever this says
        # (_executor_runner.py `main`); explicit, so the one runner is where they run.
        PERIODIC_TASKS_ENV: "true",
    },
}
# Always ours: uvicorn's protocol with a deadline for request headers (guard/protocol.py).
SERVER_FIXED = {"UVICORN_HTTP": guard.PROTOCOL}


def server_argv(server: ServerEnvironment) -> list[str]:
    """MLflow's app behind the guard (mlflow_launcher.app), with or without sign-in, and the
    user's extra arguments after the launcher's: argv items, exec'd without a shell, none of
    them an option the launcher gives (the contract refuses those, in every spelling)."""
    f = contract
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        f.HOST_FLAG.name,
        server.host,
        f.PORT_FLAG.name,
        str(server.port),
        f.WORKERS_FLAG.name,
        str(server.workers),
        f.SERVE_ARTIFACTS_FLAG.name,
        f.ARTIFACTS_DESTINATION_FLAG.name,
        server.artifacts_destination,
        f.ALLOWED_HOSTS_FLAG.name,
        ",".join(_allowed_hosts(server)),
    ]
    if server.cors_allowed_origins:
        # Browsers send Origin on every POST, same-origin included; MLflow refuses
        # state-changing API calls from origins it does not list (the UI lists runs by POST).
        argv += [f.CORS_ALLOWED_ORIGINS_FLAG.name, ",".join(server.cors_allowed_origins)]
    if server.workspaces:
        # In argv, not only in the environment: `ps` shows the mode the server runs in.
        argv.append(f.ENABLE_WORKSPACES_FLAG.name)
    return [*argv, f.APP_NAME_FLAG.name, app.APP_NAME, *server.extra_args]


def _allowed_hosts(server: ServerEnvironment) -> tuple[str, ...]:
    """The runner's jobs call its own server at http://<host>:<port> (MLFLOW_GATEWAY_URI and
    MLFLOW_TRACKING_URI, server/__init__.py `_run_server`): with the pod's 0.0.0.0, a Host
    header no chart lists, which MLflow would refuse (403) before sign-in."""
    if server.job_role != "run":
        return server.allowed_hosts
    return (*server.allowed_hosts, f"{server.host}:{server.port}")


def server_env(
    base: Mapping[str, str],
    store_uri: str,
    secrets: Mapping[str, str] | None = None,
    read_uri: str | None = None,
    log_level: str = contract.LOG_LEVEL.default,  # type: ignore[assignment]
    extra: Mapping[str, str] | None = None,
    job_role: str = contract.JOB_ROLE.default,  # type: ignore[assignment]
) -> dict[str, str]:
    """The server's environment: the pod's with the user's `extra` variables, plus the store
    URIs (the replica's too, if any) and `secrets` (the auth app's keys), which MLflow reads
    from here; argv would show them to anyone who lists processes. The launcher's own
    variables are set last: they win over the pod's and the user's."""
    env = {
        **{k: v for k, v in base.items() if k not in _LAUNCHER_ONLY},
        **(extra or {}),
    }
    env.update(SERVER_FIXED)
    for name in JOB_VARIABLES:
        env.pop(name, None)
    env.update(JOB_ROLE_ENV[job_role])
    # One level for both: MLflow's loggers read MLFLOW_LOGGING_LEVEL (mlflow.utils.
    # logging_utils), the uvicorn CLI that `mlflow server` starts reads UVICORN_LOG_LEVEL.
    env[LOGGING_LEVEL_ENV] = log_level.upper()
    env[UVICORN_LOG_LEVEL_ENV] = log_level
    env[BACKEND_STORE_URI_ENV] = store_uri
    if read_uri is not None:
        env[READ_REPLICA_URI_ENV] = read_uri
    env.update(secrets or {})
    if job_role == "run" and env.get(app.AUTH_ENV) == app.BASIC_AUTH:
        # Jobs call the runner's own server's /gateway/ as the user who submitted them, with
        # this as the password (mlflow/genai/scorers/job.py, server/auth `_authenticate_fastapi_
        # request` admits it on /gateway/ only). MLflow makes it for `--app-name basic-auth`
        # only (server/__init__.py `_run_server`); ours is `mlflow-on-eks`. One per start,
        # shared by the CLI's workers and runner through the environment they inherit.
        env[GATEWAY_TOKEN_ENV] = token_hex(32)
    return env


def server_start(server: ServerEnvironment, env: dict[str, str]) -> uvicorn_start.Start:
    """What runs, in `env` (server_env's): uvicorn as `mlflow server` would start it, or, in
    the job runner's pod, `mlflow server`, which starts MLflow's runner beside uvicorn."""
    argv = server_argv(server)
    if server.job_role == "run":
        return uvicorn_start.Start(argv, env)
    if server.extra_args:
        # Options only MLflow's CLI reads: it runs here up to the start, and is not kept.
        return uvicorn_start.ending_with_zero(uvicorn_start.via_mlflow_cli(argv[3:], env))
    start = uvicorn_start.plan(
        env,
        host=server.host,
        port=server.port,
        workers=server.workers,
        artifacts_destination=server.artifacts_destination,
        allowed_hosts=_allowed_hosts(server),
        cors_allowed_origins=server.cors_allowed_origins,
        workspaces=server.workspaces,
    )
    return uvicorn_start.ending_with_zero(start)


def exec_server(
    server: ServerEnvironment,
    store_uri: str,
    *,
    read_uri: str | None = None,
    secrets: Mapping[str, str] | None = None,
    features: Mapping[str, str] | None = None,
) -> None:
    """Replace this process with the server (never returns). `secrets`: the auth app's
    environment (auth.server_env), None without authentication. `features`: the variables of
    what else the launcher turned on (trace archival's config file)."""
    env = server_env(
        os.environ,
        store_uri,
        {**(features or {}), **(secrets or {})},
        read_uri,
        server.log_level,
        server.extra_env,
        server.job_role,
    )
    uvicorn_start.exec_start(server_start(server, env))


def run_in_foreground(server: ServerEnvironment, store_uri: str) -> int:
    """Run the server as a child in a session of its own, and stop it with one SIGTERM on the
    first Ctrl-C (or SIGTERM); a second one kills it. Returns its exit status, 0 when it
    stopped as asked.

    For a terminal (``make local``): Ctrl-C signals the whole foreground process group, so
    uvicorn's supervisor and its workers would all get SIGINT, the supervisor would then signal
    the workers again, and they, cut off in their shutdown, print a CancelledError traceback.
    """
    env = server_env(
        os.environ,
        store_uri,
        log_level=server.log_level,
        extra=server.extra_env,
        job_role=server.job_role,
    )
    start = server_start(server, env)
    child = subprocess.Popen(start.argv, env=start.env, start_new_session=True)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if child.poll() is not None:
            return
        if stopping:
            os.killpg(child.pid, signal.SIGKILL)
        else:
            stopping = True
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = child.wait()
    return 0 if stopping and status in (0, -signal.SIGTERM) else status
