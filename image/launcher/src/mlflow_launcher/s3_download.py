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
the guard's transfer slot and size limit hold as they do for MLflow's route.

The UI's downloads are Flask views (`/get-artifact`, `/model-versions/get-artifact`, a logged
model's files), which MLflow answers with `handlers._send_artifact`: it fetches the object
into the scratch space, then sends the file with werkzeug's conditional and range handling.
`stream_ui_downloads` replaces that function, inside the views (after MLflow's Flask
permission hook), with a stream from S3 that keeps the same handling: werkzeug reads a
seekable file (`_S3File`) that fetches from the offset it is sought to, so a Range request
fetches that range; the ETag is S3's, the same for each download of an object (MLflow's, of a
fresh temporary file, changed with each). The client's first byte no longer waits for the whole
object to reach the scratch space, which holds none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
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


def stream_ui_downloads() -> None:
    """The UI's downloads streamed from S3 (see the module's docstring)."""
    from mlflow.server import handlers

    send_artifact = handlers._send_artifact
    if getattr(send_artifact, "mlflow_on_eks_streamed", False):
        return

    def streamed(repository: Any, path: str) -> Any:
        response = _ui_download(repository, path)
        return send_artifact(repository, path) if response is None else response

    streamed.mlflow_on_eks_streamed = True  # type: ignore[attr-defined]
    handlers._send_artifact = streamed


def _ui_download(repository: Any, path: str) -> Any:
    """MLflow's answer (handlers.py `_create_temp_artifact_file_response`), streamed; None for
    MLflow's own to answer (as `_open`)."""
    from flask import current_app, request
    from mlflow.exceptions import MlflowException
    from mlflow.server import handlers
    from werkzeug.wsgi import wrap_file

    if not isinstance(repository, StreamingS3ArtifactRepository) or not path:
        return None
    if repository._is_directory(path):
        # MLflow's answer, which it gives after it has fetched the whole directory.
        raise MlflowException.invalid_parameter_value(
            f"Artifact path refers to a directory, not a file: '{path}'"
        )
    got = _fetch(repository, path)
    if got is None:
        return None
    length = int(got["ContentLength"])
    body = _S3File(repository._get_s3_client(), object_params(repository, path), got)
    try:
        response = current_app.response_class(
            wrap_file(request.environ, body, buffer_size=ARTIFACT_STREAM_CHUNK_SIZE),
            mimetype=_guess_mime_type(path),
            direct_passthrough=True,
        )
        response.content_length = length
        response.last_modified = got["LastModified"]
        response.set_etag(got["ETag"].strip('"'))
        response.cache_control.no_cache = True
        response = response.make_conditional(
            request.environ, accept_ranges=True, complete_length=length
        )
    except Exception:  # a Range it cannot satisfy (416) among them
        body.close()
        raise
    response.headers["Content-Disposition"] = handlers._content_disposition_attachment(
        posixpath.basename(path)
    )
    return handlers._response_with_file_attachment_headers(path, response)


class _S3File(io.RawIOBase):
    """An S3 object as a seekable file, read from the network as it is read here: werkzeug
    seeks it to a Range's start. The first fetch is the whole object's (its headers give the
    length and ETag); a seek elsewhere fetches from there, of the same version (If-Match)."""

    def __init__(self, client: Any, params: dict[str, Any], got: dict[str, Any]) -> None:
        super().__init__()
        self._client, self._params, self._etag = client, params, got["ETag"]
        self._body: Any = got["Body"]
        self._at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only absolute seeks")
        if offset != self._at:
            self._drop_body()
            self._at = offset
        return self._at

    def read(self, size: int | None = -1) -> bytes:
        if self._body is None:
            self._body = self._client.get_object(
                **self._params, Range=f"bytes={self._at}-", IfMatch=self._etag
            )["Body"]
        data = self._body.read(None if size is None or size < 0 else size)
        self._at += len(data)
        if not data:
            self._drop_body()  # the WSGI bridge never calls close(): let the connection go now
        return data

    def close(self) -> None:
        self._drop_body()
        super().close()

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


def _fetch(repository: Any, path: str) -> dict[str, Any] | None:
    """The object's GetObject answer, its length counted against the request's transfer; None
    when there is no such object or it is over the limit (MLflow's route answers: it counts it
    too, and the guard refuses it with 413)."""
    try:
        got = repository._get_s3_client().get_object(**object_params(repository, path))
    except ClientError:  # no such object: MLflow's answer
        return None
    length = int(got["ContentLength"])
    transfer = CURRENT.get()
    if transfer is not None and transfer.moved + length > transfer.limit:
        got["Body"].close()
        return None
    if transfer is not None:
        transfer.add(length)
    return got


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
    got = _fetch(repository, path)
    if got is None:
        return None
    return path, got["Body"], int(got["ContentLength"])


def _chunks(body: Any) -> Iterator[bytes]:
    """The object's bytes as S3 sends them. Starlette iterates this in its thread pool; the S3
    response is closed when the last chunk is sent, or when the client goes away."""
    with contextlib.closing(body):
        yield from body.iter_chunks(ARTIFACT_STREAM_CHUNK_SIZE)
