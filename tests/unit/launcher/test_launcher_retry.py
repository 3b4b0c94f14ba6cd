"""Which failures of the MLflow client the deploy check waits out, and which it reports at once
(verify.retry). The errors are raised the way MLflow's rest_utils raises them: its own
exception, built inside the `except` that caught requests' (so chained as __context__), with
the message it writes. tests/integration/test_verify.py shows the same on the real client.
"""

from __future__ import annotations

import pytest
import requests
import urllib3

from mlflow_launcher.errors import VerificationFailed
from mlflow_launcher.verify import retry


class MlflowException(Exception):
    """Stands in for mlflow.exceptions.MlflowException (not in this venv)."""


class RestException(MlflowException):
    """mlflow.exceptions.RestException: carries the HTTP status of MLflow's error code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self._status = status

    def get_http_status_code(self) -> int:
        return self._status


def as_mlflow_raises(error: BaseException, message: str) -> MlflowException:
    """MLflow's `except Exception as e: raise MlflowException(f"... {e}")`."""
    try:
        raise error
    except BaseException:
        try:
            raise MlflowException(message.format(error=error))  # as MLflow does: no `from`
        except MlflowException as wrapped:
            return wrapped


URL = "http://mlflow.mlflow.svc.cluster.local/api/2.0/mlflow/experiments/create"
REFUSED = requests.exceptions.ConnectionError(
    urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
)
TOO_MANY_503 = requests.exceptions.RetryError(
    urllib3.exceptions.MaxRetryError(
        None, URL, urllib3.exceptions.ResponseError("too many 503 error responses")
    )
)
TOO_MANY_500 = requests.exceptions.RetryError(
    urllib3.exceptions.MaxRetryError(
        None, URL, urllib3.exceptions.ResponseError("too many 500 error responses")
    )
)


@pytest.mark.parametrize(
    ("error", "passes"),
    [
        (as_mlflow_raises(REFUSED, f"API request to {URL} failed with exception {{error}}"), True),
        (
            as_mlflow_raises(
                requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)"),
                f"API request to {URL} failed with timeout exception {{error}}.",
            ),
            True,
        ),
        # The client's retries ran out on MLflow's 503 (its database unreachable).
        (
            as_mlflow_raises(TOO_MANY_503, f"API request to {URL} failed with exception {{error}}"),
            True,
        ),
        (RestException("TEMPORARILY_UNAVAILABLE: database unreachable", 503), True),
        # The server's 500: what a login check meets while the database fails over (a bucket
        # it cannot write answers so too, and is reported when the deadline passes).
        (
            as_mlflow_raises(TOO_MANY_500, f"API request to {URL} failed with exception {{error}}"),
            True,
        ),
        (RestException("INVALID_PARAMETER_VALUE: bad filter", 400), False),
        (RestException("RESOURCE_DOES_NOT_EXIST: no such run", 404), False),
        (RestException("PERMISSION_DENIED: admin only", 403), False),
        (
            as_mlflow_raises(
                requests.exceptions.SSLError("certificate verify failed"),
                f"API request to {URL} failed with exception {{error}}",
            ),
            False,
        ),
        (ValueError("a bug"), False),
    ],
)
def test_what_passes_by_itself(error, passes):
    assert retry.transient(error) is passes


def test_a_step_is_retried_through_transient_errors(monkeypatch, caplog):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.01)
    caplog.set_level("INFO")
    errors = [as_mlflow_raises(TOO_MANY_503, "API request failed with exception {error}")] * 2

    def action() -> str:
        if errors:
            raise errors.pop()
        return "done"

    assert retry.attempt("http://t", "creating a run", float("inf"), action) == "done"
    # Logged once though it happened twice (same reason), then the step's time.
    assert caplog.text.count("verify http://t: creating a run: the server answered HTTP 503") == 1
    assert "retrying for up to" in caplog.text
    assert "verify http://t: creating a run ok (" in caplog.text


def test_a_step_that_cannot_get_better_fails_at_once():
    calls = []

    def action() -> None:
        calls.append(1)
        raise RestException("RESOURCE_DOES_NOT_EXIST: no such run", 404)

    with pytest.raises(VerificationFailed) as caught:
        retry.attempt("http://t", "ending the run", float("inf"), action)
    assert str(caught.value) == (
        "http://t: ending the run failed: RESOURCE_DOES_NOT_EXIST: no such run"
    )
    assert calls == [1]


def test_a_transient_error_that_stays_is_the_reason_at_the_deadline(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.01)
    error = as_mlflow_raises(TOO_MANY_503, f"API request to {URL} failed with exception {{error}}")

    def action() -> None:
        raise error

    with pytest.raises(VerificationFailed) as caught:
        retry.attempt("http://t", "creating an experiment", 0.0, action)  # deadline passed
    assert str(caught.value) == (
        "http://t: creating an experiment failed: the server answered HTTP 503 on every try "
        "(its log says why)"
    )


def test_not_yet_is_waited_for_and_is_the_reason_if_it_stays(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_INTERVAL_SECONDS", 0.01)
    answers = [retry.NotYet("http://t: found nothing"), None]

    def action() -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    retry.attempt("http://t", "searching", float("inf"), action)
    assert answers == []

    def never() -> None:
        raise retry.NotYet("http://t: searching runs by metric found nothing, not exactly run x")

    with pytest.raises(VerificationFailed) as caught:
        retry.attempt("http://t", "searching", 0.0, never)
    assert (
        str(caught.value) == "http://t: searching runs by metric found nothing, not exactly run x"
    )
    assert not isinstance(caught.value, retry.NotYet)
