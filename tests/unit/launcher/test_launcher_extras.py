"""server.extra_args and server.extra_env as the launcher's contract refuses them (one list,
which the config model uses at synth: tests/unit/test_settings.py) and as `serve` passes them.
That a real server takes them, and that the launcher stops on a refused one:
tests/integration/test_extras.py."""

from __future__ import annotations

import re

import pytest

from mlflow_launcher import auth, contract, secret, settings
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.server import server_argv, server_env
from mlflow_launcher.settings import ServerEnvironment
from tests.conftest import ROOT

SERVER = ServerEnvironment(
    host="0.0.0.0",
    port=5000,
    workers=2,
    artifacts_destination="s3://bucket/artifacts",
    allowed_hosts=("mlflow",),
    cors_allowed_origins=("http://mlflow",),
)
URI = "mysql+mysqldb://u:pw@db:3306/mlflow"
SECRET_URL = "postgresql://mlflow:s3cr3t-pw@db.example.com/mlflow"


def _refused(arg: str) -> str:
    problem = contract.extra_arg_problem(arg)
    assert problem is not None, f"{arg!r} was allowed"
    return problem


# ---- What the launcher gives mlflow server --------------------------------------------------


@pytest.mark.parametrize(
    "arg",
    [
        "--host",
        "--host=127.0.0.1",
        "-h",
        "-h127.0.0.1",
        "--port=80",
        "-p80",
        "-w",
        "-w8",
        "--workers=8",
        "--serve-artifacts",
        "--no-serve-artifacts",
        "--artifacts-destination=s3://elsewhere",
        "--allowed-hosts=*",
        "--cors-allowed-origins",
        "--app-name=basic-auth",
        "--backend-store-uri",
        "--read-replica-backend-store-uri=sqlite:///x.db",
        "--expose-prometheus=/tmp/x",
    ],
)
def test_the_launchers_flags_are_refused_in_every_spelling(arg):
    assert " is the launcher's: " in _refused(arg)


@pytest.mark.parametrize(
    ("arg", "why"),
    [
        ("--disable-security-middleware", "Host and origin checks"),
        ("--uvicorn-opts=--http h11", "request guard"),
        ("--gunicorn-opts", "replaces uvicorn"),
        ("--waitress-opts", "replaces uvicorn"),
        ("--dev", "auto-reload"),
        ("--static-prefix=/mlflow", "/health"),
        ("--artifacts-only", "tracking API"),
        ("--registry-store-uri=sqlite:///r.db", "backend store"),
        ("--default-artifact-root", "bypass"),
    ],
)
def test_flags_that_would_undo_the_launchers_are_refused_saying_why(arg, why):
    problem = _refused(arg)
    assert " is refused: " in problem and why in problem


def test_every_option_serve_gives_is_one_a_user_cannot_give():
    """The refusals follow serve's own argv: a flag added there and not to the contract's
    list fails here."""
    argv = server_argv(SERVER)
    options = [item for item in argv[argv.index("server") + 1 :] if item.startswith("-")]
    assert len(options) >= 8
    assert all(" is the launcher's: " in _refused(option) for option in options)


@pytest.mark.parametrize(
    "arg",
    [
        "--x-frame-options",
        "DENY",
        "--secrets-cache-max-size=500",
        "--secrets-cache-ttl=30",
        "mysql://user@db/mlflow",  # a user, no password
        "--hostname-like-but-not-host",
        "-x",
    ],
)
def test_other_arguments_pass(arg):
    assert contract.extra_arg_problem(arg) is None


# ---- What looks like a secret ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (SECRET_URL, "a URL with a password"),
        ("redis://:only-a-password@cache:6379/0", "a URL with a password"),
        ("AKIAIOSFODNN7EXAMPLE", "an AWS access key ID"),
        ("key=ASIAIOSFODNN7EXAMPLE", "an AWS access key ID"),
        ("-----BEGIN RSA PRIVATE KEY-----", "a private key"),
    ],
)
def test_values_that_look_like_secrets_are_refused_saying_where_secrets_go(value, what):
    for problem in (contract.secret_value_problem(value), _refused(value)):
        assert problem == f"looks like a secret ({what}); {contract.WHERE_SECRETS_GO}"
    assert "AWS Secrets Manager" in contract.WHERE_SECRETS_GO


def test_an_owned_flag_with_a_secret_value_is_refused_for_both():
    problem = _refused(f"--backend-store-uri={SECRET_URL}")
    assert "--backend-store-uri is the launcher's" in problem
    assert "looks like a secret (a URL with a password)" in problem


