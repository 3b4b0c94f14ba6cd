"""Start uvicorn as `mlflow server` would, without keeping MLflow's CLI process in the pod.

MLflow 3.17.2's CLI (mlflow/cli `server`, mlflow/server/__init__.py `_run_server`) imports
MLflow's whole server (about 4 s of CPU and 190 MiB here), sets a few variables for the
workers, starts `python -m uvicorn ... --workers N --factory <app>` as its child and then only
waits, forwarding SIGTERM, holding that memory for the pod's life. For an API pod the launcher
has already done the rest of what the CLI does before it starts uvicorn (the schema check and
the trace rollups' (rollups.py); the CLI's store initialisation only opens the store, which
every worker does again). So `serve` execs uvicorn itself, with the command and the variables
MLflow's CLI would give it (`plan`):
the pod keeps uvicorn's supervisor and its workers, tini's SIGTERM reaches the supervisor
directly, and the supervisor stops its workers as it did when the CLI passed the signal on.
uvicorn runs through `uvicorn_main`, its command line with one change: the exit status after a
graceful stop is 0, as the CLI's was.

Two cases still need MLflow's CLI:
- the user's `server.extra_args`, options only MLflow's CLI reads: `via_mlflow_cli` runs the
  CLI in this process up to where it would start uvicorn, and takes its command and variables
  instead, so those options keep their meaning and still no CLI process stays;
- the job runner's pod (MLFLOW_JOB_ROLE=run): the CLI starts MLflow's runner beside uvicorn
  (server.py keeps `mlflow server` there).

tests/integration/test_uvicorn_start.py compares `plan` with what MLflow's own CLI builds for the
same settings, so an MLflow upgrade that changes what the workers get fails there.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from mlflow_launcher import app, contract
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.files import mlflow_file

# What MLflow 3.17.2's CLI sets for its workers. Its own constants (mlflow/server/constants.py,
# mlflow/environment_variables.py) cannot be imported without importing MLflow's server, the
# cost this module avoids; the test above pins each name and value.
BACKEND_STORE = "_MLFLOW_SERVER_FILE_STORE"
READ_REPLICA_STORE = "_MLFLOW_SERVER_READ_REPLICA_BACKEND_STORE"
REGISTRY_STORE = "_MLFLOW_SERVER_REGISTRY_STORE"
ARTIFACT_ROOT = "_MLFLOW_SERVER_ARTIFACT_ROOT"
SERVE_ARTIFACTS = "_MLFLOW_SERVER_SERVE_ARTIFACTS"
ARTIFACTS_DESTINATION = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"
BOOT_ID = "_MLFLOW_SERVER_BOOT_ID"
IN_JOB_EXECUTOR = "_MLFLOW_IN_JOB_EXECUTOR"
SGI_NAME = "_MLFLOW_SGI_NAME"
ALLOWED_HOSTS = "MLFLOW_SERVER_ALLOWED_HOSTS"
CORS_ALLOWED_ORIGINS = "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"
ENABLE_WORKSPACES = "MLFLOW_ENABLE_WORKSPACES"
X_FRAME_OPTIONS = "MLFLOW_SERVER_X_FRAME_OPTIONS"
X_FRAME_OPTIONS_DEFAULT = "SAMEORIGIN"
SECRETS_CACHE_TTL = "MLFLOW_SERVER_SECRETS_CACHE_TTL"
SECRETS_CACHE_MAX_SIZE = "MLFLOW_SERVER_SECRETS_CACHE_MAX_SIZE"
# The CLI's defaults for --secrets-cache-ttl and --secrets-cache-max-size, options with no
# variable: only server.extra_args can change them, and those go through the CLI.
SECRETS_CACHE_DEFAULTS = {SECRETS_CACHE_TTL: "60", SECRETS_CACHE_MAX_SIZE: "1000"}
PROMETHEUS_DIRECTORY = "prometheus_multiproc_dir"
"""Where the workers keep their counters (prometheus_client's multiprocess mode), from
--expose-prometheus, which reads MLFLOW_EXPOSE_PROMETHEUS (the chart's, for the `metrics`
container)."""
TRACKING_URI = "MLFLOW_TRACKING_URI"
REGISTRY_URI = "MLFLOW_REGISTRY_URI"
CLIENT_WORKSPACE = "MLFLOW_WORKSPACE"
PROXIED_ARTIFACT_ROOT = "mlflow-artifacts:/"
"""With --serve-artifacts and no --default-artifact-root (mlflow.store.tracking
DEFAULT_ARTIFACTS_URI): runs record this root, and clients send artifacts through the server."""
UVICORN_MAIN = "mlflow_launcher.uvicorn_main"
APP = f"{app.__name__}:{app.create_app.__name__}"
"""The factory the `mlflow.app` entry point `mlflow-on-eks` names (the launcher's
pyproject.toml)."""


@dataclass(frozen=True)
class Start:
    """A uvicorn command line and its environment."""

    argv: list[str]
    env: dict[str, str]


def plan(
    env: Mapping[str, str],
    *,
    host: str,
    port: int,
    workers: int,
    artifacts_destination: str,
    allowed_hosts: Sequence[str],
    cors_allowed_origins: Sequence[str] = (),
    workspaces: bool = False,
) -> Start:
    """What `mlflow server --host H --port P --workers N --serve-artifacts
    --artifacts-destination D --allowed-hosts ... [--cors-allowed-origins ...]
    [--enable-workspaces] --app-name mlflow-on-eks` would exec, in `env` (which carries the
    backend store's URI and, with a replica, the replica's, in the CLI options' variables)."""
    if env.get(CLIENT_WORKSPACE):
        # As MLflow's CLI (server_cli_utils.assert_server_workspace_env_unset): the server
        # scopes each request by its header and must not fall back to a client variable.
        raise LauncherError(
            f"{CLIENT_WORKSPACE} is set: it is the MLflow client's setting, and the server "
            "refuses to start with it; remove it from server.extra_env"
        )
    store = env[_BACKEND_STORE_OPTION]
    added = {
        # --x-frame-options reads this variable; the CLI writes back its value or default.
        X_FRAME_OPTIONS: env.get(X_FRAME_OPTIONS) or X_FRAME_OPTIONS_DEFAULT,
        ENABLE_WORKSPACES: "true" if workspaces else "false",
        # The CLI opens its stores before it starts uvicorn, which sets these (MLflow's
        # set_tracking_uri and set_registry_uri write them to the environment).
        TRACKING_URI: store,
        REGISTRY_URI: store,
        BACKEND_STORE: store,
        # No --registry-store-uri: the CLI gives the registry the backend store.
        REGISTRY_STORE: store,
        ARTIFACT_ROOT: PROXIED_ARTIFACT_ROOT,
        SERVE_ARTIFACTS: "true",
        ARTIFACTS_DESTINATION: artifacts_destination,
        # One per start, shared by its workers (MLflow tells its sandboxes from a previous
        # generation's by it).
        BOOT_ID: uuid.uuid4().hex,
        IN_JOB_EXECUTOR: "false",
        SGI_NAME: "uvicorn",
        **SECRETS_CACHE_DEFAULTS,
    }
    # Set only when given, as the CLI does: unset, MLflow allows localhost and private IPs.
    if allowed_hosts:
        added[ALLOWED_HOSTS] = ",".join(allowed_hosts)
    if cors_allowed_origins:
        added[CORS_ALLOWED_ORIGINS] = ",".join(cors_allowed_origins)
    if replica := env.get(_READ_REPLICA_OPTION):
        added[READ_REPLICA_STORE] = replica
    if counters := env.get(_EXPOSE_PROMETHEUS_OPTION):
        added[PROMETHEUS_DIRECTORY] = counters
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        # MLflow's own logging format for uvicorn (mlflow/server/__init__.py
        # `_build_uvicorn_command`), so the pod's log lines read as they did.
        "--log-config",
        str(mlflow_file("server", "uvicorn_log_config.yaml")),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--factory",
        APP,
    ]
    return Start(argv, {**env, **added})


def via_mlflow_cli(mlflow_args: Sequence[str], env: Mapping[str, str]) -> Start:
    """What MLflow's CLI, given `mlflow_args` (after `mlflow`) in `env`, would start uvicorn
    with: the CLI runs in this process with `env` as its environment, up to its start of the
    server (MLflow's `_exec_cmd`), which is caught instead of run. This process's environment
    is restored before it returns."""
    import mlflow.server as mlflow_server
    from mlflow.cli import cli

    def caught(cmd: list[str], *, extra_env: Mapping[str, str] | None = None, **_: object):
        raise _Started(Start(list(cmd), {**os.environ, **(extra_env or {})}))

    start_server = mlflow_server._exec_cmd
    mlflow_server._exec_cmd = caught  # type: ignore[assignment]
    try:
        with _environ(env):
            cli.main(args=list(mlflow_args), prog_name="mlflow", standalone_mode=False)
    except _Started as started:
        return started.start
    finally:
        mlflow_server._exec_cmd = start_server
    raise LauncherError(f"mlflow {' '.join(mlflow_args[:1])} returned without starting a server")


def ending_with_zero(start: Start) -> Start:
    """`start` through `uvicorn_main` when it is uvicorn's command line: the same server, whose
    exit status after a graceful stop is 0, as the CLI's was."""
    if start.argv[1:3] != ["-m", "uvicorn"]:
        return start
    return Start([start.argv[0], "-m", UVICORN_MAIN, *start.argv[3:]], start.env)


def exec_start(start: Start) -> None:
    """Replace this process with `start` (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(start.argv[0], start.argv, start.env)  # noqa: S606 - no shell


class _Started(Exception):
    """Not an error: MLflow's CLI got as far as its start of the server."""

    def __init__(self, start: Start) -> None:
        super().__init__("uvicorn's start, caught")
        self.start = start


# The variables `mlflow server --backend-store-uri` / `--read-replica-backend-store-uri` read:
# server.py puts the URIs there, so they never appear in argv.
_BACKEND_STORE_OPTION: str = contract.BACKEND_STORE_URI_FLAG.envvar  # type: ignore[assignment]
_READ_REPLICA_OPTION: str = contract.READ_REPLICA_URI_FLAG.envvar  # type: ignore[assignment]
_EXPOSE_PROMETHEUS_OPTION: str = contract.EXPOSE_PROMETHEUS_FLAG.envvar  # type: ignore[assignment]


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """This process's environment is `env` meanwhile (what MLflow reads it from)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
