"""`server.extra_args` and `server.extra_env` from the config file to the running server: the
synthesized ConfigMap carries them, the launcher appends the arguments to `mlflow server`'s and
adds the variables to its environment, and a request sees each take effect. A refused one never
reaches the server, even written into the ConfigMap by hand: the launcher stops first.

The refusals are one list (the launcher's contract); here it is held to MLflow's own CLI, so an
MLflow upgrade that adds a spelling or an option fails a test instead of slipping past.
"""

from __future__ import annotations

import json
import urllib.request

import itest_launcher as launcher
import pytest
from itest_chart import anonymous_server_env

from mlflow_on_eks.k8s_charts.launcher_contract import launcher as contract

pytestmark = pytest.mark.integration

EXTRA_ARGS = ["--x-frame-options", "DENY"]
"""MLflow's default is SAMEORIGIN: every answer then says DENY instead."""
EXTRA_ENV = {"MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS": "1"}
"""MLflow's default is 10: a query with two root fields is then refused, naming the limit."""
TWO_ROOT_FIELDS = '{ a: test(inputString: "a") { output } b: test(inputString: "b") { output } }'

LEFT_TO_USERS = {
    "--x-frame-options",
    "--trace-archival-config",
    "--secrets-cache-ttl",
    "--secrets-cache-max-size",
    "--workspace-store-uri",
    "--help",
}
"""`mlflow server` options that extra_args may give (every other is refused, with why)."""

CLICK_OPTIONS = """
import json
from mlflow.cli import server
print(json.dumps([
    {"names": [*p.opts, *p.secondary_opts], "envvar": p.envvar}
    for p in server.params if p.param_type_name == "option"
]))
"""


def test_the_refused_flags_are_mlflow_servers_own_in_every_spelling():
    """Each refused flag names every spelling click accepts and the variable it reads; every
    option of `mlflow server` is refused or deliberately left to users."""
    options = json.loads(launcher.image_python("-c", CLICK_OPTIONS).stdout)
    by_name = {option["names"][0]: option for option in options}
    for flag in contract.REFUSED_FLAGS:
        option = by_name.get(flag.name)
        assert option is not None, f"mlflow server has no option {flag.name} any more"
        assert set(flag.names) == set(option["names"]), flag.name
        assert flag.envvar == option["envvar"], flag.name
    refused = {flag.name for flag in contract.REFUSED_FLAGS}
    undecided = set(by_name) - refused - LEFT_TO_USERS
    assert not undecided, "new mlflow server options: refuse them or leave them to users"


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(  # noqa: S310 - http on loopback
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def test_extra_arguments_and_variables_reach_the_server(
    mariadb, new_database, moto, test_ca, tmp_path
):
    env = anonymous_server_env(
        {"extra_args": EXTRA_ARGS, "extra_env": EXTRA_ENV},
        "extras",
        tmp_path,
        mariadb,
        new_database,
        moto,
        test_ca,
    )
    assert json.loads(env["MLFLOW_SERVER_EXTRA_ARGS"]) == EXTRA_ARGS  # the ConfigMap's
    assert json.loads(env["MLFLOW_SERVER_EXTRA_ENV"]) == EXTRA_ENV
    assert "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS" not in env  # only the server gets it

    server = launcher.Server(env, tmp_path / "server.log")
    try:
        server.wait_healthy()
        with urllib.request.urlopen(f"{server.base_url}/health", timeout=10) as answer:  # noqa: S310
            assert answer.headers["X-Frame-Options"] == "DENY"
        answer = _post_json(f"{server.base_url}/graphql", {"query": TWO_ROOT_FIELDS})
        [message] = answer["errors"]
        assert message.startswith("GraphQL queries should have at most 1 root fields, got 2"), (
            answer
        )
        one = _post_json(
            f"{server.base_url}/graphql", {"query": '{ test(inputString: "a") { output } }'}
        )
        assert one["data"]["test"]["output"] == "a", one
    finally:
        server.stop()
    logs = server.logs()
    assert "extra arguments for mlflow server: --x-frame-options DENY" in logs
    assert "extra variables for mlflow server: MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS" in logs


def test_a_refused_extra_written_into_the_configmap_never_reaches_the_server(tmp_path):
    """The chart cannot write these (tests/unit); a ConfigMap edited by hand can. The launcher
    refuses them before anything starts, names each, and repeats no value."""
    password = "hunter2-extras-Zq9"
    env = launcher.container_env(
        {
            "MLFLOW_DB_ENGINE": "mysql",
            "MLFLOW_DB_HOST": "127.0.0.1",
            "MLFLOW_DB_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:x",
            "MLFLOW_DB_CA_BUNDLE": str(launcher.REPO / "image" / "Dockerfile"),  # a readable file
            "MLFLOW_ARTIFACTS_DESTINATION": "s3://bucket/artifacts",
            "MLFLOW_ALLOWED_HOSTS": "localhost",
            "MLFLOW_SERVER_EXTRA_ARGS": json.dumps(
                ["--x-frame-options", "DENY", "--allowed-hosts=*", f"mysql://u:{password}@h/db"]
            ),
            "MLFLOW_SERVER_EXTRA_ENV": json.dumps(
                {"UVICORN_HTTP": "h11", "MLFLOW_X": f"postgresql://u:{password}@h/db"}
            ),
        },
        tmp_path / "home",
    )
    served = launcher.run(["serve"], env, timeout=60)
    output = served.stdout + served.stderr
    assert served.returncode == 2, output
    assert "MLFLOW_SERVER_EXTRA_ARGS[2]: --allowed-hosts is the launcher's" in output
    assert "MLFLOW_SERVER_EXTRA_ARGS[3]: looks like a secret" in output
    assert "MLFLOW_SERVER_EXTRA_ENV.UVICORN_HTTP: is not yours to set" in output
    assert "MLFLOW_SERVER_EXTRA_ENV.MLFLOW_X: looks like a secret" in output
    assert "starting mlflow server" not in output
    assert password not in output
