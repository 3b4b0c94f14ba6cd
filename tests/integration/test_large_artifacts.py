"""Artifacts past MLflow's multipart threshold move through the real server without filling its
scratch space.

The server runs as the container does (launcher under tini, one uvicorn worker, S3 on moto) in
its own mount namespace (`unshare --mount`, root) with a tmpfs of a fixed size as its TMPDIR,
the way the emptyDir's sizeLimit bounds /tmp in the pod. The test reads that tmpfs from outside
through /proc/<pid>/root and samples its usage during every transfer.

- Current clients (defaults): the server advertises multipart transfers in /server-info, so the
  client sends parts to presigned S3 URLs and downloads by presigned ranges. The server's TMPDIR
  is 64 MiB here: a spool of the artifact could not even fit.
- Clients that proxy the bytes (as older clients do, forced by the two
  MLFLOW_ENABLE_PROXY_MULTIPART_* variables): the server streams each upload to S3 in parts
  (the launcher's s3_stream.py) and each download from S3 as the client reads it
  (s3_download.py), through the same 64 MiB TMPDIR, which neither grows by.
- Proxied uploads in detail (raw HTTP): the bytes arrive intact through a TMPDIR smaller than
  the body, with the server's memory growing by a few parts; one cut off mid-body leaves no
  multipart upload open and no object; a failing S3 gives the client an error.
- A proxied download that S3 cuts off halfway reaches the client as an error (short of the
  declared length), never as a whole file; the server goes on serving.

Neither client has AWS credentials: presigned URLs carry their own signature.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import itest_hostile as hostile
import itest_launcher as launcher
import itest_template as template
import pytest
from itest_servers import _pipe, require_binary

from mlflow_on_eks.k8s_charts import rules
from mlflow_on_eks.k8s_charts.workload import WorkloadProps

pytestmark = pytest.mark.integration

MIB = 1 << 20
# The client's multipart threshold, for uploads and downloads alike: a current client sends
# smaller files through the server (mlflow/environment_variables.py,
# MLFLOW_MULTIPART_{UPLOAD,DOWNLOAD}_MINIMUM_FILE_SIZE).
MULTIPART_THRESHOLD_BYTES = 500 * MIB
# Past the threshold, with the defaults the user has. What the tests prove is relative to the
# scratch space (8 times it), so the artifact is no larger: at 1 GiB + 16 MiB the module took
# 69 s of CPU, at 528 MiB 44 s (moto copies every part).
ARTIFACT_BYTES = 512 * MIB + 16 * MIB
assert ARTIFACT_BYTES > MULTIPART_THRESHOLD_BYTES
ARTIFACT_NAME = "model.bin"
ARTIFACT_DIR = "weights"
SCRATCH_BYTES = 64 * MIB  # far below the artifact: the bytes must not pass through
# What the server may leave in TMPDIR between transfers (it writes nothing there today).
IDLE_SLACK_BYTES = 1 * MIB

# Mount the bounded scratch at TMPDIR inside the new mount namespace, then become the
# container's entrypoint (exec: tini stays the process the test signals).
MOUNT_SCRATCH = 'mount -t tmpfs -o "size=$1,mode=1777" scratch "$TMPDIR" && shift && exec "$@"'

# The real MLflow client, in .venv-image's python. Prints one JSON line.
CLIENT = r"""
import json, sys, time
from mlflow import MlflowClient

mode, uri = sys.argv[1:3]
client = MlflowClient(tracking_uri=uri)
start = time.monotonic()
if mode == "log":
    experiment, local_file, artifact_dir = sys.argv[3:6]
    run = client.create_run(client.create_experiment(experiment))
    client.log_artifact(run.info.run_id, local_file, artifact_path=artifact_dir)
    client.set_terminated(run.info.run_id)
    report = {"run_id": run.info.run_id, "artifact_uri": run.info.artifact_uri}
