"""Proxied uploads streamed to S3 in parts, for the server's workers only (app.py registers it).

MLflow 3.17 streams a proxied upload (`PUT /api/2.0/mlflow-artifacts/artifacts/<path>`) into
the artifact repository only when the repository is a `StreamUploadMixin`
(server/artifact_router.py `upload_artifact`, handlers.py `_upload_artifact`); its S3
repository is not, so it spools the whole body to the pod's scratch space first. This one is:
the body goes to S3 as it arrives, through MLflow's own `_upload_file` (the same client, key
and ExtraArgs: MLFLOW_S3_UPLOAD_EXTRA_ARGS, SSE/KMS, the expected bucket owner and the
endpoint URL apply as they do to its spooled upload), with boto3's `upload_fileobj` of the
stream in place of `upload_file` of the spool file. boto3's transfer manager sends a body of
less than one part with one PutObject, a larger one as a multipart upload in parts of
`part_bytes`, and aborts that upload when anything fails, a client that goes away mid-body
included (no orphaned parts; S3 bills them).

Memory: the transfer manager sends contract.UPLOAD_PARTS_SENT_AT_ONCE parts at once and reads
the next one from the client meanwhile, so the client's bytes keep arriving while parts go to
S3; an upload holds up to contract.UPLOAD_PARTS_HELD parts, and the guard's transfer slots
bound the uploads per pod (guard/transfers.py), so the chart's memory rule counts both.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import AsyncIterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from mlflow.store.artifact.artifact_repo import StreamUploadMixin
from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry
from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

from mlflow_launcher import contract, stream_parts


class StreamingS3ArtifactRepository(S3ArtifactRepository, StreamUploadMixin):
    """MLflow's S3 repository, taking a proxied upload's body as a stream (see the module)."""

    part_bytes = stream_parts.part_bytes(0)
    """Set by `register` from the server's artifact size limit."""

    def log_artifact_from_stream(
        self, stream: BinaryIO, artifact_file_name: str, artifact_path: str | None = None
    ) -> None:
        """MLflow's Flask route (servers other than uvicorn): Werkzeug's stream reads as a
        file does."""
        self._upload_stream(stream, artifact_file_name, artifact_path)

    async def log_artifact_from_async_stream(
        self,
        chunks: AsyncIterable[bytes],
        artifact_file_name: str,
        artifact_path: str | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        reader = stream_parts.AsyncStreamReader(chunks, loop)
        # A thread of its own, not the loop's default pool: it waits on the client for the
        # whole upload, and MLflow's downloads need that pool meanwhile.
        thread = ThreadPoolExecutor(1, thread_name_prefix="mlflow-on-eks-upload")
        upload = loop.run_in_executor(
            thread, self._upload_stream, reader, artifact_file_name, artifact_path
        )
        thread.shutdown(wait=False)  # the thread ends with the upload
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            # The upload's thread may be waiting for a chunk this loop will not deliver now:
            # it fails, and the transfer manager aborts the multipart upload before we return.
            reader.cancel()
            await asyncio.gather(upload, return_exceptions=True)
            raise

    def _upload_stream(
        self, stream: Any, artifact_file_name: str, artifact_path: str | None
    ) -> None:
        # The key as MLflow's `log_artifact` makes it for its spool file, named after the
        # artifact; its `_upload_file` then builds the ExtraArgs (content type guessed from
        # that name, expected bucket owner, MLFLOW_S3_UPLOAD_EXTRA_ARGS) and calls
        # `upload_file`, which `_StreamInto` turns into `upload_fileobj` of the stream.
        name = posixpath.basename(artifact_file_name)
        bucket, key = self.parse_s3_compliant_uri(self.artifact_uri)
        if artifact_path:
            key = posixpath.join(key, artifact_path)
        client = _StreamInto(self._get_s3_client(), stream, self.part_bytes)
        self._upload_file(
            s3_client=client, local_file=name, bucket=bucket, key=posixpath.join(key, name)
        )


class _StreamInto:
    """What MLflow's `_upload_file` calls `upload_file` on: sends `stream` instead of the file
    it names, in parts of `part_bytes`, with the ExtraArgs it was given."""

    def __init__(self, client: Any, stream: Any, part_bytes: int) -> None:
        self._client, self._stream, self._part_bytes = client, stream, part_bytes

    def upload_file(self, *, Filename: str, Bucket: str, Key: str, ExtraArgs: dict) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self._part_bytes,
            multipart_chunksize=self._part_bytes,
            max_concurrency=contract.UPLOAD_PARTS_SENT_AT_ONCE,
            preferred_transfer_client="classic",  # the transfer manager described above
        )
        # s3transfer's own setting (boto3's config does not take it as an argument): the parts
        # read and not yet sent, those being sent included.
        config.max_in_memory_upload_chunks = contract.UPLOAD_PARTS_SENT_AT_ONCE
        self._client.upload_fileobj(
            Fileobj=self._stream, Bucket=Bucket, Key=Key, ExtraArgs=ExtraArgs, Config=config
        )


def register(max_artifact_bytes: int) -> None:
    """Serve `s3://` with the streaming repository in this process (a server worker): MLflow's
    registry builds the proxied artifacts' repository from it on the first request."""
    StreamingS3ArtifactRepository.part_bytes = stream_parts.part_bytes(max_artifact_bytes)
    _artifact_repository_registry.register("s3", StreamingS3ArtifactRepository)
