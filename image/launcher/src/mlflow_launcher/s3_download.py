"""Proxied downloads streamed from S3 as the client reads them, for the server's workers (app.py
adds the routes).

MLflow 3.17's proxied download (`GET /api/2.0/mlflow-artifacts/artifacts/<path>`,
server/artifact_router.py `download_artifact`) fetches the whole object into the pod's scratch
space, then streams that file. The routes here, for the same paths and ahead of MLflow's,
stream one S3 object as the client reads it, with the object's Content-Length: whatever ends
the response early (S3 failing halfway: the read raises, uvicorn drops the connection), it ends
short of that length, which a client sees as an error and not as a whole file. Everything else
is left to MLflow's own endpoint, which answers as before:
artifact serving off, a path it refuses, a directory, a missing object, an object over the
transfer size limit (the guard then refuses it), a repository other than S3.

MLflow's authorization still runs first: its FastAPI permission middleware picks the validator
by path and method (server/auth `_find_fastapi_validator`), not by the route that answers, and
the guard's transfer slot and size limit hold as they do for MLflow's route. The UI's Flask
download routes (`/get-artifact`) still spool to the scratch space.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from mlflow.server import artifact_router as mlflow_routes
from mlflow.store.artifact.artifact_repo import ARTIFACT_STREAM_CHUNK_SIZE
from mlflow.utils.mime_type_utils import _guess_mime_type
from mlflow.utils.uri import validate_path_is_safe

from mlflow_launcher.guard.transfers import CURRENT
from mlflow_launcher.s3_stream import StreamingS3ArtifactRepository

PATHS = (
    "/api/2.0/mlflow-artifacts/artifacts/{artifact_path:path}",
    "/ajax-api/2.0/mlflow-artifacts/artifacts/{artifact_path:path}",
)
"""MLflow's download routes (server/artifact_router.py)."""


def add_routes(app: FastAPI) -> None:
    """Put the streaming routes ahead of MLflow's: the first route that matches answers."""
    for path in PATHS:
        app.router.routes.insert(0, APIRoute(path, download_artifact, methods=["GET"]))


async def download_artifact(artifact_path: str) -> Any:
    opened = await asyncio.to_thread(_open, artifact_path)
    if opened is None:
        return await mlflow_routes.download_artifact(artifact_path)
    path, body, length = opened
    return StreamingResponse(
        _chunks(body),
        headers={
            # As MLflow's route sets them, and the length it cannot know.
            "Content-Type": _guess_mime_type(path),
            "Content-Disposition": mlflow_routes._content_disposition(posixpath.basename(path)),
            "X-Content-Type-Options": "nosniff",
            "Content-Length": str(length),
        },
    )


def object_params(repository: Any, path: str) -> dict[str, Any]:
    """An S3 call's Bucket, Key and owner check for `path` under an S3 repository's root, as
    MLflow's S3ArtifactRepository names its objects."""
    bucket, root = repository.parse_s3_compliant_uri(repository.artifact_uri)
    return {"Bucket": bucket, "Key": posixpath.join(root, path), **repository._bucket_owner_params}


def _open(artifact_path: str) -> tuple[str, Any, int] | None:
    """The object's repository path, its S3 body and length; None for MLflow's route to answer."""
    if not mlflow_routes._is_serving_proxied_artifacts():
        return None
    try:
        path = mlflow_routes._get_workspace_scoped_path(validate_path_is_safe(artifact_path))
        repository = mlflow_routes._get_artifact_repo()
    except Exception:  # MLflow's route answers with its own error
        return None
    if not isinstance(repository, StreamingS3ArtifactRepository) or not path:
        return None
    if repository._is_directory(path):  # MLflow's answer: 400, a directory
        return None
    try:
        got = repository._get_s3_client().get_object(**object_params(repository, path))
    except ClientError:  # no such object: MLflow's answer
        return None
    length = int(got["ContentLength"])
    transfer = CURRENT.get()
    if transfer is not None and transfer.moved + length > transfer.limit:
        got["Body"].close()
        return None  # MLflow's route counts it too, and the guard refuses it (413)
    if transfer is not None:
        transfer.add(length)
    return path, got["Body"], length


def _chunks(body: Any) -> Iterator[bytes]:
    """The object's bytes as S3 sends them. Starlette iterates this in its thread pool; the S3
    response is closed when the last chunk is sent, or when the client goes away."""
    with contextlib.closing(body):
        yield from body.iter_chunks(ARTIFACT_STREAM_CHUNK_SIZE)