else:
    run_id, artifact_path, dst = sys.argv[3:6]
    report = {"path": client.download_artifacts(run_id, artifact_path, dst)}
report["seconds"] = time.monotonic() - start
print(json.dumps(report))
"""


class _ObjectWindow:
    """A moto object's bytes as moto's range handling uses them (len and one slice), read from
    the object's buffer on demand instead of copied whole."""

    def __init__(self, key) -> None:
        self._key = key

    def __len__(self) -> int:
        return self._key.size

    def __getitem__(self, part: slice) -> bytes:
        with self._key.lock:
            self._key._value_buffer.seek(part.start)
            return self._key._value_buffer.read(part.stop - part.start)


class _RangedKey:
    def __init__(self, key) -> None:
        self._key = key

    def __getattr__(self, name: str):
        return getattr(self._key, name)

    @property
    def value(self) -> _ObjectWindow:
        return _ObjectWindow(self._key)


@pytest.fixture(scope="module", autouse=True)
def moto_reads_only_the_range():
    """moto answers a ranged GET by copying the whole object, then slicing it. The server's
    boto3 fetches 528 MiB in 66 ranges of 8 MiB: 34 GiB of copying, minutes of test time that
    real S3 does not have. For a plain `bytes=first-last` range this hands moto's own range
    handling a view that reads just that range; everything else in moto is unchanged."""
    from moto.s3.responses import S3Response

    original = S3Response.get_object
    assert callable(getattr(S3Response, "_get_key", None)), "moto changed: update this patch"

    def get_object(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("range") or "")
        if match is None or int(match[1]) > int(match[2]) or self.querystring.get("partNumber"):
            return original(self)
        whole_key = self._get_key

        def ranged_key(*args, **kwargs):
            key, not_modified = whole_key(*args, **kwargs)
            return _RangedKey(key), not_modified

        self._get_key = ranged_key  # this S3Response instance serves one request only
        return original(self)

    S3Response.get_object = get_object
    yield
    S3Response.get_object = original


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Iterator[Artifact]:
    """Every MiB starts with its own index, so parts swapped, repeated or dropped change the
    digest; the rest of each MiB is one random block, so writing is disk-bound, not RNG-bound."""
    path = tmp_path_factory.mktemp("large") / ARTIFACT_NAME
    block, digest = os.urandom(MIB), hashlib.sha256()
    with path.open("wb") as f:
        for index in range(ARTIFACT_BYTES // MIB):
            chunk = index.to_bytes(8, "big") + block[8:]
            f.write(chunk)
            digest.update(chunk)
    yield Artifact(path, digest.hexdigest())
    path.unlink(missing_ok=True)  # half a GiB per run would pile up in pytest's kept tmp dirs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


class Scratch:
    """The server's TMPDIR tmpfs, seen from outside its mount namespace."""

    def __init__(self, server: launcher.Server, tmpdir: str, size: int) -> None:
        self.view = f"/proc/{server.proc.pid}/root{tmpdir}"
        stat = os.statvfs(self.view)
        assert stat.f_blocks * stat.f_frsize == size, "TMPDIR is not the bounded tmpfs"
        assert os.statvfs(tmpdir).f_blocks != stat.f_blocks, "the tmpfs leaked out of the ns"

    def used(self) -> int:
        stat = os.statvfs(self.view)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize

    def settle(self, baseline: int, timeout: float = 10) -> int:
        """Usage once it is back within IDLE_SLACK_BYTES of baseline (or after timeout)."""
        deadline = time.monotonic() + timeout
        while (used := self.used()) > baseline + IDLE_SLACK_BYTES and time.monotonic() < deadline:
            time.sleep(0.05)
        return used

    @contextmanager
    def peak(self) -> Iterator[dict[str, int]]:
        """Samples usage every 10 ms while the block runs; yields {"peak": bytes}."""
        result = {"peak": self.used()}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                result["peak"] = max(result["peak"], self.used())
                stop.wait(0.01)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield result
        finally:
            stop.set()
            thread.join()
            result["peak"] = max(result["peak"], self.used())


@dataclass
class Timings:
    phases: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.phases[name] = time.monotonic() - start

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases.items())


