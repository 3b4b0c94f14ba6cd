"""`mlflow server` gets its settings in argv and the store URI (with the password) only in env."""

import dataclasses
import logging
import os

import pytest

from mlflow_launcher import app, cli, settings
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.server import (
    BACKEND_STORE_URI_ENV,
    READ_REPLICA_URI_ENV,
    server_argv,
    server_env,
    server_start,
)
from mlflow_launcher.settings import ServerEnvironment
from mlflow_launcher.uvicorn_start import Start, ending_with_zero

PASSWORD = "pa:ss@w/rd?#"
URI = "mysql+mysqldb://u:pa%3Ass%40w%2Frd%3F%23@db:3306/mlflow?ssl_ca=/ca.pem"

SERVER = ServerEnvironment(
    host="0.0.0.0",
    port=5000,
    workers=2,
    artifacts_destination="s3://bucket/artifacts",
    allowed_hosts=("mlflow", "mlflow.ns.svc", "*.elb.amazonaws.com"),
)


def test_argv_has_server_options_and_no_store_uri():
    argv = server_argv(SERVER)
    assert argv[1:4] == ["-m", "mlflow", "server"]
    joined = " ".join(argv)
    assert "--backend-store-uri" not in joined
    assert "mysql" not in joined
    assert PASSWORD not in joined
    assert "pa%3Ass" not in joined
    assert argv[argv.index("--artifacts-destination") + 1] == "s3://bucket/artifacts"
    assert argv[argv.index("--allowed-hosts") + 1] == "mlflow,mlflow.ns.svc,*.elb.amazonaws.com"
    assert argv[argv.index("--workers") + 1] == "2"
    assert "--serve-artifacts" in argv
    # MLflow's app behind the guard, with or without sign-in (the environment decides).
    assert argv[argv.index("--app-name") + 1] == "mlflow-on-eks"


def test_env_carries_the_store_uri_and_drops_the_secret_id():
    env = server_env({"MLFLOW_DB_SECRET_ID": "arn:...", "AWS_REGION": "eu-west-1"}, URI)
    assert env[BACKEND_STORE_URI_ENV] == URI
    assert env["AWS_REGION"] == "eu-west-1"
    assert "MLFLOW_DB_SECRET_ID" not in env


def test_uvicorn_always_gets_the_guards_protocol():
    # That uvicorn loads it and it closes idle connections: tests/integration/test_guard.py.
    env = server_env({"UVICORN_HTTP": "h11"}, URI)
    assert env["UVICORN_HTTP"] == "mlflow_launcher.guard.protocol:HeaderDeadlineProtocol"


def test_the_read_replica_uri_travels_in_env_only_when_there_is_a_replica():
    assert READ_REPLICA_URI_ENV not in server_env({}, URI)
    read_uri = URI.replace("@db:", "@replica:")
    env = server_env({}, URI, read_uri=read_uri)
    assert (env[BACKEND_STORE_URI_ENV], env[READ_REPLICA_URI_ENV]) == (URI, read_uri)
    # That MLflow reads it from there: tests/integration/test_read_replica.py.


def test_log_filter_masks_registered_password(caplog):
    redact = cli._Redact()
    redact.secrets.append(PASSWORD)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed for %s", (PASSWORD,), None)
    assert redact.filter(record)
    assert PASSWORD not in record.getMessage()
    assert "***" in record.getMessage()


def test_one_log_level_reaches_mlflow_and_uvicorn():
    """MLflow's loggers read MLFLOW_LOGGING_LEVEL (upper case), the uvicorn CLI that `mlflow
    server` runs reads UVICORN_LOG_LEVEL; the pod's MLFLOW_LOG_LEVEL sets both, over anything
    the environment held."""
    from mlflow_launcher import settings

    env = {"MLFLOW_LOGGING_LEVEL": "DEBUG", "UVICORN_LOG_LEVEL": "trace"}
    quiet = server_env(env, URI, log_level="warning")
    assert (quiet["MLFLOW_LOGGING_LEVEL"], quiet["UVICORN_LOG_LEVEL"]) == ("WARNING", "warning")
    default = server_env({}, URI)
    assert (default["MLFLOW_LOGGING_LEVEL"], default["UVICORN_LOG_LEVEL"]) == ("INFO", "info")
    pod = {
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/artifacts",
        "MLFLOW_ALLOWED_HOSTS": "mlflow",
        "MLFLOW_LOG_LEVEL": "debug",
    }
    assert settings.load_local_server(pod, {}).log_level == "debug"
    assert settings.load_local_server({}, pod | {"MLFLOW_LOG_LEVEL": ""}).log_level == "info"


def test_workspaces_are_turned_on_in_argv_only_when_asked():
    assert "--enable-workspaces" not in server_argv(SERVER)
    on = ServerEnvironment(**{**vars(SERVER), "workspaces": True})
    assert "--enable-workspaces" in server_argv(on)


# ---- MLflow's job execution by the pod's role (MLFLOW_JOB_ROLE) ---------------------------
# That the roles work together on real servers: tests/integration/test_jobs.py.

