"""`mlflow-launcher verify` up to the MLflow client, against real HTTP servers on loopback: the
settings it refuses, how it reads MLflow's refusals, and the CloudFormation signal on the wire
(method, headers, body) with its URL kept out of the logs.

The MLflow client steps need mlflow (in .venv-image only): tests/integration/test_verify.py
runs them against the real server.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlflow_launcher import cli, verify
from mlflow_launcher.errors import LauncherError, VerificationFailed
from mlflow_launcher.verify import cfn_signal, checks, retry, tls
from mlflow_launcher.verify.settings import CA_BUNDLE_ENV, CONNECT_TO_ENV

LOGS_COMMAND = "kubectl -n mlflow logs job/mlflow-verify-1a2b3c4d5e6f"
SIGNATURE = "Zm9vYmFyLXNpZ25hdHVyZS12YWx1ZQ%3D%3D"
QUERY = (
    f"AWSAccessKeyId=AKIAEXAMPLE&Expires=1767225600&X-Amz-SignedHeaders=host&Signature={SIGNATURE}"
)
INVALID_HOST = "Invalid Host header - possible DNS rebinding attack detected"
CORS_BLOCKED = "Cross-origin request blocked"
PASSWORD = "s3cret-tracking-pw"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHttp:
    """Answers each (method, path) from a list of (status, body), the last one repeating."""

    routes: dict[tuple[str, str], list[tuple[int, str]]]
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        self.requests.append(
            Recorded(handler.command, handler.path, dict(handler.headers.items()), body)
        )
        answers = self.routes.get((handler.command, handler.path), [(404, "not found")])
        status, text = answers.pop(0) if len(answers) > 1 else answers[0]
        if text == HANG:
            time.sleep(1)
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@contextmanager
def fake_http(routes: dict[tuple[str, str], list[tuple[int, str]]]) -> Iterator[FakeHttp]:
    fake = FakeHttp({key: list(value) for key, value in routes.items()})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.answer(self)

        do_POST = do_PUT = do_GET

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HEALTHY = {("GET", "/health"): [(200, "OK")]}
HANG = "<answer after a second>"


def settings(**overrides) -> verify.VerifyEnvironment:
    values = {"targets": (), "timeout_seconds": 2.0, "credentials": None, **overrides}
    return verify.VerifyEnvironment(**values)


# ---------------------------------------------------------------- settings -------------------


@pytest.mark.parametrize("value", [None, "", " , ,"])
def test_targets_are_required(value):
    env = {} if value is None else {verify.TARGETS_ENV: value}
    with pytest.raises(LauncherError, match=f"^{verify.TARGETS_ENV} is not set"):
        verify.load(env)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("mlflow.mlflow.svc.cluster.local", "is not an http(s) URL"),
        ("ftp://mlflow.example.com", "is not an http(s) URL"),
        ("http://", "is not an http(s) URL"),
        ("http://mlflow.example.com/?x=1", "has a query or fragment"),
        ("http://mlflow.example.com:eighty", "Port could not be cast"),
    ],
)
def test_each_bad_target_is_named(entry, problem):
    env = {verify.TARGETS_ENV: f"http://ok.example.com,{entry}"}
    with pytest.raises(LauncherError) as caught:
        verify.load(env)
    assert str(caught.value).startswith(f"{verify.TARGETS_ENV}: {entry!r} ")
    assert problem in str(caught.value)


def test_a_target_with_credentials_is_refused_without_echoing_them():
    env = {verify.TARGETS_ENV: "http://alice:hunter2-pw@mlflow.example.com"}
    with pytest.raises(LauncherError) as caught:
        verify.load(env)
    assert str(caught.value) == (
        f"{verify.TARGETS_ENV}: entry 1 carries credentials (use MLFLOW_TRACKING_USERNAME/PASSWORD)"
    )


def test_a_certificates_name_is_reached_at_the_load_balancer():
    """With TLS on, the chart names the certificate's name as target and where to reach it."""
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    env = {
        verify.TARGETS_ENV: "http://mlflow.ml.svc.cluster.local,https://mlflow.internal.example.com",
        CONNECT_TO_ENV: "MLflow.Internal.example.com=k8s-ml-x.elb.eu-west-1.amazonaws.com",
        CA_BUNDLE_ENV: pem,
    }
    loaded = verify.load(env)
    assert loaded.connect_to == {
        "mlflow.internal.example.com": "k8s-ml-x.elb.eu-west-1.amazonaws.com"
    }
    assert (loaded.ca_bundle, loaded.trusted()) == (pem, f"the CAs in {CA_BUNDLE_ENV}")
    assert verify.load({verify.TARGETS_ENV: "http://a.example.com"}).trusted() == (
        "a public root CA"
    )