def _serve_with_scratch(
    target, moto, test_ca, tmp_path: Path, scratch_bytes: int, timings, **server_env: str
):
    assert os.geteuid() == 0, "unshare --mount and mount -t tmpfs need root (CI runs as root)"
    unshare = require_binary("unshare")
    require_binary("mount")
    bucket = moto.create_bucket()
    env = launcher.container_env(
        target.contract_env(moto, test_ca.ca, bucket, **server_env), tmp_path / "server-tmp"
    )
    env["MLFLOW_TMP_DIR"] = env["TMPDIR"]  # as image/Dockerfile sets it
    with timings.phase("migrate"):
        template.migrate(target.server, ["migrate"], env)
    command = [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        MOUNT_SCRATCH,
        "sh",
        str(scratch_bytes),
        *launcher.entrypoint(),
        "serve",
    ]
    with timings.phase("server start"):
        server = launcher.Server(env, tmp_path / "server.log", command=command)
        server.wait_healthy(timeout=120)
    return server, Scratch(server, env["TMPDIR"], scratch_bytes), bucket


def _client(server: launcher.Server, home: Path, *args: str, **env: str) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    client_env = {
        "PATH": f"{launcher.image_venv() / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        **env,
    }
    leaked = [k for k in client_env if k.startswith(("AWS_", "MLFLOW_S3_", "BOTO"))]
    assert not leaked, f"the client must need no S3 settings or credentials: {leaked}"
    return launcher.mlflow_client(client_env, *args, code=CLIENT, timeout=600)


def _transfer(server, scratch, artifact: Artifact, tmp_path: Path, timings: Timings, **env):
    """Log the artifact, download it back; returns TMPDIR's peak usage during each transfer,
    its baseline and what it was right after each."""
    home = tmp_path / "client"
    usage = {"baseline": scratch.used()}
    with timings.phase("upload"), scratch.peak() as peak:
        logged = _client(
            server,
            home,
            "log",
            server.base_url,
            f"large-{tmp_path.name}",
            str(artifact.path),
            ARTIFACT_DIR,
            **env,
        )
    usage["upload_peak"] = peak["peak"]
    usage["after_upload"] = scratch.settle(usage["baseline"])
    with timings.phase("download"), scratch.peak() as peak:
        downloaded = _client(
            server,
            home,
            "download",
            server.base_url,
            logged["run_id"],
            f"{ARTIFACT_DIR}/{ARTIFACT_NAME}",
            str(tmp_path / "download"),
            **env,
        )
    usage["download_peak"] = peak["peak"]
    usage["after_download"] = scratch.settle(usage["baseline"])
    local = Path(downloaded["path"])
    try:
        assert local.stat().st_size == ARTIFACT_BYTES
        with timings.phase("sha256"):
            assert _sha256(local) == artifact.sha256, "the artifact came back different"
    finally:
        local.unlink(missing_ok=True)
    return logged, usage


def _requests(logs: str) -> list[str]:
    """The request lines of uvicorn's access log ("METHOD /path" plus status)."""
    return re.findall(r'"((?:GET|PUT|POST|DELETE|PATCH) [^" ]+) HTTP/[0-9.]+" (\d{3})', logs)


def _mib(value: int) -> str:
    return f"{value / MIB:.1f} MiB"


def _object_key(logged: dict) -> str:
    """The artifact's key in the bucket (--artifacts-destination is s3://<bucket>/artifacts)."""
    run_path = logged["artifact_uri"].removeprefix("mlflow-artifacts:/")
    return f"artifacts/{run_path}/{ARTIFACT_DIR}/{ARTIFACT_NAME}"


