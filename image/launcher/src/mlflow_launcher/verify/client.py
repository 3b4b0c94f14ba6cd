"""A user's session with the real MLflow client: experiment, run, params, artifact, search."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from mlflow_launcher.errors import VerificationFailed
from mlflow_launcher.verify.messages import short_error
from mlflow_launcher.verify.retry import NotYet, attempt

T = TypeVar("T")

log = logging.getLogger(__name__)

# The MLflow client's defaults: 7 retries with exponential backoff and 120 s per request, which
# makes a step whose call the server answers with 500 (bucket not writable) take minutes before
# it reports anything. Two quick retries ride out a pod being replaced while the check runs;
# what lasts longer (a database failover) is waited out by retry.attempt around each step, up to
# the target's deadline, logging why on the way.
CLIENT_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def exercise_client(target: str, deadline: float) -> None:
    """A user's session with the real client, each step retried through transient failures
    until `deadline` (retry.attempt), cleaned up whatever happens."""
    for name, value in CLIENT_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # Imported here: the server's own subcommands should not pay for the client's import.
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    client = mlflow.MlflowClient(tracking_uri=target)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"mlflow-on-eks-verify-{stamp}-{secrets.token_hex(4)}"
    nonce = float(secrets.randbelow(10**9))  # an integer: exact as a float, so = matches
    payload = secrets.token_bytes(4096)
    experiment_id, run = None, None

    def step(what: str, action: Callable[[], T]) -> T:
        return attempt(target, what, deadline, action)

    try:
        experiment_id = step("creating an experiment", lambda: _create_experiment(client, name))
        run = step("creating a run", lambda: client.create_run(experiment_id, run_name="verify"))
        run_id = run.info.run_id
        step(
            "logging params, metrics and a tag",
            lambda: client.log_batch(
                run_id,
                metrics=[Metric("verify_nonce", nonce, int(time.time() * 1000), 0)],
                params=[Param("verify_experiment", name)],
                tags=[RunTag("mlflow-on-eks.verify", "true")],
            ),
        )
        with tempfile.TemporaryDirectory(prefix="mlflow-verify-") as tmp:
            sent = Path(tmp, "sent", "verify.bin")
            sent.parent.mkdir()
            sent.write_bytes(payload)
            step(
                "uploading an artifact through the server",
                lambda: client.log_artifact(run_id, str(sent)),
            )
            back = step(
                "downloading the artifact",
                lambda: Path(client.download_artifacts(run_id, "verify.bin", _fresh(tmp))),
            )
            if back.read_bytes() != payload:
                raise VerificationFailed(
                    f"{target}: downloading the artifact returned other bytes than were "
                    f"uploaded ({back.stat().st_size} of {len(payload)} bytes)"
                )

        def search() -> None:
            found = client.search_runs([experiment_id], f"metrics.verify_nonce = {nonce:.0f}")
            ids = [r.info.run_id for r in found]
            if ids != [run_id]:
                # Nothing yet is what a read replica behind the primary shows for a moment;
                # another run is a wrong answer, which waiting will not fix.
                error = NotYet if not ids else VerificationFailed
                raise error(
                    f"{target}: searching runs by metric found {ids or 'nothing'}, "
                    f"not exactly run {run_id}"
                )

        step("searching runs by metric", search)
        step("ending the run", lambda: client.set_terminated(run_id))
    finally:
        _clean_up(client, target, experiment_id, run)


def _create_experiment(client, name: str) -> str:
    """A retry after an answer lost on the way finds the experiment made by the first try."""
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


def _fresh(parent: str) -> str:
    """A new, empty download directory per try."""
    return tempfile.mkdtemp(prefix="back-", dir=parent)


def _clean_up(client, target: str, experiment_id: str | None, run) -> None:
    """Best effort, after success or failure alike: logged, never the reason."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    def delete_artifacts() -> None:
        get_artifact_repository(run.info.artifact_uri, tracking_uri=target).delete_artifacts()

    actions = []
    if run is not None:
        actions += [
            ("deleting the run's artifacts", delete_artifacts),
            ("deleting the run", lambda: client.delete_run(run.info.run_id)),
        ]
    if experiment_id is not None:
        actions.append(("deleting the experiment", lambda: client.delete_experiment(experiment_id)))
    for what, action in actions:
        try:
            action()
        except Exception as exc:  # cleanup must not hide the verdict
            log.warning("verify %s: cleanup: %s failed: %s", target, what, short_error(exc))
        else:
            log.info("verify %s: cleanup: %s ok", target, what)