@pytest.mark.parametrize(
    ("connect_to", "why"),
    [
        (
            "other.example.com=nlb",
            "other.example.com is not the host of any of MLFLOW_VERIFY_TARGETS",
        ),
        ("mlflow.internal.example.com", "comma-separated <name>=<address> pairs"),
    ],
)
def test_a_connect_to_for_no_target_or_without_an_address_is_refused(connect_to, why):
    env = {verify.TARGETS_ENV: "https://mlflow.internal.example.com", CONNECT_TO_ENV: connect_to}
    with pytest.raises(LauncherError, match=why):
        verify.load(env)


def test_a_name_is_reached_at_its_address_under_its_own_name():
    """As curl's --connect-to: the connection goes to the address, the request keeps the name
    (Host here; SNI and the certificate check for https). Nothing else is redirected, and only
    within the block."""
    before = socket.getaddrinfo
    with fake_http(HEALTHY) as fake:
        port = fake.url.rsplit(":", 1)[1]
        target = f"http://mlflow.internal.example.com:{port}"
        with tls.connecting_to({"mlflow.internal.example.com": "127.0.0.1"}):
            verify.wait_healthy(target, deadline=float("inf"), settings=settings())
            assert socket.getaddrinfo("localhost", 80)  # other names as usual
        assert fake.requests[-1].headers["Host"] == f"mlflow.internal.example.com:{port}"
    assert socket.getaddrinfo is before


def test_every_problem_is_reported_at_once():
    env = {verify.TARGETS_ENV: "nope", verify.TIMEOUT_ENV: "soon"}
    with pytest.raises(LauncherError) as caught:
        verify.load(env)
    assert verify.TARGETS_ENV in str(caught.value)
    assert f"{verify.TIMEOUT_ENV} must be a positive number of seconds, got 'soon'" in str(
        caught.value
    )


@pytest.mark.parametrize("value", ["0", "-5", "inf", "nan"])
def test_the_timeout_must_be_positive(value):
    env = {verify.TARGETS_ENV: "http://a.example.com", verify.TIMEOUT_ENV: value}
    with pytest.raises(LauncherError, match=verify.TIMEOUT_ENV):
        verify.load(env)


def test_targets_as_clients_send_them():
    """Default ports dropped (browsers leave them out of Host and Origin), trailing slashes
    dropped, duplicates once, order kept; 600 s by default."""
    env = {
        verify.TARGETS_ENV: " http://mlflow.mlflow.svc.cluster.local:80/ ,"
        "https://MLflow.Example.com:443,http://lb.example.com:8080/mlflow/,"
        "http://mlflow.mlflow.svc.cluster.local"
    }
    loaded = verify.load(env)
    assert loaded.targets == (
        "http://mlflow.mlflow.svc.cluster.local",
        "https://mlflow.example.com",
        "http://lb.example.com:8080/mlflow",
    )
    assert loaded.timeout_seconds == 600
    assert loaded.credentials is None


def test_a_signal_url_that_is_no_url_is_refused_without_echoing_it():
    with pytest.raises(LauncherError) as caught:
        verify.load_signal_url({verify.SIGNAL_URL_ENV: f"s3-bucket/key?{QUERY}"})
    assert SIGNATURE not in str(caught.value)
    assert verify.SIGNAL_URL_ENV in str(caught.value)


def test_the_signal_url_and_its_signature_are_masked_but_not_its_plain_words():
    url = f"https://cloudformation-waitcondition-eu-west-1.s3.amazonaws.com/arn/handle?{QUERY}"
    forms = verify.secret_forms({verify.SIGNAL_URL_ENV: url, verify.PASSWORD_ENV: PASSWORD})
    assert {url, QUERY, SIGNATURE, PASSWORD} <= set(forms)
    assert not {"host", "AKIAEXAMPLE", "1767225600"} & set(forms)


# ---------------------------------------------------------------- MLflow's answers -----------