def _check_and_drop_object(moto, bucket: str, logged: dict) -> None:
    """The bucket holds the whole artifact; then it is deleted, as moto keeps half a GiB (and its
    parts) per object for the rest of the session otherwise."""
    s3, key = moto.client("s3"), _object_key(logged)
    try:
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == ARTIFACT_BYTES
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def test_presigned_transfers_bypass_the_server_scratch(
    postgres, new_database, moto, test_ca, tmp_path, artifact
):
    timings = Timings()
    server, scratch, bucket = _serve_with_scratch(
        new_database(postgres), moto, test_ca, tmp_path, SCRATCH_BYTES, timings
    )
    try:
        status, body = server.get("/api/3.0/mlflow/server-info", "localhost")
        assert status == 200, body
        info = json.loads(body)
        assert info["multipart_uploads_enabled"] is True, info
        assert info["multipart_downloads_enabled"] is True, info

        logged, usage = _transfer(server, scratch, artifact, tmp_path, timings)
        # The client only ever sees the server's URI, never the bucket.
        assert logged["artifact_uri"].startswith("mlflow-artifacts:/"), logged
        _check_and_drop_object(moto, bucket, logged)

        print(
            f"\npresigned: {timings}; TMPDIR baseline {_mib(usage['baseline'])}, "
            f"peak during upload {_mib(usage['upload_peak'])}, "
            f"during download {_mib(usage['download_peak'])}"
        )
        for phase in ("upload_peak", "download_peak"):
            assert usage[phase] - usage["baseline"] <= IDLE_SLACK_BYTES, (phase, usage)

        seen = {request for request, _ in _requests(server.logs())}
        artifact_url = f"{ARTIFACT_DIR}/{ARTIFACT_NAME}"
        assert any(r.startswith("POST /api/2.0/mlflow-artifacts/mpu/create/") for r in seen)
        assert any(r.startswith("POST /api/2.0/mlflow-artifacts/mpu/complete/") for r in seen)
        assert any(
            r.startswith("GET /api/2.0/mlflow-artifacts/presigned/") and r.endswith(artifact_url)
            for r in seen
        ), seen
        proxied = [
            r
            for r in seen
            if r.startswith(
                (
                    "PUT /api/2.0/mlflow-artifacts/artifacts/",
                    "GET /api/2.0/mlflow-artifacts/artifacts/",
                )
            )
            and r.endswith(artifact_url)
        ]
        assert not proxied, f"the artifact's bytes went through the server: {proxied}"
    finally:
        server.stop()


def test_proxied_transfers_stream_past_a_scratch_smaller_than_the_artifact(
    postgres, new_database, moto, test_ca, tmp_path, artifact
):
    timings = Timings()
    server, scratch, bucket = _serve_with_scratch(
        new_database(postgres), moto, test_ca, tmp_path, SCRATCH_BYTES, timings
    )
    try:
        logged, usage = _transfer(
            server,
            scratch,
            artifact,
            tmp_path,
            timings,
            MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD="false",
            MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD="false",
        )
        _check_and_drop_object(moto, bucket, logged)
        print(
            f"\nproxied: {timings}; TMPDIR baseline {_mib(usage['baseline'])}, "
            f"peak during upload {_mib(usage['upload_peak'])} (then "
            f"{_mib(usage['after_upload'])}), during download "
            f"{_mib(usage['download_peak'])} (then {_mib(usage['after_download'])})"
        )
        # Both streamed, the upload to S3 and the download from it: TMPDIR, 8 times smaller
        # than the artifact, grew by neither (MLflow alone spools each whole).
        for phase in ("upload_peak", "download_peak", "after_upload", "after_download"):
            assert usage[phase] - usage["baseline"] <= IDLE_SLACK_BYTES, (phase, usage)

        requests = _requests(server.logs())
        artifact_url = f"{ARTIFACT_DIR}/{ARTIFACT_NAME}"
        for method in ("PUT", "GET"):
            assert any(
                r.startswith(f"{method} /api/2.0/mlflow-artifacts/artifacts/")
                and r.endswith(artifact_url)
                and status == "200"
                for r, status in requests
            ), (method, requests)
        assert not [r for r, _ in requests if "/mpu/" in r or "/presigned/" in r], requests
    finally:
        server.stop()


