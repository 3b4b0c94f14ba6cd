"""SIGTERM while a request is in flight: the request still completes.

Kubernetes sends SIGTERM to the container's PID 1 when a pod terminates, and an IP-target NLB
may still have requests running on that pod. The server (tini as PID 1 of a new PID namespace,
`unshare --pid --fork --mount-proc`, as in test_signals.py) serves a 128 MiB artifact through
its artifact proxy to a client that reads slowly through a small receive buffer, so most of the
body is still on the server's side when SIGTERM arrives. The client must still get all of it
(HTTP 200, same sha256), and the server must then exit 0 within the 30 s shutdown allowance.

A connection opened after SIGTERM is refused: uvicorn closes its listening socket first, then
waits for open requests. The chart's preStop sleep covers the load balancer's deregistration
for that reason: new connections must stop arriving before SIGTERM.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import itest_launcher as launcher
import pytest

pytestmark = pytest.mark.integration

MIB = 1 << 20
BODY_BYTES = 128 * MIB
SIGTERM_AFTER_BYTES = 24 * MIB  # a fifth of the body in: the rest is still to be sent
READ_BYTES_PER_SECOND = 16 * MIB  # about 6 s of body left to send after SIGTERM
RECEIVE_BUFFER_BYTES = 64 * 1024  # the kernel then holds little of the body for the client
SHUTDOWN_SECONDS = 30  # k8s_charts.mlflow_chart.SHUTDOWN_SECONDS: the grace after the drain
ARTIFACT_PATH = "drain/blob.bin"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _body() -> tuple[bytes, str]:
    """Each MiB begins with its index: a dropped, repeated or reordered MiB changes the digest."""
    block = os.urandom(MIB)
    body = b"".join(index.to_bytes(8, "big") + block[8:] for index in range(BODY_BYTES // MIB))
    return body, hashlib.sha256(body).hexdigest()


@dataclass
class SlowDownload:
    """GET through the server's artifact proxy (what clients do that do not use presigned
    URLs), read at a fixed rate through a small socket receive buffer."""

    port: int
    path: str
    received: int = 0
    status: int | None = None
    sha256: str | None = None
    error: BaseException | None = None
    first_byte_at: float | None = None
    done_at: float | None = None
    started: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test thread
            self.error = e
        finally:
            self.done_at = time.monotonic()
            self.started.set()

    def _run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the advertised window stays small from the handshake on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sock.settimeout(60)
        sock.connect(("127.0.0.1", self.port))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.sock = sock
        try:
            conn.request("GET", self.path, headers={"Host": "localhost"})
            response = conn.getresponse()
            self.status = response.status
            digest = hashlib.sha256()
            started = time.monotonic()
            while chunk := response.read(256 * 1024):
                if self.first_byte_at is None:
                    self.first_byte_at = started = time.monotonic()
                    self.started.set()
                digest.update(chunk)
                self.received += len(chunk)
                behind = self.received / READ_BYTES_PER_SECOND - (time.monotonic() - started)
                if behind > 0:
                    time.sleep(behind)
            self.sha256 = digest.hexdigest()
        finally:
            conn.close()


def _new_connection(port: int) -> str:
    """What a client opening a new connection gets: "refused", or the /health status."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return sock.recv(64).split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error: {e}"


@pytest.mark.parametrize("workers", [1, 2])
def test_in_flight_request_completes_after_sigterm(
    postgres, new_database, moto, test_ca, tmp_path, workers
):
    """One worker: uvicorn serves in the supervisor's process. Two (the chart's default): the
    worker serving the download was forked from the supervisor (uvicorn_main), which passes
    SIGTERM on to it."""
    bucket = moto.create_bucket()
    body, expected_sha256 = _body()
    # The server only reads the object: put it straight into the bucket it proxies.
    moto.client("s3").put_object(Bucket=bucket, Key=f"artifacts/{ARTIFACT_PATH}", Body=body)
    del body

    env = launcher.container_env(
        new_database(postgres).contract_env(moto, test_ca.ca, bucket), tmp_path / "home"
    )
    env["MLFLOW_WORKERS"] = str(workers)
    server, init = launcher.serve_as_pid_1(postgres, env, tmp_path / "server.log")
    tree = server.process_tree()

    download = SlowDownload(server.port, f"/api/2.0/mlflow-artifacts/artifacts/{ARTIFACT_PATH}")
    reader = threading.Thread(target=download.run, daemon=True)
    reader.start()
    try:
        assert download.started.wait(120), "no byte of the body within 120 s"
        deadline = time.monotonic() + 60
        while download.received < SIGTERM_AFTER_BYTES and download.done_at is None:
            assert time.monotonic() < deadline, "the download stalled before SIGTERM"
            time.sleep(0.01)
        assert download.error is None, download.error
        assert download.done_at is None, "the body finished before SIGTERM: nothing was tested"
        received_at_sigterm = download.received

        signalled = time.monotonic()
        os.kill(init, signal.SIGTERM)

        # New connections: poll until uvicorn has acted on the signal.
        outcome, outcome_at = _new_connection(server.port), time.monotonic()
        while outcome != "refused" and outcome_at - signalled < 5:
            time.sleep(0.05)
            outcome, outcome_at = _new_connection(server.port), time.monotonic()
        in_flight_at_refusal = download.done_at is None

        reader.join(SHUTDOWN_SECONDS)
        assert not reader.is_alive(), "the in-flight download did not finish"
        assert download.error is None, f"in-flight download failed: {download.error!r}"
        try:
            server.proc.wait(max(0.0, SHUTDOWN_SECONDS - (time.monotonic() - signalled)))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"no exit within {SHUTDOWN_SECONDS} s of SIGTERM:\n{server.logs()}"
            ) from None
        exited = time.monotonic()
    finally:
        if server.proc.poll() is None:
            os.kill(init, signal.SIGKILL)  # PID 1 of the namespace: everything in it goes too
        server.stop(signal.SIGKILL)

    logs = server.logs()
    body_after_sigterm = download.done_at - signalled
    print(
        f"\ndrain: SIGTERM after {received_at_sigterm / MIB:.0f} of {BODY_BYTES / MIB:.0f} MiB "
        f"received; new connection {outcome!r} {outcome_at - signalled:.2f} s after SIGTERM; "
        f"body complete {body_after_sigterm:.1f} s after SIGTERM; server exited "
        f"{exited - signalled:.1f} s after SIGTERM ({exited - download.done_at:.2f} s after "
        "the body)"
    )
    assert download.status == 200
    assert download.received == BODY_BYTES
    assert download.sha256 == expected_sha256, "the body arrived corrupted"
    # The shutdown really waited for the request: most of the body was sent after SIGTERM.
    assert BODY_BYTES - received_at_sigterm > BODY_BYTES // 2
    assert body_after_sigterm > 2, body_after_sigterm
    assert exited >= download.done_at
    assert server.proc.returncode == 0, logs
    assert "Waiting for connections to close" in logs, logs
    assert "Finished server process" in logs, logs
    assert outcome == "refused", f"a new connection after SIGTERM got {outcome!r}"
    assert in_flight_at_refusal, "refusal was only seen after the in-flight request finished"
    assert not [pid for pid in tree if _alive(pid)], "processes outlived the server"