def test_health_is_retried_through_transient_answers(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    routes = {("GET", "/health"): [(503, "no healthy upstream"), (502, "bad gateway"), (200, "OK")]}
    with fake_http(routes) as fake:
        verify.wait_healthy(fake.url, deadline=float("inf"), settings=settings())
    assert [r.path for r in fake.requests] == ["/health"] * 3


def test_no_answer_names_the_target_the_timeout_and_the_last_error(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    target = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(VerificationFailed) as caught:
        verify.verify_target(target, settings(timeout_seconds=0.3))
    assert str(caught.value) == f"{target}: no answer within 0.3 s (last: Connection refused)"


MLFLOW_503 = {
    "error_code": "TEMPORARILY_UNAVAILABLE",
    "message": '(MySQLdb.OperationalError) (2003, "Can\'t connect to MySQL server")',
}


def test_mlflows_own_503_passes_with_the_failover(monkeypatch):
    """MLflow answers 503 TEMPORARILY_UNAVAILABLE while its database is unreachable, as for
    the minute or two of a Multi-AZ failover: waited out, where it used to fail the deploy."""
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    answers = [(503, json.dumps(MLFLOW_503)), (503, json.dumps(MLFLOW_503)), (200, "{}")]
    with fake_http({**HEALTHY, ("GET", verify.HOST_CHECK_PATH): answers}) as fake:
        verify.check_host(fake.url, float("inf"), settings(), {})
    assert [r.path for r in fake.requests] == [verify.HOST_CHECK_PATH] * 3


def test_mlflows_own_503_that_stays_is_named_in_its_words(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    routes = {**HEALTHY, ("GET", verify.HOST_CHECK_PATH): [(503, json.dumps(MLFLOW_503))]}
    with fake_http(routes) as fake, pytest.raises(VerificationFailed) as caught:
        verify.verify_target(fake.url, settings(timeout_seconds=0.3))
    assert str(caught.value) == (
        f"{fake.url}: GET {verify.HOST_CHECK_PATH} answered 503: TEMPORARILY_UNAVAILABLE: "
        '(MySQLdb.OperationalError) (2003, "Can\'t connect to MySQL server") '
        "(still after 0.3 s)"
    )
    assert len(fake.requests) > 2


def test_the_servers_500_and_503_during_a_failover_are_asked_again(monkeypatch):
    """With sign-in on, a login the process has not checked lately meets the database in the
    sign-in check, which does not handle MLflow's error: a bare 500 (measured in
    tests/integration/test_verify.py); where the store handles it, MLflow's 503."""
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    answers = [(500, "Internal Server Error"), (503, json.dumps(MLFLOW_503)), (200, "{}")]
    with fake_http({**HEALTHY, ("GET", verify.HOST_CHECK_PATH): answers}) as fake:
        verify.check_host(fake.url, float("inf"), settings(), {})
    assert len(fake.requests) == 3


def test_the_last_transient_answer_is_in_the_reason(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    routes = {("GET", "/health"): [(503, "no healthy upstream\n")]}
    with fake_http(routes) as fake, pytest.raises(VerificationFailed) as caught:
        verify.verify_target(fake.url, settings(timeout_seconds=0.2))
    assert str(caught.value) == (
        f"{fake.url}: no answer within 0.2 s (last: HTTP 503: no healthy upstream)"
    )


def test_an_api_that_never_answers_while_health_does_is_named_after_the_deadline(monkeypatch):
    monkeypatch.setattr(checks, "REQUEST_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    routes = {**HEALTHY, ("GET", verify.HOST_CHECK_PATH): [(200, HANG)]}
    with fake_http(routes) as fake, pytest.raises(VerificationFailed) as caught:
        verify.verify_target(fake.url, settings(timeout_seconds=0.5))
    assert str(caught.value) == (
        f"{fake.url}: GET {verify.HOST_CHECK_PATH} got no answer within 0.2 s, though /health "
        "answers (still after 0.5 s)"
    )


def test_an_api_that_answers_late_once_is_asked_again(monkeypatch):
    """A worker's first request waits for a database that is failing over: the next one gets
    the answer."""
    monkeypatch.setattr(checks, "REQUEST_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    routes = {**HEALTHY, ("GET", verify.HOST_CHECK_PATH): [(200, HANG), (200, "{}")]}
    with fake_http(routes) as fake:
        verify.check_host(fake.url, float("inf"), settings(), {})
    assert len(fake.requests) == 2


def test_a_health_check_that_times_out_is_retried(monkeypatch):
    """Before /health answers, a silent connection is the way in still settling."""
    monkeypatch.setattr(checks, "REQUEST_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    with fake_http({("GET", "/health"): [(200, HANG), (200, "OK")]}) as fake:
        verify.wait_healthy(fake.url, deadline=float("inf"), settings=settings())
    assert len(fake.requests) == 2


def test_an_unexpected_health_answer_fails_at_once():
    with (
        fake_http({("GET", "/health"): [(404, "<h1>Not Found</h1>\nmore")]}) as fake,
        pytest.raises(VerificationFailed) as caught,
    ):
        verify.verify_target(fake.url, settings(timeout_seconds=60))
    assert str(caught.value) == f"{fake.url}: GET /health answered 404: <h1>Not Found</h1>"
    assert len(fake.requests) == 1


def test_a_refused_host_is_named_with_the_setting_to_fix():
    routes = {**HEALTHY, ("GET", verify.HOST_CHECK_PATH): [(403, INVALID_HOST)]}
    with fake_http(routes) as fake:
        with pytest.raises(VerificationFailed) as caught:
            verify.verify_target(fake.url, settings())
        host = fake.url.removeprefix("http://")
        # The request carried the URL's own Host, as a user's client does.
        assert fake.requests[-1].headers["Host"] == host
    assert str(caught.value) == (
        f"{fake.url}: MLflow refuses Host '{host}' (403): it is missing from the server's "
        "allowed hosts (MLFLOW_ALLOWED_HOSTS, config server.allowed_hosts)"
    )


@pytest.mark.parametrize("with_credentials", [False, True])
def test_authentication_required(with_credentials):
    routes = {**HEALTHY, ("GET", verify.HOST_CHECK_PATH): [(401, "You are not authenticated.")]}
    credentials = ("alice", PASSWORD) if with_credentials else None
    with fake_http(routes) as fake, pytest.raises(VerificationFailed) as caught:
        verify.verify_target(fake.url, settings(credentials=credentials))
    reason = str(caught.value)
    assert reason.startswith(f"{fake.url}: the server requires authentication (401) and ")
    if with_credentials:
        assert (
            fake.requests[-1].headers["Authorization"] == "Basic YWxpY2U6czNjcmV0LXRyYWNraW5nLXB3"
        )
        assert reason.endswith("MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD was refused")
    else:
        assert "Authorization" not in fake.requests[-1].headers
        assert reason.endswith(
            "no login was given (MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or "
            "MLFLOW_AUTH_ADMIN_SECRET_ID)"
        )
    assert PASSWORD not in reason


def test_another_api_answer_is_reported_at_once_with_mlflows_message():
    error = {"error_code": "INVALID_PARAMETER_VALUE", "message": "max_results: bad\nmore"}
    routes = {**HEALTHY, ("GET", verify.HOST_CHECK_PATH): [(400, json.dumps(error))]}
    with fake_http(routes) as fake, pytest.raises(VerificationFailed) as caught:
        verify.verify_target(fake.url, settings(timeout_seconds=60))
    assert str(caught.value) == (
        f"{fake.url}: GET {verify.HOST_CHECK_PATH} answered 400: "
        "INVALID_PARAMETER_VALUE: max_results: bad"
    )
    assert len(fake.requests) == 2


def test_a_500_that_stays_is_reported_in_mlflows_words(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    error = {"error_code": "INTERNAL_ERROR", "message": "(OperationalError) (2003, 'down')\nSQL"}
    routes = {**HEALTHY, ("GET", verify.HOST_CHECK_PATH): [(500, json.dumps(error))]}
    with fake_http(routes) as fake, pytest.raises(VerificationFailed) as caught:
        verify.verify_target(fake.url, settings(timeout_seconds=0.3))
    assert str(caught.value) == (
        f"{fake.url}: GET {verify.HOST_CHECK_PATH} answered 500: "
        "INTERNAL_ERROR: (OperationalError) (2003, 'down') (still after 0.3 s)"
    )


def test_a_blocked_browser_write_says_the_ui_is_broken_under_that_name():
    routes = {
        **HEALTHY,
        ("GET", verify.HOST_CHECK_PATH): [(200, "{}")],
        ("POST", verify.BROWSER_PATH): [(403, CORS_BLOCKED)],
    }
    with fake_http(routes) as fake:
        with pytest.raises(VerificationFailed) as caught:
            verify.verify_target(fake.url, settings())
        sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", verify.BROWSER_PATH)
    assert sent.headers["Origin"] == fake.url
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body) == {"max_results": 1}
    assert str(caught.value) == (
        f"{fake.url}: a browser page served from {fake.url} could not write (the UI is broken "
        "under this name): MLflow's CORS origins (MLFLOW_CORS_ALLOWED_ORIGINS) do not list it"
    )


@pytest.mark.parametrize(
    ("error", "short"),
    [
        (
            "API request to http://mlflow.mlflow.svc.cluster.local/api/2.0/mlflow/experiments/"
            "create failed with exception HTTPConnectionPool(host='mlflow.mlflow.svc.cluster."
            "local', port=80): Max retries exceeded with url: /api/2.0/mlflow/experiments/create "
            "(Caused by ResponseError('too many 500 error responses'))",
            "the server answered HTTP 500 on every try (its log says why)",
        ),
        (
            "API request to http://x/api failed with exception HTTPConnectionPool(host='x', "
            "port=80): Max retries exceeded with url: /api (Caused by NewConnectionError('<urllib3"
            ".connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: "
            "[Errno 111] Connection refused'))",
            "Connection refused",
        ),
        ("RESOURCE_DOES_NOT_EXIST: No\nsuch\trun", "RESOURCE_DOES_NOT_EXIST: No such run"),
        ("x" * 1000, "x" * 297 + "..."),
    ],
)
def test_client_errors_are_cut_to_one_short_line(error, short):
    assert verify.short_error(RuntimeError(error)) == short


# ---------------------------------------------------------------- the signal -----------------


def test_the_signal_is_a_put_of_the_json_without_content_type():
    """What `curl -T file URL` sends: S3 checks the presigned signature against the request,
    so nothing but the body and the URL's own query may differ."""
    with fake_http({("PUT", f"/cfn-signal/handle?{QUERY}"): [(200, "")]}) as receiver:
        verify.send_signal(f"{receiver.url}/cfn-signal/handle?{QUERY}", "FAILURE", "r", "d")
    [sent] = receiver.requests
    assert sent.method == "PUT"
    assert sent.path == f"/cfn-signal/handle?{QUERY}"  # the query as given, not re-encoded
    assert "content-type" not in {name.lower() for name in sent.headers}
    assert sent.headers["Content-Length"] == str(len(sent.body))
    assert b"\n" not in sent.body
    assert json.loads(sent.body) == {
        "Status": "FAILURE",
        "Reason": "r",
        "UniqueId": "mlflow-verify",
        "Data": "d",
    }


def test_the_signal_is_retried_on_server_errors(monkeypatch):
    monkeypatch.setattr(cfn_signal, "SIGNAL_BACKOFF_SECONDS", 0.01)
    routes = {("PUT", "/handle"): [(503, "SlowDown"), (500, "InternalError"), (200, "")]}
    with fake_http(routes) as receiver:
        verify.send_signal(f"{receiver.url}/handle", "SUCCESS", "r", "d")
    assert [r.method for r in receiver.requests] == ["PUT"] * 3


def test_a_refused_signal_is_not_retried_and_its_body_is_not_echoed():
    body = f"<Error><Code>SignatureDoesNotMatch</Code><SignatureProvided>{SIGNATURE}"
    with (
        fake_http({("PUT", f"/handle?{QUERY}"): [(403, body)]}) as receiver,
        pytest.raises(LauncherError) as caught,
    ):
        verify.send_signal(f"{receiver.url}/handle?{QUERY}", "SUCCESS", "r", "d")
    assert len(receiver.requests) == 1
    assert str(caught.value) == (
        "the SUCCESS signal did not reach CloudFormation (MLFLOW_VERIFY_SIGNAL_URL): HTTP 403"
    )


# ---------------------------------------------------------------- as the container runs it ---


def _run_cli(monkeypatch, capfd, env: dict[str, str]) -> tuple[int, str]:
    for name in (verify.USERNAME_ENV, verify.PASSWORD_ENV, verify.LOGS_COMMAND_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = cli.main(["verify"])
    # Anything logged later in this process is masked as well.
    cli.log.error("after the run: %s", env.get(verify.SIGNAL_URL_ENV))
    return code, capfd.readouterr().err


def test_a_failure_is_signalled_once_with_the_reason_and_the_logs_command(monkeypatch, capfd):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    target = f"http://127.0.0.1:{closed_port()}"
    with fake_http({("PUT", f"/handle?{QUERY}"): [(200, "")]}) as receiver:
        signal_url = f"{receiver.url}/handle?{QUERY}"
        code, err = _run_cli(
            monkeypatch,
            capfd,
            {
                verify.TARGETS_ENV: target,
                verify.TIMEOUT_ENV: "0.2",
                verify.SIGNAL_URL_ENV: signal_url,
                verify.LOGS_COMMAND_ENV: LOGS_COMMAND,
                verify.USERNAME_ENV: "alice",
                verify.PASSWORD_ENV: PASSWORD,
            },
        )
    reason = f"{target}: no answer within 0.2 s (last: Connection refused) (logs: {LOGS_COMMAND})"
    assert code == VerificationFailed.exit_code == 3
    [sent] = receiver.requests
    assert json.loads(sent.body) == {
        "Status": "FAILURE",
        "Reason": reason,
        "UniqueId": "mlflow-verify",
        "Data": f"{target} failed",
    }
    assert f"mlflow-launcher ERROR {reason}\n" in err
    assert "signal FAILURE sent to CloudFormation" in err
    assert "after the run: ***" in err
    for secret in (signal_url, QUERY, SIGNATURE, PASSWORD):
        assert secret not in err


def test_bad_settings_are_signalled_too(monkeypatch, capfd):
    """CloudFormation learns at once, instead of at the wait condition's timeout."""
    with fake_http({("PUT", "/handle"): [(200, "")]}) as receiver:
        code, err = _run_cli(
            monkeypatch,
            capfd,
            {verify.TARGETS_ENV: "", verify.SIGNAL_URL_ENV: f"{receiver.url}/handle"},
        )
    assert code == LauncherError.exit_code == 2
    [sent] = receiver.requests
    signal = json.loads(sent.body)
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"].startswith(f"{verify.TARGETS_ENV} is not set")
    assert signal["Reason"] in err


def test_an_undelivered_signal_fails_the_job(monkeypatch, capfd):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.05)
    monkeypatch.setattr(cfn_signal, "SIGNAL_BACKOFF_SECONDS", 0.01)
    signal_url = f"http://127.0.0.1:{closed_port()}/handle?{QUERY}"
    code, err = _run_cli(
        monkeypatch,
        capfd,
        {
            verify.TARGETS_ENV: f"http://127.0.0.1:{closed_port()}",
            verify.TIMEOUT_ENV: "0.1",
            verify.SIGNAL_URL_ENV: signal_url,
        },
    )
    assert code == 3
    assert (
        "the FAILURE signal did not reach CloudFormation (MLFLOW_VERIFY_SIGNAL_URL): "
        "Connection refused" in err
    )
    assert QUERY not in err
    assert signal_url not in err


def test_a_job_stopped_at_its_deadline_still_signals(tmp_path):
    """SIGTERM (activeDeadlineSeconds, or the Job deleted) mid-check: a FAILURE naming what was
    being checked goes out in the grace period, not at the wait condition's timeout."""
    routes = {("GET", "/health"): [(503, "")], ("PUT", "/handle"): [(200, "")]}
    with fake_http(routes) as fake:
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(Path(cli.__file__).resolve().parents[1]),
            verify.TARGETS_ENV: fake.url,
            verify.SIGNAL_URL_ENV: f"{fake.url}/handle",
            verify.LOGS_COMMAND_ENV: LOGS_COMMAND,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow_launcher", "verify"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not fake.requests and time.monotonic() < deadline:  # the check is under way
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        signals = [r for r in fake.requests if r.method == "PUT"]
    reason = (
        f"stopped by SIGTERM while checking {fake.url} (the Job's deadline passed, or the Job "
        f"was deleted) (logs: {LOGS_COMMAND})"
    )
    assert process.returncode == 3, err
    assert [json.loads(r.body)["Reason"] for r in signals] == [reason]
    assert f"ERROR {reason}\n" in err