STREAMED_BYTES = 96 * MIB  # more than the 64 MiB TMPDIR: a spool of it could not fit
assert STREAMED_BYTES > SCRATCH_BYTES
PART_BYTES = 8 * MIB  # the part size at the default artifact limit (contract.upload_part_mib)
STREAM_MEMORY_MIB = rules.streamed_uploads_mib(1, WorkloadProps().max_proxied_artifact_gib)
"""What the server tree may grow by while it streams an upload: what the chart's memory rule
reserves for one at the default artifact limit (its parts, the guard's message, the threads
sending parts)."""
UPLOAD_EXTRA_ARGS = {"Metadata": {"sent-by": "mlflow-on-eks-test"}}


def _put(server: launcher.Server, path: str, body: bytes, *, send_bytes: int | None = None):
    """PUT `body` to the proxied artifact route with its full Content-Length; with
    `send_bytes`, the client goes away after that much of it. Returns the answer, or None."""
    sock = hostile.connect(server.port)
    try:
        sock.sendall(
            f"PUT {hostile.ARTIFACTS}/{path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        view = memoryview(body)[:send_bytes]
        for start in range(0, len(view), MIB):
            sock.sendall(view[start : start + MIB])
        if send_bytes is not None:
            return None
        return hostile.read_response(sock)
    finally:
        sock.close()


def _open_uploads(s3, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_proxied_uploads_stream_to_s3_in_parts(postgres, new_database, moto, test_ca, tmp_path):
    timings = Timings()
    server, scratch, bucket = _serve_with_scratch(
        new_database(postgres),
        moto,
        test_ca,
        tmp_path,
        SCRATCH_BYTES,
        timings,
        MLFLOW_S3_UPLOAD_EXTRA_ARGS=json.dumps(UPLOAD_EXTRA_ARGS),
    )
    s3 = moto.client("s3")
    try:
        # A small body: one PutObject, with the type MLflow guesses from the name and the
        # extra arguments MLflow's S3 repository sends.
        small = _put(server, "streamed/small/params.json", b'{"a": 1}')
        assert small is not None and small.status == 200, small
        head = s3.head_object(Bucket=bucket, Key="artifacts/streamed/small/params.json")
        assert head["ContentType"] == "application/json", head
        assert head["Metadata"] == UPLOAD_EXTRA_ARGS["Metadata"], head

        # A body larger than TMPDIR, in parts, intact; the server holds a few parts of it.
        block = os.urandom(MIB)  # each MiB led by its index: parts swapped change the digest
        body = b"".join(i.to_bytes(8, "big") + block[8:] for i in range(STREAMED_BYTES // MIB))
        key = "artifacts/streamed/large/model.bin"
        baseline = scratch.used()
        for _ in range(2):  # the first upload warms what the worker loads lazily (boto3's s3)
            with hostile.Watch(server.proc.pid, server.port) as watch, scratch.peak() as peak:
                answer = _put(server, "streamed/large/model.bin", body)
            assert answer is not None and answer.status == 200, (answer, server.logs()[-3000:])
        print(
            f"\nstreamed {_mib(STREAMED_BYTES)}: server tree grew by {watch.growth:.1f} MiB, "
            f"TMPDIR by {_mib(peak['peak'] - baseline)}"
        )
        assert peak["peak"] - baseline <= IDLE_SLACK_BYTES, (peak, baseline)
        assert watch.growth < STREAM_MEMORY_MIB, f"the server grew by {watch.growth:.0f} MiB"
        stored = s3.get_object(Bucket=bucket, Key=key)
        assert stored["Metadata"] == UPLOAD_EXTRA_ARGS["Metadata"], stored
        digest = hashlib.sha256(stored["Body"].read()).hexdigest()
        assert digest == hashlib.sha256(body).hexdigest(), "the artifact arrived different"
        assert not _open_uploads(s3, bucket)

        # A client gone mid-body: the parts sent so far are aborted, no object is made.
        cut = "artifacts/streamed/cut/model.bin"
        _put(server, "streamed/cut/model.bin", body, send_bytes=5 * PART_BYTES // 2)
        deadline = time.monotonic() + 30
        while _open_uploads(s3, bucket) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _open_uploads(s3, bucket), "the cut upload's parts were left in S3"
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=cut).get("Contents", [])
        assert not listed, listed
        assert scratch.settle(baseline) - baseline <= IDLE_SLACK_BYTES

        # A failing S3 (the bucket gone): the client gets an error, not a 200. A body under a
        # part, so the server has read all of it when S3 refuses (a client still sending when
        # the error comes may see its connection closed instead).
        for listed_object in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=listed_object["Key"])
        s3.delete_bucket(Bucket=bucket)
        failed = _put(server, "streamed/failed/model.bin", body[: PART_BYTES // 2])
        assert failed is not None and failed.status is not None and failed.status >= 500, failed
        assert hostile.health(server.port)[0] == 200
    finally:
        server.stop()


@contextmanager
def _s3_cut_after(moto_endpoint: str, response_bytes: int) -> Iterator[str]:
    """An endpoint for S3 that forwards to moto and drops a connection once moto's side has
    sent `response_bytes` on it: S3 failing halfway through sending an object. Yields its
    URL."""
    upstream_port = int(moto_endpoint.rsplit(":", 1)[1])
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener closed: the test is over
            while True:
                client, _ = listener.accept()
                server = socket.create_connection(("127.0.0.1", upstream_port))
                threading.Thread(target=_pipe, args=(client, server), daemon=True).start()
                threading.Thread(
                    target=_pipe, args=(server, client, response_bytes), daemon=True
                ).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_proxied_download_s3_cuts_off_is_an_error_for_the_client(
    postgres, new_database, moto, test_ca, tmp_path
):
    """The streamed download declares the object's length; when S3 stops halfway the client
    gets less than that and a closed connection, an error it sees, not a short file taken for
    whole. The server goes on serving, and a download S3 sends whole arrives intact."""
    cut_at = 4 * MIB
    with _s3_cut_after(moto.endpoint, cut_at) as s3_endpoint:
        server, _scratch, bucket = _serve_with_scratch(
            new_database(postgres),
            moto,
            test_ca,
            tmp_path,
            SCRATCH_BYTES,
            Timings(),
            MLFLOW_S3_ENDPOINT_URL=s3_endpoint,
        )
        s3 = moto.client("s3")
        try:
            large, small = os.urandom(16 * MIB), os.urandom(MIB // 2).hex().encode()
            s3.put_object(Bucket=bucket, Key="artifacts/cut/large.bin", Body=large)
            s3.put_object(Bucket=bucket, Key="artifacts/cut/small.bin", Body=small)
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            connection.request("GET", f"{hostile.ARTIFACTS}/cut/large.bin")
            answer = connection.getresponse()
            assert answer.status == 200, answer.status
            assert answer.getheader("Content-Length") == str(len(large))
            with pytest.raises(http.client.IncompleteRead) as short:
                answer.read()
            assert len(short.value.partial) < len(large)
            assert large.startswith(short.value.partial)
            connection.close()

            assert hostile.health(server.port)[0] == 200
            whole = hostile.request(server.port, "GET", f"{hostile.ARTIFACTS}/cut/small.bin")
            assert whole.status == 200, whole
            assert whole.headers["content-length"] == str(len(small))
            assert whole.body == small.decode()
        finally:
            server.stop()
