"""The read replica is used only once it has replayed the primary's schema; lag is waited out
within the retry bound, then named."""

import pytest
from sqlalchemy import create_engine

from mlflow_launcher import replica, schema, wait
from mlflow_launcher.errors import LauncherError

HEAD = "1b5f0d9ad7c1"  # stands in for MLflow's head (mlflow is not in the dev venv)


@pytest.fixture
def engine(tmp_path):
    # A real engine on SQLite: `probe` and the schema read run for real.
    engine = create_engine(f"sqlite:///{tmp_path / 'replica.db'}")
    yield engine
    engine.dispose()


def _revisions(monkeypatch, revisions):
    monkeypatch.setattr(schema, "head_revision", lambda: HEAD)
    seen = iter(revisions)
    monkeypatch.setattr(schema, "current_revision", lambda _engine: next(seen))


def test_lag_is_waited_out(monkeypatch, engine):
    _revisions(monkeypatch, [None, "0584bdc529eb", HEAD])
    sleeps = []
    replica.wait_until_ready(
        engine, wait.RetryPolicy(5, 8.0), ca_bundle="/ca.pem", sleep=sleeps.append
    )
    assert sleeps == [1.0, 2.0]


def test_a_replica_that_stays_behind_fails_with_both_revisions(monkeypatch, engine, caplog):
    _revisions(monkeypatch, ["0584bdc529eb"] * 3)
    with pytest.raises(LauncherError) as err:
        replica.wait_until_ready(
            engine, wait.RetryPolicy(3, 1.0), ca_bundle="/ca.pem", sleep=lambda _s: None
        )
    message = str(err.value)
    assert "read replica" in message and "not ready after 3 attempts" in message
    assert "0584bdc529eb" in message and HEAD in message and "replication lag" in message
    assert "not ready (attempt 1/3)" in caplog.text


def test_a_login_the_replica_has_not_replayed_yet_is_lag_too(monkeypatch, engine):
    """The migration Job makes (or re-passwords) the server's login on the primary; a replica
    that refuses it a moment later is behind, not a wrong secret."""
    _revisions(monkeypatch, [HEAD])
    refusals = iter([Exception("(1045, \"Access denied for user 'mlflow_server'@'10.0.0.9'\")")])

    def probe(_engine):
        for refusal in refusals:
            raise refusal

    monkeypatch.setattr(wait, "probe", probe)
    sleeps = []
    replica.wait_until_ready(
        engine, wait.RetryPolicy(5, 8.0), ca_bundle="/ca.pem", sleep=sleeps.append
    )
    assert sleeps == [1.0]
