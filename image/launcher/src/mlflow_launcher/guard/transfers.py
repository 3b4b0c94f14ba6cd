"""Proxied artifact transfers: how many a pod holds, and how large each may be.

With `--serve-artifacts` on S3, MLflow fetches a download whole into the pod's scratch space
before it streams it out (mlflow/server: artifact_router.py, handlers.py `_send_artifact`). The
artifact API's and the UI's downloads stream from S3 instead (the launcher's s3_download.py);
the trace routes (trace data, attachments) still spool. An upload is streamed to S3 in parts
as it arrives (the launcher's s3_stream.py; MLflow alone would spool it whole to scratch space
first): it holds up to contract.UPLOAD_PARTS_HELD parts in memory (8 MiB each up to a 78 GiB
limit, contract.upload_part_mib) and nothing on disk. The scratch emptyDir is sized for
`transfers` transfers of `max_artifact_bytes` each (the chart's scratch_gib), as every slot may
be a spooled download; past its size limit the kubelet evicts the pod with every request in
flight. So a transfer over the size refuses with 413, one past the count
with 503, and neither ever reaches the disk: an upload of a declared length over the size is
refused before a byte is read, one without a length (chunked) is cut off at the size and its
parts sent so far are aborted.

The count is per pod, across its worker processes: each transfer holds an exclusive `flock`
on one of `transfers` slot files in the pod's scratch space, which the kernel releases when
the transfer ends or its process dies.
"""

from __future__ import annotations

import fcntl
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from mlflow_launcher.guard.limits import MIB

SLOTS_DIRECTORY = "mlflow-transfer-slots"
"""Under TMPDIR (the pod's emptyDir, shared by its processes)."""

_ARTIFACT = re.compile(r"^/(?:api|ajax-api)/2\.0/mlflow-artifacts/artifacts/.+")
# Flask routes that download into scratch space before sending (mlflow/server/__init__.py).
_DOWNLOADS = re.compile(
    r"^(?:/get-artifact|/model-versions/get-artifact"
    r"|/ajax-api/[23]\.0/mlflow/get-trace-artifact"
    r"|/ajax-api/2\.0/mlflow/logged-models/[^/]+/artifacts/files)$"
)

MAX_ARTIFACT_SETTING = "server.max_proxied_artifact_gib"
TRANSFERS_SETTING = "server.concurrent_artifact_transfers"


class Direction(Enum):
    UPLOAD = "upload"
    DOWNLOAD = "download"


def direction(method: str, path: str) -> Direction | None:
    """Whether this request moves an artifact through the pod's scratch space."""
    if _ARTIFACT.match(path):
        return {"PUT": Direction.UPLOAD, "GET": Direction.DOWNLOAD}.get(method)
    if method == "GET" and _DOWNLOADS.match(path):
        return Direction.DOWNLOAD
    return None


@dataclass
class Transfer:
    """One request's transfer; the download hook adds what it fetches (see app.py)."""

    limit: int
    moved: int = 0
    too_large: bool = False

    def add(self, size: int) -> bool:
        """Count `size` more bytes; False (and too_large) once the transfer is over the limit."""
        self.moved += size
        self.too_large = self.too_large or self.moved > self.limit
        return not self.too_large


CURRENT: ContextVar[Transfer | None] = ContextVar("mlflow_on_eks_transfer", default=None)
"""The transfer of the request being served; threads MLflow runs the request in see it too."""


def too_large_message(direction: Direction, size: int, limit: int) -> str:
    gib = f"{limit / 1024 / MIB:g} GiB ({MAX_ARTIFACT_SETTING})"
    if direction is Direction.UPLOAD:
        return (
            f"artifact of {size / MIB:.0f} MiB refused: this server proxies artifacts of up to "
            f"{gib}. Send larger files straight to S3: MLflow clients "
            ">= 3.15 do that for files of MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE (500 MiB) "
            "and more (presigned multipart upload); older clients with "
            "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=true"
        )
    return (
        f"artifact download of {size / MIB:.0f} MiB refused: this server proxies artifacts of up "
        f"to {gib}. MLflow clients >= 3.15 fetch artifacts straight "
        "from S3 with presigned URLs the server hands out; use one (mlflow.artifacts."
        "download_artifacts), or the AWS CLI with access to the bucket"
    )


def busy_message(transfers: int) -> str:
    return (
        f"this server pod is already moving {transfers} artifacts through itself "
        f"({TRANSFERS_SETTING}); retry in a few seconds, or send large files straight to S3 "
        "(MLflow clients >= 3.15 do for files of 500 MiB and more)"
    )


class Slots:
    """`count` transfer slots shared by the pod's processes (flock on files)."""

    def __init__(self, directory: Path, count: int) -> None:
        self.directory, self.count = directory, count
        directory.mkdir(parents=True, exist_ok=True)

    def take(self) -> int | None:
        """A held slot's file descriptor, or None when every slot is taken."""
        for index in range(self.count):
            descriptor = os.open(self.directory / str(index), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            return descriptor
        return None

    @staticmethod
    def give_back(descriptor: int) -> None:
        os.close(descriptor)  # closing the descriptor releases its lock
