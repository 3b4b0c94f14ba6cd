"""Secret problems produce a clear message naming the secret and the cause, never its content."""

import json

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
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
