"""Secret problems produce a clear message naming the secret and the cause, never its content."""

import contextlib
import json
import os
import socket
import threading

import botocore.session
import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from mlflow_launcher import secret
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.secret import fetch_credentials

SECRET_ID = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow-db"
PASSWORD = "Sup3r$ecret-do-not-print"


class FakeClient:
    def __init__(self, secret_string=None, error=None):
        self.secret_string, self.error = secret_string, error

    def get_secret_value(self, SecretId):
        assert SecretId == SECRET_ID
        if self.error:
            raise self.error
        return {"SecretString": self.secret_string}


def _client_error(code):
    return ClientError({"Error": {"Code": code, "Message": "nope"}}, "GetSecretValue")


def test_valid_secret_gives_credentials():
    body = json.dumps({"username": "admin", "password": PASSWORD, "engine": "mysql", "port": 3306})
    creds = fetch_credentials(SECRET_ID, region=None, client=FakeClient(body))
    assert (creds.username, creds.password) == ("admin", PASSWORD)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ResourceNotFoundException", "does not exist"),
        ("AccessDeniedException", "is not readable by this pod's role"),
        ("DecryptionFailure", "cannot be decrypted"),
        ("ThrottlingException", "cannot be read"),
    ],
)
def test_unreadable_secret_is_a_clear_error(code, expected):
    with pytest.raises(LauncherError) as err:
        fetch_credentials(SECRET_ID, region=None, client=FakeClient(error=_client_error(code)))
    assert SECRET_ID in str(err.value)
    assert expected in str(err.value)
    assert code in str(err.value)


def test_missing_credentials_point_at_irsa():
    with pytest.raises(LauncherError, match="IRSA"):
        fetch_credentials(SECRET_ID, region=None, client=FakeClient(error=NoCredentialsError()))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json " + PASSWORD, "is not valid JSON"),
        (json.dumps([PASSWORD]), "must be a JSON object"),
        (json.dumps({"password": PASSWORD}), "lacks non-empty string key(s): username"),
        (json.dumps({"username": "admin"}), "lacks non-empty string key(s): password"),
        (json.dumps({"username": "admin", "password": 12345}), "key(s): password"),
        (json.dumps({"username": "", "password": ""}), "username, password"),
        (None, "has no SecretString"),
    ],
)
def test_malformed_secret_is_a_clear_error_without_its_content(body, expected):
    with pytest.raises(LauncherError) as err:
        fetch_credentials(SECRET_ID, region=None, client=FakeClient(body))
    assert expected in str(err.value)
    assert PASSWORD not in str(err.value)
    # A chained JSONDecodeError would print the document in the traceback.
    assert err.value.__context__ is None or err.value.__suppress_context__


# ---- bounded calls: a silent endpoint (accepts, never answers) --------------------------------


@pytest.fixture
def silent_endpoint():
    """A TCP endpoint that accepts connections and never answers; yields (url, accepted)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join(5)
    for sock in [*accepted, listener]:
        sock.close()


@pytest.fixture
def fresh_session(monkeypatch, tmp_path):
    """The launcher's AWS session built anew from this test's environment: two tries, and a
    1 s read timeout to keep the test short (the real one is pinned in test_start_budget)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setattr(secret, "READ_TIMEOUT_SECONDS", 1)
    secret._session.cache_clear()
    secret._client.cache_clear()
    yield
    secret._session.cache_clear()
    secret._client.cache_clear()


def test_a_silent_secrets_manager_is_named_after_the_configured_tries(
    fresh_session, silent_endpoint, monkeypatch
):
    url, accepted = silent_endpoint
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
    with pytest.raises(LauncherError) as err:
        fetch_credentials(SECRET_ID, region="eu-west-1")
    assert f"cannot reach Secrets Manager to read {SECRET_ID}" in str(err.value)
    assert "Read timeout" in str(err.value)
    assert len(accepted) == 2  # AWS_MAX_ATTEMPTS tries
    config = secret._client("eu-west-1").meta.config
    assert (config.connect_timeout, config.read_timeout) == (secret.CONNECT_TIMEOUT_SECONDS, 1)


def test_a_silent_sts_is_named_with_the_role(fresh_session, silent_endpoint, monkeypatch, tmp_path):
    """IRSA: the web-identity provider's own STS client gets the launcher's timeouts and the
    environment's tries (botocore builds it through the launcher's session)."""
    url, accepted = silent_endpoint
    made = {}
    create_client = botocore.session.Session.create_client

    def spy(self, service_name, *args, **kwargs):
        client = create_client(self, service_name, *args, **kwargs)
        made[service_name] = client.meta.config
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", spy)
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    role = "arn:aws:iam::123456789012:role/mlflow-server"
    monkeypatch.setenv("AWS_ROLE_ARN", role)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    with pytest.raises(LauncherError) as err:
        fetch_credentials(SECRET_ID, region="eu-west-1")
    message = str(err.value)
    assert f"cannot reach STS (AssumeRoleWithWebIdentity for role {role})" in message
    assert SECRET_ID in message and "Read timeout" in message
    assert len(accepted) == 2
    sts = made["sts"]
    assert (sts.connect_timeout, sts.read_timeout) == (secret.CONNECT_TIMEOUT_SECONDS, 1)
    assert sts.retries == {"mode": "standard", "total_max_attempts": 2}