@pytest.mark.parametrize("arg", ["--api-token=x", "--db-password", "--signing-key", "--apikey"])
def test_flags_named_like_secrets_are_refused(arg):
    assert "looks like it takes a secret" in _refused(arg)


# ---- Variables ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("MLFLOW_DB_HOST", "the chart sets it for the launcher"),  # a contract variable
        ("MLFLOW_SERVER_EXTRA_ENV", "the chart sets it for the launcher"),
        ("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "the chart sets it for the launcher"),
        ("MLFLOW_SERVER_ALLOWED_HOSTS", "MLflow reads it as --allowed-hosts"),  # a flag's
        ("MLFLOW_BACKEND_STORE_URI", "MLflow reads it as --backend-store-uri"),
        ("MLFLOW_UVICORN_OPTS", "MLflow reads it as --uvicorn-opts"),
        ("MLFLOW_LOGGING_LEVEL", "server.log_level"),  # serve sets it
        ("UVICORN_HTTP", "request guard"),
        ("MLFLOW_ON_EKS_AUTH", "sign-in"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "Secrets Manager"),
        ("MLFLOW_S3_ENDPOINT_URL", "stays unset on AWS"),
        ("UVICORN_WORKERS", "command line"),
        ("HOME", "the image's own"),
        ("PYTHONPATH", "the image's own"),
        ("AWS_ROLE_ARN", "IRSA"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "IRSA"),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "IRSA"),
        ("AWS_ACCESS_KEY_ID", "IRSA"),
        ("AWS_PROFILE", "IRSA"),
        ("KUBERNETES_SERVICE_HOST", "the kubelet"),
        ("_MLFLOW_SERVER_FILE_STORE", "MLflow's own"),
    ],
)
def test_variables_someone_else_sets_are_refused_saying_whose(name, why):
    problem = contract.extra_env_name_problem(name)
    assert problem is not None and problem.startswith("is not yours to set: ")
    assert why in problem


@pytest.mark.parametrize(
    "name", ["OPENAI_API_KEY", "MLFLOW_TRACKING_TOKEN", "DB_PASSWORD", "MYSECRET", "X_CREDENTIALS"]
)
def test_variables_named_like_secrets_are_refused(name):
    assert contract.extra_env_name_problem(name) == (
        f"looks like it holds a secret; {contract.WHERE_SECRETS_GO}"
    )


@pytest.mark.parametrize("name", ["bad-name", "1ST", "A B", "", "É"])
def test_names_that_are_not_variable_names_are_refused(name):
    assert contract.extra_env_name_problem(name) == (
        "is not a variable name: letters, digits and _, not starting with a digit"
    )


@pytest.mark.parametrize(
    "name",
    [
        "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS",
        "MLFLOW_SERVER_SECRETS_CACHE_TTL",  # a setting about secrets, not a secret
        "AWS_USE_FIPS_ENDPOINT",
        "UVICORN_TIMEOUT_KEEP_ALIVE",
        "PWD_LIKE",
    ],
)
def test_other_variables_pass(name):
    assert contract.extra_env_name_problem(name) is None


def test_everything_serve_sets_for_the_server_is_refused():
    """The refusals follow serve's own environment, sign-in and a read replica included: a
    variable added there and not to the contract's lists fails here."""
    secrets = auth.AuthSecrets(
        admin=secret.Credentials("admin", "pw"), flask_secret_key="k", kek_passphrase="p"
    )
    signed_in = auth.server_env(secrets, ROOT / "x.ini")
    env = server_env({}, URI, secrets=signed_in, read_uri=URI, log_level="info")
    runner = server_env({}, URI, secrets=signed_in, job_role="run")
    set_by_serve = set(env) | set(runner)
    assert len(set_by_serve) >= 10
    assert not {n for n in set_by_serve if contract.extra_env_name_problem(n) is None}


def test_the_images_variables_are_refused():
    """The ENV names of image/Dockerfile's last stage (the image that runs)."""
    text = re.sub(r"\\\n", " ", (ROOT / "image" / "Dockerfile").read_text())
    text = re.split(r"^FROM\s", text, flags=re.MULTILINE)[-1]
    names = {
        name
        for line in re.findall(r"^ENV\s+(.*)$", text, flags=re.MULTILINE)
        for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", line)
    }
    assert {"PATH", "HOME", "TMPDIR"} <= names
    assert not {n for n in names if contract.extra_env_name_problem(n) is None}


# ---- How serve passes them ----------------------------------------------------------------


