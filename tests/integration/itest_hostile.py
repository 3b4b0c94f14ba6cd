"""What a neighbour without a login, or one careless client, can send a server pod, and how to
watch the pod meanwhile: raw HTTP/1.1 on sockets (no client library that would stop early,
retry or add headers), from chosen loopback source addresses (127.0.0.0/8 is all local on
Linux, so each stands for another host), with the process tree's PSS sampled and /health
polled as the kubelet's probes would.

Shared by tests/integration/test_guard.py (assertions) and bench/hostile.py (figures).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
PROBE_TIMEOUT_SECONDS = 5.0
"""The server container's liveness and readiness probes' timeoutSeconds (k8s_charts)."""
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


# ---------------------------------------------------------------- memory ---------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(parent, []).append(int(stat.parent.name))
    return tree


def tree_pss_mib(root: int) -> float:
    """PSS of `root` and its descendants: each resident page counted once, as the container's
    memory cgroup charges it (summed RSS would count shared pages once per process)."""
    tree, todo, total = _children(), [root], 0
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total / 1024


class Watch(threading.Thread):
    """Samples the tree's PSS and polls /health (a new connection each time, as a probe does)
    until stopped; keeps the peak, the /health answers and their latencies."""

    def __init__(self, root: int, port: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.port, self.interval = root, port, interval
        self.before = tree_pss_mib(root)
        self.peak = self.before
        self.health: list[tuple[int | None, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, tree_pss_mib(self.root))
            self.health.append(health(self.port))
            self._done.wait(self.interval)

    def __enter__(self) -> Watch:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self.join()
        self.peak = max(self.peak, tree_pss_mib(self.root))

    @property
    def growth(self) -> float:
        return self.peak - self.before

    @property
    def slowest_health(self) -> float:
        return max((seconds for _, seconds in self.health), default=0.0)

    def failed_probes(self) -> list[tuple[int | None, float]]:
        """/health polls a probe would have failed: not 200 within its timeout."""
        return [(s, t) for s, t in self.health if s != 200 or t > PROBE_TIMEOUT_SECONDS]


def health(port: int) -> tuple[int | None, float]:
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_SECONDS) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            status = read_response(s).status
    except OSError:
        status = None
    return status, time.monotonic() - start


# ---------------------------------------------------------------- raw HTTP -------------------


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str | None = None
    """Why there was no answer (connection reset, timeout), if there was none."""


def read_response(sock: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        return Answer(None, error=f"no HTTP answer: {data[:80]!r}")
    headers = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:])
    )
    status = int(lines[0].split()[1])
    if headers.get("transfer-encoding") == "chunked":  # requests say Connection: close
        while chunk := sock.recv(65536):
            rest += chunk
        return Answer(status, headers, _dechunk(rest).decode(errors="replace"))
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(status, headers, rest[:length].decode(errors="replace"))


def _dechunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2 :]
    return body


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def connect(port: int, source: str = "127.0.0.1", timeout: float = 120) -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    )
    return sock


def request(
    port: int,
    method: str,
    path: str,
    *,
    login: tuple[str, str] | None = None,
    body: bytes = b"",
    chunked_mib: int = 0,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request on a connection of its own. `chunked_mib`: a body of that many MiB sent in
    1 MiB chunks without a length, as a client streaming a generated body does, sent whole
    whatever the server answers meanwhile (a careless or hostile client does not listen)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if login is not None:
        lines.append(f"Authorization: {basic(*login)}")
    if chunked_mib:
        lines.append("Transfer-Encoding: chunked")
    elif body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    try:
        with connect(port, source) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            if chunked_mib:
                chunk = b"x" * MIB
                for _ in range(chunked_mib):
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            elif body:
                sock.sendall(body)
            return read_response(sock)
    except OSError as error:
        return Answer(None, error=repr(error))


def gzip_bomb(inflated_mib: int) -> bytes:
    """A gzip body that inflates to `inflated_mib` MiB of zeros (about 1 KiB a MiB), made
    without deflating them: one MiB of zeros deflated up to a full flush (which ends on a byte
    boundary and leaves nothing for what follows to refer back to) is a piece that repeats, then
    an empty final block and the trailer. gzip.compress of 2 GiB of zeros took 6-16 s of CPU
    and 2 GiB of memory; this takes 0.5 s."""
    zeros = bytes(MIB)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(inflated_mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00" + bytes(4) + b"\x02\xff"  # deflate, no name, mtime 0, OS unknown
    trailer = struct.pack("<II", crc, (inflated_mib * MIB) & 0xFFFFFFFF)
    return header + piece * inflated_mib + last + trailer


@contextlib.contextmanager
def idle_connections(port: int, count: int, sources: list[str] | None = None) -> Iterator[list]:
    """`count` connections that send nothing, and one that dribbles a request line a byte at a
    time (slowloris); yields the sockets (the dribbler last)."""
    sources = sources or ["127.0.0.1"]
    sockets = [connect(port, sources[i % len(sources)], timeout=5) for i in range(count)]
    dribbler = connect(port, timeout=5)
    stop = threading.Event()

    def dribble() -> None:
        for byte in b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ":
            if stop.wait(0.5):
                return
            with contextlib.suppress(OSError):
                dribbler.send(bytes([byte]))

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    try:
        yield [*sockets, dribbler]
    finally:
        stop.set()
        thread.join()
        for sock in [*sockets, dribbler]:
            sock.close()


def still_open(sockets: list[socket.socket], wait: float) -> int:
    """How many of `sockets` the server has not closed (EOF or reset) within `wait` seconds."""
    import selectors

    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + wait
    open_ = len(sockets)
    while open_ and (remaining := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(remaining):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(key.fileobj)
                open_ -= 1
    selector.close()
    return open_
