"""The pod under hostile and careless traffic: the server started from the synthesized chart
(ConfigMap, `migrate`, `serve`, two workers as the pod runs them) on MariaDB, sign-in on, with
its memory (PSS of the process tree, as the container's cgroup counts it) watched against the
container's limit and /health polled as the probes poll it, while clients without a valid
login, or one careless client, lean on each limit: a large body, many wrong passwords at once,
one source guessing, artifacts over the proxied size and over the pod's transfer count, idle
and dribbling connections, a client that stops reading its download or sending its body.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import itest_hostile as hostile
import itest_launcher as launcher
import itest_otlp
import itest_template as template
import pytest
from itest_auth import create_auth_secrets, memory_limit_mib, new_login, signed_in_pod_env
from itest_chart import pod
from opentelemetry.sdk.trace.export import SpanExportResult

pytestmark = pytest.mark.integration

WORKERS = 2
"""As the pod runs (server.workers' default): the limits are per process."""
SIGN_IN_CHECKS = 2
"""server.concurrent_sign_in_checks' default, per process."""
SCRYPT_MIB = 32
"""What one password check holds (werkzeug's scrypt, n=2**15, r=8: 128 * r * n bytes)."""
ARTIFACT_LIMIT_MIB = 128
"""Small beside the product's limit (GiB). Well above what the loopback socket buffers take of a
download its client does not read (about 3 MiB measured, and uvicorn's 1 MiB message), and what
a worker's memory moves by anyway (up to 30 MiB a download): a server holding such a download
in memory shows."""
UNREAD_MIB = 14
"""A download its client stops reading: past the socket buffers."""
HEADER_TIMEOUT_SECONDS = 3
STALL_SECONDS = 8
"""MLFLOW_CLIENT_STALL_SECONDS: well above the time a test's upload waits on purpose."""
SLOTS_DIRECTORY = "mlflow-transfer-slots"
"""Under TMPDIR: the transfer slots' lock files (the launcher's guard/transfers.py)."""


@dataclass
class Pod:
    server: launcher.Server
    admin: tuple[str, str]
    memory_limit_mib: int
    bucket: str
    moto: object
    home: Path
    experiment_id: str

    @property
    def port(self) -> int:
        return self.server.port

    def pid(self) -> int:
        return self.server.proc.pid

    def watch(self) -> hostile.Watch:
        return hostile.Watch(self.pid(), self.port)


@pytest.fixture(scope="module")
def pod_(mariadb, synth, moto, test_ca, tmp_path_factory) -> Iterator[Pod]:
    chart = synth("default")
    _, (init, main) = pod(chart)
    token = secrets.token_urlsafe(8)
    login = new_login(mariadb, moto, f"db-{token}")
    # ASCII: MLflow's native FastAPI routes (artifacts) decode a Basic login as ASCII only
    # (mlflow/server/auth `_authenticate_fastapi_request`); test_auth.py covers the rest.
    auth = create_auth_secrets(moto, admin_password=f"admin-%'\":@/# -{token}")
    bucket = moto.create_bucket()
    home = tmp_path_factory.mktemp("guard")

    def env(container: dict, **changes: str) -> dict:
        return signed_in_pod_env(
            chart, container, login, auth, moto, test_ca.ca, bucket, home / "pod", **changes
        )

    template.migrate(mariadb, init["args"], env(init))
    server_env = env(
        main,
        MLFLOW_WORKERS=str(WORKERS),
        MLFLOW_MAX_PROXIED_ARTIFACT_MIB=str(ARTIFACT_LIMIT_MIB),
        MLFLOW_CONCURRENT_ARTIFACT_TRANSFERS="1",
        MLFLOW_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT_SECONDS),
        MLFLOW_CLIENT_STALL_SECONDS=str(STALL_SECONDS),
    )
    server = launcher.Server(server_env, home / "server.log")
    try:
        server.wait_healthy(timeout=180)
        created = hostile.request(
            server.port,
            "POST",
            "/api/2.0/mlflow/experiments/create",
            login=auth.admin_login(),
            body=json.dumps({"name": f"guard-{token}"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert created.status == 200, created
        # Each worker's first requests import and cache what MLflow loads lazily (tens of MiB):
        # warm both, so the memory the tests watch is what the traffic costs.
        for _ in range(12):
            warm = hostile.request(server.port, "GET", hostile.SEARCH, login=auth.admin_login())
            assert warm.status == 200, warm
        yield Pod(
            server,
            auth.admin_login(),
            memory_limit_mib(main),
            bucket,
            moto,
            home,
            json.loads(created.body)["experiment_id"],
        )
    finally:
        server.stop()


def _refusal(answer: hostile.Answer) -> str:
    return json.loads(answer.body)["message"]


def test_a_large_body_without_a_login_is_never_held(pod_):
    """On MLflow's own app this POST grew the pod by about 500 MiB (past its 1 GiB limit) before
    MLflow read the missing login; the guard reads 64 MiB at most and holds none of it."""
    with pod_.watch() as watch:
        answer = hostile.request(pod_.port, "POST", hostile.LOG_BATCH, chunked_mib=256)
    assert answer.status in (None, 401), answer  # refused, or cut off while still sending
    assert watch.peak < pod_.memory_limit_mib, watch.peak
    assert watch.growth < 48, f"the pod grew by {watch.growth:.0f} MiB"
    assert not watch.failed_probes(), watch.health

    # A client that sends a body of a few hundred KiB without a login reads why it is refused.
    small = hostile.request(pod_.port, "POST", hostile.LOG_BATCH, body=b"x" * 300_000)
    assert small.status == 401, small
    assert "sign in first" in _refusal(small) and "64 KiB" in _refusal(small)
    assert small.headers["www-authenticate"] == 'Basic realm="mlflow"'


def test_a_signed_in_body_over_the_limit_says_which_limit(pod_):
    for kind in ("declared", "chunked"):
        options = {"body": b"{" + b" " * (17 * hostile.MIB)} if kind == "declared" else {}
        answer = hostile.request(
            pod_.port,
            "POST",
            hostile.LOG_BATCH,
            login=pod_.admin,
            chunked_mib=17 if kind == "chunked" else 0,
            headers={"Content-Type": "application/json"},
            **options,
        )
        assert answer.status == 413, (kind, answer)
        assert "server.max_request_body_mib" in _refusal(answer), answer.body
    # Within the limit, the same route works.
    ok = hostile.request(
        pod_.port,
        "POST",
        "/api/2.0/mlflow/experiments/search",
        login=pod_.admin,
        body=json.dumps({"max_results": 1}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert ok.status == 200, ok


def test_many_wrong_passwords_at_once_stay_within_the_memory_limit(pod_):
    """64 wrong passwords for the admin, each from another address (no throttle applies), half
    to a Flask route and half to a native FastAPI one, where MLflow hashes on the event loop.
    Unguarded: 650 MiB grew to 1.5 GiB, a pod past its limit."""
    paths = [hostile.SEARCH, f"{hostile.ARTIFACTS}/{pod_.experiment_id}/x.txt"]
    with pod_.watch() as watch, ThreadPoolExecutor(64) as pool:
        answers = list(
            pool.map(
                lambda i: hostile.request(
                    pod_.port,
                    "GET",
                    paths[i % 2],
                    login=(pod_.admin[0], f"wrong-{i}"),
                    source=f"127.0.1.{i + 1}",
                ),
                range(64),
            )
        )
    statuses = sorted({a.status for a in answers})
    assert set(statuses) <= {401, 503}, answers
    assert 401 in statuses
    assert watch.peak < pod_.memory_limit_mib, watch.peak
    bound = WORKERS * SIGN_IN_CHECKS * SCRYPT_MIB
    assert watch.growth < bound + 48, f"grew {watch.growth:.0f} MiB; the checks' bound {bound}"
    assert not watch.failed_probes(), watch.health
    # The admin still signs in (from an address that guessed nothing).
    ok = hostile.request(pod_.port, "GET", hostile.SEARCH, login=pod_.admin, source="127.0.2.1")
    assert ok.status == 200, ok


def test_guessing_from_one_address_is_slowed_down_not_the_signed_in(pod_):
    source = "127.0.3.1"
    # Signed in before the guessing starts, a few times so that both workers remember the login
    # (MLflow's sign-in cache is per process).
    for _ in range(6):
        before = hostile.request(pod_.port, "GET", hostile.SEARCH, login=pod_.admin, source=source)
        assert before.status == 200, before
    # A burst sent at once: checks in flight count, so it is held to the limit too.
    with ThreadPoolExecutor(30) as pool:
        answers = list(
            pool.map(
                lambda i: hostile.request(
                    pod_.port,
                    "GET",
                    hostile.SEARCH,
                    login=(pod_.admin[0], f"guess-{i}"),
                    source=source,
                ),
                range(30),  # 10 per minute per process, 2 processes
            )
        )
    statuses = [a.status for a in answers]
    assert statuses.count(429) >= 30 - 2 * 10, statuses
    assert set(statuses) <= {401, 429}, statuses
    throttled = next(a for a in answers if a.status == 429)
    assert int(throttled.headers["retry-after"]) >= 1
    assert "too many failed sign-ins" in _refusal(throttled)
    assert "server.sign_in_failures_per_minute" in _refusal(throttled)
    # Remembered, the login is not checked and so not slowed (where a worker still remembers
    # it); another address is not slowed at all.
    again = [
        hostile.request(pod_.port, "GET", hostile.SEARCH, login=pod_.admin, source=source).status
        for _ in range(6)
    ]
    assert 200 in again, again
    elsewhere = hostile.request(
        pod_.port, "GET", hostile.SEARCH, login=(pod_.admin[0], "x"), source="127.0.3.2"
    )
    assert elsewhere.status == 401, elsewhere


def _upload(pod_: Pod, name: str, **options) -> hostile.Answer:
    return hostile.request(
        pod_.port,
        "PUT",
        f"{hostile.ARTIFACTS}/{pod_.experiment_id}/guard/{name}",
        login=pod_.admin,
        **options,
    )


def _declared_upload(pod_: Pod, name: str, length: int) -> hostile.Answer:
    """An upload's headers, declaring `length`, as curl sends them for a large body: it waits
    for `100 Continue` before it sends any."""
    with hostile.connect(pod_.port) as sock:
        sock.sendall(
            f"PUT {hostile.ARTIFACTS}/{pod_.experiment_id}/guard/{name} HTTP/1.1\r\n"
            f"Host: localhost\r\nAuthorization: {hostile.basic(*pod_.admin)}\r\n"
            f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        return hostile.read_response(sock)


def _spool_files(pod_: Pod) -> list[Path]:
    """What MLflow spools proxied transfers into: files in temporary directories (tempfile's
    `tmp*` names) of the pod's scratch space."""
    return [p for p in (pod_.home / "pod").glob("tmp*/**/*") if p.is_file()]


def test_an_artifact_over_the_proxied_limit_is_refused_and_never_spooled(pod_):
    s3 = pod_.moto.client("s3")
    declared = _declared_upload(pod_, "declared.bin", (ARTIFACT_LIMIT_MIB + 1) * hostile.MIB)
    assert declared.status == 413, declared
    assert "server.max_proxied_artifact_gib" in _refusal(declared)
    assert "presigned multipart" in _refusal(declared)
    with pod_.watch() as watch:
        streamed = _upload(pod_, "streamed.bin", chunked_mib=ARTIFACT_LIMIT_MIB + 8)
    assert streamed.status in (413, None), streamed
    assert not watch.failed_probes()
    within = _upload(pod_, "within.bin", body=b"y" * (3 * hostile.MIB))
    assert within.status == 200, within
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=pod_.bucket).get("Contents", [])]
    assert [k for k in keys if k.endswith("/guard/within.bin")], keys
    assert not [k for k in keys if k.endswith(("declared.bin", "streamed.bin"))], keys
    assert not _spool_files(pod_), _spool_files(pod_)

    # A download of an object larger than the limit (written to S3 by another path).
    key = next(k for k in keys if k.endswith("/guard/within.bin")).replace(
        "within.bin", "large.bin"
    )
    s3.put_object(Bucket=pod_.bucket, Key=key, Body=b"z" * ((ARTIFACT_LIMIT_MIB + 2) * hostile.MIB))
    download = hostile.request(
        pod_.port,
        "GET",
        f"{hostile.ARTIFACTS}/{pod_.experiment_id}/guard/large.bin",
        login=pod_.admin,
    )
    assert download.status == 413, download
    assert "presigned URLs" in _refusal(download)
    small = hostile.request(
        pod_.port,
        "GET",
        f"{hostile.ARTIFACTS}/{pod_.experiment_id}/guard/within.bin",
        login=pod_.admin,
    )
    assert small.status == 200 and len(small.body) == 3 * hostile.MIB, small.status
    # From the launcher's streaming route (s3_download.py): it declares the object's length,
    # where MLflow's (a spooled file, chunked) declares none; with MLflow's other headers.
    assert small.headers["content-length"] == str(3 * hostile.MIB), small.headers
    assert small.headers["x-content-type-options"] == "nosniff"
    assert small.headers["content-disposition"] in (
        "attachment; filename=within.bin",  # MLflow's quoting (handlers.py) leaves a token
        'attachment; filename="within.bin"',
    )
    assert not _spool_files(pod_)


def test_an_upload_mlflow_does_not_authorize_never_reaches_s3(pod_):
    """Proxied uploads stream to S3 as they arrive (the launcher's s3_stream.py); MLflow's
    permission check still comes first: a reader's upload is refused and sends nothing."""
    reader = (f"reader-{secrets.token_hex(4)}", secrets.token_urlsafe(16))
    made = hostile.request(
        pod_.port,
        "POST",
        "/api/2.0/mlflow/users/create",
        login=pod_.admin,
        body=json.dumps({"username": reader[0], "password": reader[1]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert made.status == 200, made
    s3 = pod_.moto.client("s3")
    refused = hostile.request(
        pod_.port,
        "PUT",
        f"{hostile.ARTIFACTS}/{pod_.experiment_id}/guard/unauthorized.bin",
        login=reader,
        body=b"u" * (256 * 1024),  # within the socket buffers: refused unread, no reset
    )
    assert refused.status == 403, refused
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=pod_.bucket).get("Contents", [])]
    assert not [k for k in keys if k.endswith("unauthorized.bin")], keys
    assert not s3.list_multipart_uploads(Bucket=pod_.bucket).get("Uploads"), "parts were sent"
    # The same upload by the admin goes through, streamed.
    allowed = _upload(pod_, "authorized.bin", body=b"u" * (256 * 1024))
    assert allowed.status == 200, allowed
    assert not _spool_files(pod_)


def _slot_held(slot: Path) -> bool:
    """Whether a process holds `slot`'s flock, read from /proc/locks: taking the lock to find
    out, even for an instant, could refuse the very transfer the test waits for. The file is
    made by the first transfer that takes the slot."""
    if not slot.exists():
        return False
    inode = slot.stat().st_ino
    return any(
        line.split()[1] == "FLOCK" and int(line.split()[5].rsplit(":", 1)[1]) == inode
        for line in Path("/proc/locks").read_text().splitlines()
        if len(line.split()) > 5 and line.split()[1] != "->"
    )


def test_a_transfer_past_the_pods_count_gets_503_and_the_first_completes(pod_):
    """One transfer slot (MLFLOW_CONCURRENT_ARTIFACT_TRANSFERS=1): an upload that is still
    sending holds it; a second transfer is told to retry; once the first ends, one goes."""
    path = f"{hostile.ARTIFACTS}/{pod_.experiment_id}/guard/slow.bin"
    slot = pod_.home / "pod" / SLOTS_DIRECTORY / "0"
    assert not _slot_held(slot), "a transfer from an earlier test still holds the slot"
    first = hostile.connect(pod_.port)
    header = (
        f"PUT {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Authorization: {hostile.basic(*pod_.admin)}\r\nContent-Length: {2 * hostile.MIB}\r\n\r\n"
    )
    first.sendall(header.encode() + b"a" * hostile.MIB)
    try:
        # The second starts once the first holds the slot: a second sent sooner may take it
        # first (on a loaded machine the first's password check takes long), and then the
        # first is the one refused.
        _wait_for(
            lambda: _slot_held(slot), 60, "the upload still sending never took the slot", pod_
        )
        second = _upload(pod_, "second.bin", body=b"b" * 1024)
        assert second.status == 503, (second, pod_.server.logs()[-3000:])
        assert int(second.headers["retry-after"]) >= 1
        assert "server.concurrent_artifact_transfers" in _refusal(second)
        first.sendall(b"a" * hostile.MIB)
        assert hostile.read_response(first).status == 200
    finally:
        first.close()
    assert not _slot_held(slot), "the slot is still held after the upload was answered"
    # A client moving files one after another never meets its own previous transfer's slot:
    # the slot is free before the answer can be complete (an empty 200 ends with its headers).
    uploads = [_upload(pod_, f"one-by-one-{i}.bin", body=b"c" * 1024).status for i in range(30)]
    downloads = [
        hostile.request(
            pod_.port,
            "GET",
            f"{hostile.ARTIFACTS}/{pod_.experiment_id}/guard/one-by-one-{i}.bin",
            login=pod_.admin,
        ).status
        for i in range(30)
    ]
    assert set(uploads) == set(downloads) == {200}, (uploads, downloads)


def _get_reading_nothing(pod_: Pod, path: str) -> socket.socket:
    """The admin's GET of `path` on a connection whose client then takes next to nothing: a
    4 KiB receive buffer, never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", pod_.port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: {hostile.basic(*pod_.admin)}\r\n\r\n".encode()
    )
    return sock


def _run_with_artifact(pod_: Pod, name: str, body: bytes) -> tuple[str, str]:
    """A new run of the pod's experiment with `body` logged as its artifact `name` (through the
    proxied artifact API, as the client logs it); the run's ID and the artifact's S3 key."""
    created = hostile.request(
        pod_.port,
        "POST",
        "/api/2.0/mlflow/runs/create",
        login=pod_.admin,
        body=json.dumps({"experiment_id": pod_.experiment_id}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert created.status == 200, created
    run = json.loads(created.body)["run"]["info"]
    root = run["artifact_uri"].split(":", 1)[1].lstrip("/")  # mlflow-artifacts:/<exp>/<run>/...
    put = hostile.request(
        pod_.port, "PUT", f"{hostile.ARTIFACTS}/{root}/{name}", login=pod_.admin, body=body
    )
    assert put.status == 200, put
    s3 = pod_.moto.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=pod_.bucket)["Contents"]]
    return run["run_id"], next(k for k in keys if k.endswith(f"/{run['run_id']}/artifacts/{name}"))


def _ui_download(
    pod_: Pod, run_id: str, name: str, headers: dict[str, str] | None = None
) -> tuple[Any, bytes]:
    """The UI's download of a run's artifact (`http.client`'s response, and its body)."""
    connection = http.client.HTTPConnection("127.0.0.1", pod_.port, timeout=60)
    try:
        connection.request(
            "GET",
            f"/get-artifact?path={name}&run_uuid={run_id}",
            headers={"Authorization": hostile.basic(*pod_.admin), **(headers or {})},
        )
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_the_uis_downloads_stream_from_s3_with_ranges_and_a_stable_etag(pod_):
    """`/get-artifact` (the UI's download) streams from S3 as the artifact API's does: nothing
    in the scratch space, werkzeug's conditional and Range answers as MLflow gives them, and an
    ETag that stays the same for the same object (MLflow's changed with every download)."""
    content = bytes(range(256)) * (3 * 4096 + 1)  # 3 MiB and 256 bytes, each offset telling
    run_id, _ = _run_with_artifact(pod_, "weights.bin", content)
    whole, body = _ui_download(pod_, run_id, "weights.bin")
    assert whole.status == 200 and body == content, (whole.status, len(body))
    assert whole.headers["content-length"] == str(len(content))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-disposition"] == "attachment; filename=weights.bin"
    assert whole.headers["x-content-type-options"] == "nosniff"
    etag = whole.headers["etag"]
    again, _ = _ui_download(pod_, run_id, "weights.bin")
    assert again.headers["etag"] == etag
    unchanged, nothing = _ui_download(pod_, run_id, "weights.bin", {"If-None-Match": etag})
    assert (unchanged.status, nothing) == (304, b"")
    part, piece = _ui_download(pod_, run_id, "weights.bin", {"Range": "bytes=1000000-1000099"})
    assert part.status == 206 and piece == content[1000000:1000100], (part.status, len(piece))
    assert part.headers["content-range"] == f"bytes 1000000-1000099/{len(content)}"
    tail, end = _ui_download(pod_, run_id, "weights.bin", {"Range": "bytes=-300"})
    assert tail.status == 206 and end == content[-300:]
    # A resumed download (If-Range): the rest while the ETag holds, the whole file once it
    # changed. MLflow's ETag changed with every download, so a resume always started over.
    resumed, rest = _ui_download(
        pod_, run_id, "weights.bin", {"Range": "bytes=3000000-", "If-Range": etag}
    )
    assert resumed.status == 206 and rest == content[3000000:], (resumed.status, len(rest))
    stale, again_whole = _ui_download(
        pod_, run_id, "weights.bin", {"Range": "bytes=3000000-", "If-Range": '"another"'}
    )
    assert stale.status == 200 and again_whole == content, (stale.status, len(again_whole))
    beyond, _ = _ui_download(pod_, run_id, "weights.bin", {"Range": f"bytes={len(content)}-"})
    assert beyond.status == 416
    # A directory: MLflow's refusal, without fetching the directory into the scratch space.
    root = f"{hostile.ARTIFACTS}/{pod_.experiment_id}/{run_id}/artifacts"
    for name in ("a.bin", "b.bin"):
        put = hostile.request(pod_.port, "PUT", f"{root}/sub/{name}", login=pod_.admin, body=b"d")
        assert put.status == 200, put
    directory, error = _ui_download(pod_, run_id, "sub")
    assert directory.status == 400 and b"refers to a directory" in error, (directory, error)
    assert not _spool_files(pod_)


def test_a_ui_download_to_a_client_that_reads_slowly_is_not_held_in_memory(pod_):
    """The UI's downloads are MLflow's Flask views, answered through the WSGI bridge, whose
    thread hands the body's chunks to the event loop through a queue (starlette's
    WSGIResponder). Unbounded, the thread read the whole artifact into memory while the client
    took it slowly: a 48 MiB download to a client reading nothing grew the pod by 77 MiB, and a
    2 GiB model to a browser on a slow link would take the pod past its memory limit."""
    size = ARTIFACT_LIMIT_MIB - 4
    run_id, key = _run_with_artifact(pod_, "model.bin", b"")
    # Into S3 by another path: the server's own upload would grow its workers first.
    pod_.moto.client("s3").put_object(Bucket=pod_.bucket, Key=key, Body=b"m" * (size * hostile.MIB))
    slot = pod_.home / "pod" / SLOTS_DIRECTORY / "0"
    with pod_.watch() as watch:
        slow = _get_reading_nothing(pod_, f"/get-artifact?path=model.bin&run_uuid={run_id}")
        try:
            _wait_for(lambda: _slot_held(slot), 60, "the UI download never took the slot", pod_)
            time.sleep(STALL_SECONDS / 2)  # the client reads nothing; the server waits on it
        finally:
            slow.close()
    # Bounded, it grew by 5-29 MiB (more when the worker makes its first S3 client).
    assert watch.growth < size / 2, (
        f"the pod grew by {watch.growth:.0f} MiB while a client took next to none of a "
        f"{size} MiB download"
    )
    assert watch.peak < pod_.memory_limit_mib
    assert not watch.failed_probes(), watch.health
    _wait_for(lambda: not _slot_held(slot), 30, "the UI download keeps the slot", pod_)


def _read_to_end(sock, timeout: float) -> bytes:
    """What the server sent before it closed the connection (EOF or reset)."""
    sock.settimeout(timeout)
    data = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            data += chunk
    return bytes(data)


def test_a_client_that_stops_reading_or_sending_holds_nothing_for_long(pod_):
    """Signed in: a download the client stops reading would hold the pod's transfer slot (here
    its only one), and a body the client stops sending its process's body budget (every other
    body there refused meanwhile), for as long as the connection stays open; no load balancer
    ends one that trickles. Both are let go after MLFLOW_CLIENT_STALL_SECONDS of waiting."""
    logged_before = len(pod_.server.logs())
    size = UNREAD_MIB
    path = f"{hostile.ARTIFACTS}/{pod_.experiment_id}/guard/unread.bin"
    put = _upload(pod_, "unread.bin", body=b"s" * (size * hostile.MIB))
    assert put.status == 200, put
    slot = pod_.home / "pod" / SLOTS_DIRECTORY / "0"
    assert not _slot_held(slot), "a transfer from an earlier test still holds the slot"
    body_sender = hostile.connect(pod_.port)
    unread = _get_reading_nothing(pod_, path)
    try:
        with pod_.watch() as watch:
            _wait_for(lambda: _slot_held(slot), 60, "the download never took the slot", pod_)
            body_sender.sendall(
                "POST /api/2.0/mlflow/runs/log-batch HTTP/1.1\r\nHost: localhost\r\n"
                f"Authorization: {hostile.basic(*pod_.admin)}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {hostile.MIB}\r\n\r\n{{".encode()
            )
            stalled = hostile.read_response(body_sender)
            _wait_for(lambda: not _slot_held(slot), 30, "the unread download keeps the slot", pod_)
            # Let go though the client still reads nothing: closing would wait for it to take
            # what is buffered first (guard/protocol.py's abort).
            client_port = unread.getsockname()[1]
            _wait_for(
                lambda: _server_side(pod_.port, client_port) != ESTABLISHED,
                10,
                "the server still holds the unread download's connection open",
                pod_,
            )
            received = _read_to_end(unread, 30)
        assert stalled.status == 408, stalled
        assert "MLFLOW_CLIENT_STALL_SECONDS" in _refusal(stalled)
        head, _, got = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        # Cut short of the length the answer declared: the client sees an error, not a file.
        assert 0 < len(got) < size * hostile.MIB, len(got)
        assert not watch.failed_probes(), watch.health
        assert watch.peak < pod_.memory_limit_mib
    finally:
        unread.close()
        body_sender.close()
    whole = hostile.request(pod_.port, "GET", path, login=pod_.admin)
    assert whole.status == 200 and len(whole.body) == size * hostile.MIB, whole.status
    logs = pod_.server.logs()[logged_before:]
    assert "stalled taking the answer" in logs and "stalled sending its body" in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]


ESTABLISHED = "01"
"""A TCP state as /proc/net/tcp writes it (include/net/tcp_states.h)."""


def _server_side(server_port: int, client_port: int) -> str | None:
    """The state of the server's end of a loopback connection, from /proc/net/tcp."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[3]
    return None


def _wait_for(condition, timeout: float, failure: str, pod_: Pod) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, (failure, pod_.server.logs()[-3000:])
        time.sleep(0.05)


def test_idle_and_dribbling_connections_are_closed_and_the_pod_keeps_serving(pod_):
    sources = [f"127.0.4.{i}" for i in range(1, 21)]
    with pod_.watch() as watch, hostile.idle_connections(pod_.port, 200, sources) as held:
        # Meanwhile a scrape-like client and the admin are served.
        assert hostile.health(pod_.port)[0] == 200
        ok = hostile.request(pod_.port, "GET", hostile.SEARCH, login=pod_.admin)
        assert ok.status == 200, ok
        left = hostile.still_open(held, HEADER_TIMEOUT_SECONDS + 10)
    assert left == 0, f"{left} of {len(held)} connections still open after the deadline"
    assert not watch.failed_probes(), watch.health
    assert watch.peak < pod_.memory_limit_mib


def test_traces_sent_over_otlp_compressed_are_stored_and_a_bomb_is_not_inflated(pod_):
    """The OTLP endpoint inflates a gzip or deflate body whole (MLflow 3.17.2,
    tracing/utils/otlp.py): 2 MiB of gzip, within the body limit, is 2 GiB inflated, twice
    the pod's memory. The guard inflates within the limit; a real exporter's batch still goes
    in."""
    names = ["agent", "retrieve", "generate"]
    url, experiment = pod_.server.base_url, pod_.experiment_id
    sent, _ = itest_otlp.export_spans(url, experiment, pod_.admin, names)
    assert sent == SpanExportResult.SUCCESS
    refused, _ = itest_otlp.export_spans(url, experiment, (pod_.admin[0], "wrong"), names)
    assert refused == SpanExportResult.FAILURE
    code = (
        "import json, sys\n"
        "from mlflow import MlflowClient\n"
        "traces = MlflowClient(sys.argv[1]).search_traces(locations=[sys.argv[2]])\n"
        "print(json.dumps([sorted(s.name for s in t.data.spans) for t in traces]))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(pod_.home),
        "MLFLOW_TRACKING_USERNAME": pod_.admin[0],
        "MLFLOW_TRACKING_PASSWORD": pod_.admin[1],
    }
    stored = launcher.mlflow_client(env, pod_.server.base_url, pod_.experiment_id, code=code)
    assert sorted(names) in stored, stored

    assert gzip.decompress(hostile.gzip_bomb(3)) == bytes(3 * hostile.MIB)  # the same make
    bomb = hostile.gzip_bomb(2048)
    assert len(bomb) < 8 * hostile.MIB  # within server.max_request_body_mib's default
    with pod_.watch() as watch:
        answer = hostile.request(
            pod_.port,
            "POST",
            "/v1/traces",
            login=pod_.admin,
            body=bomb,
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "gzip",
                "x-mlflow-experiment-id": pod_.experiment_id,
            },
        )
    assert watch.peak < pod_.memory_limit_mib, (watch.peak, answer)
    assert watch.growth < 64, f"the pod grew by {watch.growth:.0f} MiB"
    assert not watch.failed_probes(), watch.health
    assert answer.status == 413, answer
    assert "server.max_request_body_mib" in _refusal(answer)


def test_the_server_still_works_for_a_real_client_after_all_this(pod_, tmp_path):
    """The real MLflow client, signed in, logs and reads back through the guard."""
    code = (
        "import json, sys\n"
        "from mlflow import MlflowClient\n"
        "c = MlflowClient(sys.argv[1])\n"
        "run = c.create_run(sys.argv[2])\n"
        "c.log_param(run.info.run_id, 'p', 'v')\n"
        "print(json.dumps(c.get_run(run.info.run_id).data.params))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_USERNAME": pod_.admin[0],
        "MLFLOW_TRACKING_PASSWORD": pod_.admin[1],
    }
    result = launcher.mlflow_client(env, pod_.server.base_url, pod_.experiment_id, code=code)
    assert result == {"p": "v"}
    assert pod_.server.proc.poll() is None, "the server exited"


def _caught_signals(pid: int) -> set[int]:
    """The signals `pid` has a handler for (SigCgt in /proc/PID/status, bit n-1 for signal n)."""
    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    mask = int(status["SigCgt"], 16)
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


def test_the_workers_are_forked_from_the_supervisor_and_start_as_spawned_ones(pod_):
    """uvicorn_main imports MLflow's server once, in uvicorn's supervisor, and forks the workers
    from it: each worker runs the supervisor's command line (a spawned one would run
    multiprocessing's spawn_main). Each starts as a spawned worker would: of the signals the
    supervisor handles (INT, TERM, HUP, QUIT, TTIN, TTOU, USR1, USR2, WINCH: it queues them for
    its own loop), a worker handles only SIGINT and SIGTERM, with uvicorn's graceful stop."""
    tree = pod_.server.process_tree()  # tini, then what the launcher exec'd: the supervisor
    parent = {
        pid: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] for pid in tree
    }
    [supervisor] = [pid for pid in tree if parent[pid] == str(pod_.pid())]
    command = Path(f"/proc/{supervisor}/cmdline").read_bytes()
    assert b"mlflow_launcher.uvicorn_main" in command, command
    children = [pid for pid in tree if parent[pid] == str(supervisor)]
    workers = [pid for pid in children if Path(f"/proc/{pid}/cmdline").read_bytes() == command]
    assert len(workers) == WORKERS, (children, command)
    queued = {1, 2, 3, 10, 12, 15, 21, 22, 28}  # uvicorn 0.54's supervisor's (glibc's own vary)
    assert queued <= _caught_signals(supervisor)
    for worker in workers:
        assert _caught_signals(worker) & queued == {2, 15}