def test_extra_arguments_follow_the_launchers_as_argv_items():
    odd = ["--x-frame-options", "DENY", "a b; rm -rf / $(id) `id` \"'", "--secrets-cache-ttl=30"]
    argv = server_argv(ServerEnvironment(**{**SERVER.__dict__, "extra_args": tuple(odd)}))
    assert argv[: len(server_argv(SERVER))] == server_argv(SERVER)
    assert argv[len(server_argv(SERVER)) :] == odd  # one item each: exec'd, no shell


def test_extra_variables_reach_the_server_under_the_launchers_own():
    extra = {
        "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS": "1",
        # Refused by the contract; were one ever let through, the launcher's would still win.
        "UVICORN_HTTP": "h11",
        "MLFLOW_BACKEND_STORE_URI": "sqlite:///elsewhere.db",
    }
    env = server_env({"MLFLOW_SERVER_EXTRA_ENV": "{}"}, URI, extra=extra)
    assert env["MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS"] == "1"
    assert env["UVICORN_HTTP"] != "h11"
    assert env["MLFLOW_BACKEND_STORE_URI"] == URI
    assert "MLFLOW_SERVER_EXTRA_ENV" not in env  # the launcher's, not the server's


def _server_env(**extra: str) -> dict[str, str]:
    return {
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/artifacts",
        "MLFLOW_ALLOWED_HOSTS": "mlflow",
        **extra,
    }


def test_the_launcher_reads_them_from_its_contract():
    server = settings._server(
        settings.parse(
            _server_env(
                MLFLOW_SERVER_EXTRA_ARGS='["--x-frame-options", "DENY"]',
                MLFLOW_SERVER_EXTRA_ENV='{"MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS": "1"}',
            ),
            *settings._SERVER,
        )
    )
    assert server.extra_args == ("--x-frame-options", "DENY")
    assert server.extra_env == {"MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS": "1"}
    none = settings._server(settings.parse(_server_env(), *settings._SERVER))
    assert (none.extra_args, none.extra_env) == ((), {})


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("MLFLOW_SERVER_EXTRA_ARGS", "--host", " must be a JSON array of strings: it is not JSON"),
        ("MLFLOW_SERVER_EXTRA_ARGS", '{"a": "b"}', " must be a JSON array of strings"),
        ("MLFLOW_SERVER_EXTRA_ARGS", '["--x-frame-options", 3]', "[1]: is not a string"),
        ("MLFLOW_SERVER_EXTRA_ARGS", f'["{SECRET_URL}"]', "[0]: looks like a secret"),
        ("MLFLOW_SERVER_EXTRA_ENV", '["A"]', " must be a JSON object of variable names"),
        ("MLFLOW_SERVER_EXTRA_ENV", '{"A": 3}', ".A: is not a string"),
        ("MLFLOW_SERVER_EXTRA_ENV", '{"A": ["x"]}', ".A: is not a string"),
        ("MLFLOW_SERVER_EXTRA_ENV", f'{{"A": "{SECRET_URL}"}}', ".A: looks like a secret"),
        ("MLFLOW_SERVER_EXTRA_ENV", '{"HOME": "/"}', ".HOME: is not yours to set"),
    ],
)
def test_a_bad_value_stops_the_launcher_naming_where_and_repeating_no_value(
    variable, text, message
):
    with pytest.raises(LauncherError) as stopped:
        settings.parse(_server_env(**{variable: text}), *settings._SERVER)
    assert stopped.value.exit_code == 2
    assert f"{variable}{message}" in str(stopped.value)
    assert "s3cr3t-pw" not in str(stopped.value)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "would start a runner of its own"),
        ("MLFLOW_SERVER_JOB_EXECUTION_ENGINE", "whose jobs are rows in the database"),
        ("MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS", "once per deployment"),
        ("MLFLOW_SERVER_JOB_HUEY_REDIS_URL", "whose queue is the database"),
        ("_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN", "its own /gateway/"),
    ],
)
def test_the_job_roles_variables_are_refused_saying_why(name, why):
    """MLFLOW_JOB_ROLE (jobs.enabled) sets them per pod; one set by hand would start a runner
    in every API pod, or a per-pod queue that loses jobs with the pod."""
    problem = contract.extra_env_name_problem(name)
    assert problem is not None and problem.startswith("is not yours to set: ")
    assert why in problem
    pod = {"MLFLOW_ARTIFACTS_DESTINATION": "s3://b/a", "MLFLOW_ALLOWED_HOSTS": "mlflow"}
    with pytest.raises(LauncherError, match=f"MLFLOW_SERVER_EXTRA_ENV.{name}: is not yours"):
        settings._server(
            settings.parse(
                {**pod, "MLFLOW_SERVER_EXTRA_ENV": f'{{"{name}": "x"}}'}, *settings._SERVER
            )
        )