JOB_VARIABLES = (
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
    "MLFLOW_SERVER_JOB_EXECUTION_ENGINE",
    "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS",
    "MLFLOW_SERVER_JOB_HUEY_REDIS_URL",
    "_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN",
)
STRAY = dict.fromkeys(JOB_VARIABLES, "from-the-pod")
SIGNED_IN = {"MLFLOW_ON_EKS_AUTH": "basic-auth"}  # what auth.server_env sets, in short


def _jobs(env):
    return {name: env[name] for name in JOB_VARIABLES if name in env}


def test_off_and_submit_start_no_runner():
    """The CLI starts MLflow's runner when execution is on (server/__init__.py `_run_server`):
    off for both; an API pod's workers turn it on for themselves (app.py)."""
    for role in ("off", "submit"):
        env = server_env(STRAY, URI, secrets=SIGNED_IN, job_role=role)
        assert _jobs(env) == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, role
    assert _jobs(server_env({}, URI)) == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def test_the_runner_runs_the_executor_engine_with_a_gateway_token_per_start():
    signed_in = server_env(STRAY, URI, secrets=SIGNED_IN, job_role="run")
    token = signed_in.pop("_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN")
    assert _jobs(signed_in) == {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true",
        "MLFLOW_SERVER_JOB_EXECUTION_ENGINE": "executor",
        "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS": "true",
    }
    assert len(token) == 64 and int(token, 16) >= 0
    again = server_env({}, URI, secrets=SIGNED_IN, job_role="run")
    assert again["_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN"] != token
    # Without sign-in no one checks it (MLflow makes it for basic-auth only).
    assert "_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN" not in server_env({}, URI, job_role="run")
    features = {"MLFLOW_SOME_FEATURE": "on"}  # other variables, sign-in off
    assert "_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN" not in server_env(
        {}, URI, secrets=features, job_role="run"
    )
    runner = ServerEnvironment(**{**vars(SERVER), "job_role": "run"})
    assert token not in " ".join(server_argv(runner))


def test_the_runners_jobs_may_call_its_own_address():
    """MLflow points its jobs at http://<host>:<port>: Host 0.0.0.0:5000 must be allowed."""
    hosts = "mlflow,mlflow.ns.svc,*.elb.amazonaws.com"
    runner = ServerEnvironment(**{**vars(SERVER), "job_role": "run"})
    argv = server_argv(runner)
    assert argv[argv.index("--allowed-hosts") + 1] == f"{hosts},0.0.0.0:5000"
    for role in ("off", "submit"):
        api = server_argv(ServerEnvironment(**{**vars(SERVER), "job_role": role}))
        assert api[api.index("--allowed-hosts") + 1] == hosts


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (
            "submit",
            {
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true",
                "MLFLOW_SERVER_JOB_EXECUTION_ENGINE": "executor",
            },
        ),
        ("off", {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
        (
            "run",
            {
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true",
                "MLFLOW_SERVER_JOB_EXECUTION_ENGINE": "executor",
            },
        ),
    ],
)
def test_an_api_pods_workers_record_jobs(monkeypatch, role, expected):
    """Each worker (the app factory) turns execution on for itself in `submit`; others keep
    what the CLI gave them."""
    cli_env = server_env({"MLFLOW_JOB_ROLE": role}, URI, job_role=role)
    for name in JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in cli_env.items():
        if name in JOB_VARIABLES or name == "MLFLOW_JOB_ROLE":
            monkeypatch.setenv(name, value)
    app._submit_jobs()
    assert {k: v for k, v in _jobs(os.environ).items() if k in expected} == expected


def test_the_role_is_read_from_the_contract():
    pod = {"MLFLOW_ARTIFACTS_DESTINATION": "s3://b/a", "MLFLOW_ALLOWED_HOSTS": "mlflow"}
    assert settings._server(settings.parse(pod, *settings._SERVER)).job_role == "off"
    run = settings.parse({**pod, "MLFLOW_JOB_ROLE": "run"}, *settings._SERVER)
    assert settings._server(run).job_role == "run"
    with pytest.raises(LauncherError, match="MLFLOW_JOB_ROLE must be one of off, submit, run"):
        settings.parse({**pod, "MLFLOW_JOB_ROLE": "both"}, *settings._SERVER)
    with pytest.raises(LauncherError, match="MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS must be true"):
        settings.parse({**pod, "MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS": "yes"}, *settings._SERVER)


def test_the_runner_pod_keeps_mlflow_server_which_starts_the_runner():
    # An API pod's start is uvicorn's, checked against MLflow's own CLI with MLflow installed:
    # tests/integration/test_uvicorn_start.py.
    runner = dataclasses.replace(SERVER, job_role="run")
    start = server_start(runner, server_env({}, URI, job_role="run"))
    assert start.argv == server_argv(runner)
    assert start.argv[1:4] == ["-m", "mlflow", "server"]


def test_only_uvicorns_command_line_goes_through_the_module_that_ends_it_with_zero():
    uvicorn = Start(["/py", "-m", "uvicorn", "--workers", "2", "app"], {"A": "1"})
    assert ending_with_zero(uvicorn) == Start(
        ["/py", "-m", "mlflow_launcher.uvicorn_main", "--workers", "2", "app"], {"A": "1"}
    )
    cli = Start(["/py", "-m", "mlflow", "server"], {})
    assert ending_with_zero(cli) == cli
