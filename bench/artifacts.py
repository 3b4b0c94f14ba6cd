"""Large artifacts through our server against boto3 straight to S3, side by side.

    .venv/bin/python bench/artifacts.py [--size-mib 1024] [--repeats 3] [--json out.json]
        [--modes direct presigned proxied] [--variant NAME:VAR=VALUE[,VAR=VALUE...]]...
        [--base REF] [--s3-http]

Brings up what the integration tests use (tests/integration: a test CA, PostgreSQL requiring
TLS, moto's S3 server with test_large_artifacts' ranged-read patch, in a process of its own,
over HTTPS with a certificate from the test CA unless --s3-http),
then runs our server the way the pod does (the image's ENTRYPOINT, the launcher, one uvicorn
worker, `--serve-artifacts` to S3, the ConfigMap's variables: itest_launcher/conftest's
`contract_env`), and moves one artifact of --size-mib MiB each way, in every mode in turn:

* direct: boto3's `upload_file` / `download_file` to the S3 stand-in, with boto3's default
  transfer settings (8 MiB parts, 10 threads): the baseline, what S3 itself allows here;
* presigned: the real MLflow client at its defaults (`MlflowClient.log_artifact` /
  `download_artifacts`). The server advertises multipart transfers in /server-info, so the
  client sends the parts straight to presigned S3 URLs and downloads presigned ranges;
* proxied: the same client with MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD/_DOWNLOAD=false, as
  older clients behave: every byte goes through the server (uploads streamed on to S3 in
  parts, downloads streamed from it: the launcher's s3_stream.py and s3_download.py);
* proxied-base (with --base REF): proxied, through a second server whose launcher is REF's,
  in the same repeats: a change to the server measured against what it changes;
* any --variant NAME:VAR=VALUE,...: the MLflow client with extra settings (e.g. part sizes),
  or, for a NAME starting with "direct", boto3 with extra settings (e.g.
  AWS_REQUEST_CHECKSUM_CALCULATION=when_required: no checksum algorithm on its multipart
  upload, as the MLflow server's presigned one has none).

Every client runs in a process of its own, with the image's Python (.venv-image), and times
only the transfer (not its interpreter start). While each transfer runs, the server's process
tree (tini, the launcher exec'd into `mlflow server`, its uvicorn worker) is sampled every
0.2 s: PSS summed over the tree (bench/server_memory.py) and the disk its TMPDIR (the pod's
scratch space) takes, each peak minus the value just before the transfer, and the CPU seconds
the tree spent. The S3 stand-in's CPU seconds are reported too:
on loopback it, not the network, is usually the limit. Each download is checked against the
artifact's sha256; the server's access log shows which path each transfer took.

For an artifact below MLflow's multipart threshold (500 MiB), the presigned and variant modes
lower MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE to the artifact's size so the same path runs
(the smoke test's 32 MiB). Downloads need nothing: MLflow 3.17's client fetches a file of any
size from mlflow-artifacts by presigned ranges once the server advertises it. Nothing here
asserts a number: it is a measurement. Needs root (PostgreSQL runs as the postgres user, as in
the integration tests).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ITEST = ROOT / "tests" / "integration"
for _path in (ITEST, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import itest_launcher as launcher  # noqa: E402
import test_large_artifacts as large  # noqa: E402
from itest_servers import REGION  # noqa: E402
from server_memory import Sampler, snapshot  # noqa: E402

MIB = 1 << 20
# MLflow's default MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE.
MLFLOW_MULTIPART_MINIMUM = 500 * MIB
SAMPLE_SECONDS = 0.2
WARMUP_MIB = 16
FORCE_PROXY = {
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
}
MODES: dict[str, dict[str, str]] = {"direct": {}, "presigned": {}, "proxied": FORCE_PROXY}
"""Built-in modes: name -> the client's extra environment. A mode whose name starts with
"direct" is boto3 (`_is_direct`); the others are the MLflow client."""
BASE = "-base"
"""The suffix of the mode through the server running another ref's launcher (--base)."""


def _is_direct(name: str) -> bool:
    return name.startswith("direct")


# boto3 straight to the S3 stand-in, in .venv-image's python. Prints one JSON line: the
# transfer's seconds, and the calls and seconds of the multipart steps the MLflow client's
# phases also show (as MLflow's client names them).
DIRECT = r"""
import json, sys, time
import boto3
endpoint, region, bucket, key, src, dst = sys.argv[1:7]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
steps, started = {}, {}
names = {"CreateMultipartUpload": "create_multipart_upload",
         "CompleteMultipartUpload": "complete_multipart_upload"}
for operation, name in names.items():
    s3.meta.events.register(f"before-call.s3.{operation}",
                            lambda name=name, **_: started.__setitem__(name, time.monotonic()))
    s3.meta.events.register(f"after-call.s3.{operation}",
                            lambda name=name, **_: steps.__setitem__(name, {
                                "calls": 1, "s": round(time.monotonic() - started[name], 3)}))
start = time.monotonic()
if dst == "-":
    s3.upload_file(src, bucket, key)
else:
    s3.download_file(bucket, key, dst)
print(json.dumps({"seconds": time.monotonic() - start, "phases": steps}))
"""

# moto's server with test_large_artifacts' ranged-read patch, as the integration tests run it,
# in a process of its own (its CPU time is then its own). Given a certificate and its key, it
# serves HTTPS with them, as S3 does (the same server as ThreadedMotoServer's, with TLS).
# Prints the endpoint, serves until stdin closes.
MOTO = r"""
import contextlib, importlib.util, ssl, sys, threading
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("itest_conftest", sys.argv[1] + "/conftest.py")
conftest = sys.modules["itest_conftest"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conftest)
import test_large_artifacts
ranged = contextlib.contextmanager(test_large_artifacts.moto_reads_only_the_range.__wrapped__)
served = contextlib.contextmanager(conftest.moto.__wrapped__)
if len(sys.argv) > 2:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
    from werkzeug.serving import make_server

    @contextlib.contextmanager
    def served():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
                             threaded=True, request_handler=MotoRequestHandler,
                             ssl_context=context)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield conftest.Moto(f"https://127.0.0.1:{server.server_port}")
        server.shutdown()
with ranged(), served() as moto:
    print(moto.endpoint, flush=True)
    sys.stdin.read()
"""


# Put on the MLflow clients' PYTHONPATH: times the artifact repository's steps (wall seconds
# and calls per method) and writes them, at exit, to the file BENCH_CLIENT_PHASES names. The
# client itself is unchanged: test_large_artifacts.CLIENT, MLflow's own code.
CLIENT_PHASES = r"""
import atexit, functools, json, os, time

PHASES = {}


def _timed(cls, name):
    original = cls.__dict__[name]
    function = original.__func__ if isinstance(original, staticmethod) else original

    @functools.wraps(function)
    def timed(*args, **kwargs):
        start = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            calls, seconds = PHASES.get(name, (0, 0.0))
            PHASES[name] = (calls + 1, seconds + time.monotonic() - start)

    setattr(cls, name, staticmethod(timed) if isinstance(original, staticmethod) else timed)


if os.environ.get("BENCH_CLIENT_PHASES"):
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

    for cls in (HttpArtifactRepository, MlflowArtifactsRepository):
        for name in (
            "log_artifact", "create_multipart_upload", "complete_multipart_upload",
            "_try_multipart_upload", "_upload_part", "_download_file",
            "_get_presigned_download_url", "_multipart_download",
        ):
            if name in cls.__dict__:
                _timed(cls, name)

    @atexit.register
    def _write():
        with open(os.environ["BENCH_CLIENT_PHASES"], "w") as f:
            json.dump({k: {"calls": c, "s": round(s, 3)} for k, (c, s) in PHASES.items()}, f)
"""


def _itest_conftest():
    """tests/integration/conftest.py as a module (under pytest, `conftest` may be another)."""
    name = "itest_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ITEST / "conftest.py")
        assert spec and spec.loader
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


# --- the stand-ins --------------------------------------------------------------------------


@dataclass
class Stack:
    """What the server needs: a test CA, a database server (the integration tests' Postgres or
    MariaDb), and moto (conftest's Moto). `s3_pid`: the process serving S3, if it serves
    nothing else, for its CPU seconds."""

    ca: Any
    db: Any
    moto: Any
    s3_pid: int | None = None


@contextmanager
def local_stack(workdir: Path, *, s3_tls: bool = True) -> Iterator[Stack]:
    """The integration tests' session servers, started here and stopped after; S3 as
    `s3_stand_in` serves it."""
    conftest = _itest_conftest()
    from itest_servers import Postgres, make_test_ca

    with ExitStack() as stack:
        ca = make_test_ca(workdir / "ca")
        db = stack.enter_context(contextmanager(conftest._serve)(Postgres, ca))
        s3, s3_pid = stack.enter_context(s3_stand_in(workdir, ca if s3_tls else None))
        yield Stack(ca, db, s3, s3_pid=s3_pid)


@contextmanager
def s3_stand_in(workdir: Path, tls: Any | None) -> Iterator[tuple[Any, int]]:
    """moto's server in a process of its own: yields conftest's Moto for it and its pid. With
    `tls` (a test CA: itest_servers.TestCa) it serves HTTPS with the CA's server certificate,
    as S3 is reached: botocore then sends a part's body as UNSIGNED-PAYLOAD with a CRC32
    trailer, where over plain HTTP it SHA-256-hashes every byte it sends
    (S3SigV4Auth._should_sha256_sign_payload), a cost S3's users do not pay."""
    certificate = [str(tls.server_cert), str(tls.server_key)] if tls else []
    with (workdir / "moto.log").open("ab") as moto_log:  # its access log
        moto = subprocess.Popen(
            [sys.executable, "-c", MOTO, str(ITEST), *certificate],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=moto_log,
            text=True,
        )
    try:
        endpoint = moto.stdout.readline().strip()  # type: ignore[union-attr]
        if not endpoint.startswith("https://" if tls else "http://"):
            raise RuntimeError(f"moto's server did not start (exit {moto.poll()})")
        yield _itest_conftest().Moto(endpoint, ca_bundle=tls.ca if tls else None), moto.pid
    finally:
        _stop_child(moto)


def _stop_child(child: subprocess.Popen) -> None:
    child.stdin.close()  # type: ignore[union-attr]
    try:
        child.wait(30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


@contextmanager
def our_server(
    stack: Stack,
    workdir: Path,
    server_env: Mapping[str, str] | None = None,
    launcher_src: Path | None = None,
) -> Iterator[tuple[launcher.Server, str]]:
    """Our server as the pod runs it, on a new database and bucket; yields it and the bucket.
    `launcher_src`: another launcher's source, first on the server's PYTHONPATH."""
    target = _itest_conftest().new_database.__wrapped__(stack.moto)(stack.db)
    bucket = stack.moto.create_bucket()
    env = launcher.container_env(
        target.contract_env(stack.moto, stack.ca.ca, bucket, **(server_env or {})),
        workdir / "server-tmp",
    )
    env["MLFLOW_TMP_DIR"] = env["TMPDIR"]  # as image/Dockerfile sets it
    if launcher_src is not None:
        env["PYTHONPATH"] = str(launcher_src)
    migrate = launcher.run(["migrate"], env)
    if migrate.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{migrate.stderr}")
    server = launcher.Server(env, workdir / "server.log")
    try:
        server.wait_healthy(timeout=180)
        yield server, bucket
    finally:
        server.stop()


# --- one transfer ---------------------------------------------------------------------------


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _disk_bytes(folder: Path) -> int:
    """What the files under `folder` take on disk (a spool file as it grows)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a spool file deleted meanwhile
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


@contextmanager
def watched(server_pid: int, s3_pid: int | None, scratch: Path) -> Iterator[dict]:
    """The server tree's PSS growth and its scratch space's (TMPDIR's) growth (peak while the
    block runs minus just before it, sampled every SAMPLE_SECONDS), its CPU seconds, and the
    S3 stand-in's CPU seconds."""
    before = snapshot(server_pid)
    s3_before = _cpu_seconds(s3_pid)
    scratch_before = _disk_bytes(scratch)
    scratch_peak = [scratch_before]
    done = threading.Event()

    def sample_scratch() -> None:
        while not done.wait(SAMPLE_SECONDS):
            scratch_peak[0] = max(scratch_peak[0], _disk_bytes(scratch))

    scratch_thread = threading.Thread(target=sample_scratch, daemon=True)
    scratch_thread.start()
    sampler = Sampler(server_pid, interval=SAMPLE_SECONDS)
    sampler.start()
    result: dict = {}
    try:
        yield result
    finally:
        peak = sampler.stop()
        done.set()
        scratch_thread.join()
        after = snapshot(server_pid)
        result.update(
            scratch_growth_mib=round((scratch_peak[0] - scratch_before) / MIB, 1),
            pss_before_mib=before["pss_total_mib"],
            pss_peak_mib=peak["pss_total_mib"],
            pss_growth_mib=round(peak["pss_total_mib"] - before["pss_total_mib"], 1),
            pss_after_mib=after["pss_total_mib"],
            samples=peak["samples"],
            server_cpu_s=round(_tree_cpu(after) - _tree_cpu(before), 2),
            s3_cpu_s=round(_cpu_seconds(s3_pid) - s3_before, 2) if s3_pid else None,
        )


def _tree_cpu(snap: dict) -> float:
    return sum(p["cpu_s"] for p in snap["processes"])


def _direct(
    stack: Stack, bucket: str, key: str, src: Path, dst: Path | None, home: Path, extra: Mapping
) -> float:
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **extra,
        "PATH": f"{launcher.image_venv() / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    if stack.moto.ca_bundle:
        env["AWS_CA_BUNDLE"] = str(stack.moto.ca_bundle)
    args = (stack.moto.endpoint, REGION, bucket, key, str(src), str(dst) if dst else "-")
    result = launcher.image_python("-c", DIRECT, *args, env=env, timeout=900)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _paths(log: str) -> dict[str, int]:
    """Which way the artifact went, from the server's access log of one transfer."""
    counts = {"mpu": 0, "presigned": 0, "proxied_put": 0, "proxied_get": 0}
    for request, _status in large._requests(log):
        if "/mlflow-artifacts/mpu/" in request:
            counts["mpu"] += 1
        elif "/mlflow-artifacts/presigned/" in request:
            counts["presigned"] += 1
        elif request.endswith(f"{large.ARTIFACT_DIR}/{large.ARTIFACT_NAME}"):
            counts["proxied_put" if request.startswith("PUT") else "proxied_get"] += 1
    return counts


def _one_round(
    mode: str,
    client_env: Mapping[str, str],
    stack: Stack,
    server: launcher.Server,
    bucket: str,
    artifact: Path,
    workdir: Path,
) -> dict:
    """Upload, then download, the artifact once in `mode` (boto3 or the MLflow client, with
    `client_env`); the object is deleted after."""
    size_mib = artifact.stat().st_size / MIB
    home, out = workdir / f"client-{mode}", workdir / f"download-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    server_pid = server.proc.pid
    scratch = Path(server.env["TMPDIR"])
    result: dict = {}
    log_start = len(server.logs())
    if _is_direct(mode):
        key = f"direct/{secrets.token_hex(4)}/{large.ARTIFACT_NAME}"
        with watched(server_pid, stack.s3_pid, scratch) as up:
            sent = _direct(stack, bucket, key, artifact, None, home, client_env)
        local = out / large.ARTIFACT_NAME
        with watched(server_pid, stack.s3_pid, scratch) as down:
            got = _direct(stack, bucket, key, artifact, local, home, client_env)
        up_s, down_s = sent["seconds"], got["seconds"]
        result["client_phases"] = {"up": sent["phases"], "down": got["phases"]}
    else:
        site = workdir / "client-site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(CLIENT_PHASES)
        phases = {d: workdir / f"phases-{d}.json" for d in ("up", "down")}
        env = {**client_env, "PYTHONPATH": str(site)}
        if stack.moto.ca_bundle:  # the presigned URLs' stand-in (requests, not boto3)
            env["REQUESTS_CA_BUNDLE"] = str(stack.moto.ca_bundle)
        with watched(server_pid, stack.s3_pid, scratch) as up:
            logged = large._client(
                server, home, "log", server.base_url, f"bench-{secrets.token_hex(6)}",
                str(artifact), large.ARTIFACT_DIR, BENCH_CLIENT_PHASES=str(phases["up"]), **env,
            )  # fmt: skip
        up_s = logged["seconds"]
        key = large._object_key(logged)
        with watched(server_pid, stack.s3_pid, scratch) as down:
            got = large._client(
                server, home, "download", server.base_url, logged["run_id"],
                f"{large.ARTIFACT_DIR}/{large.ARTIFACT_NAME}", str(out),
                BENCH_CLIENT_PHASES=str(phases["down"]), **env,
            )  # fmt: skip
        down_s = got["seconds"]
        local = Path(got["path"])
        result["client_phases"] = {d: json.loads(f.read_text()) for d, f in phases.items()}
    result["paths"] = _paths(server.logs()[log_start:])
    try:
        result["sha256"] = large._sha256(local)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        stack.moto.client("s3").delete_object(Bucket=bucket, Key=key)
    result.update(
        up_s=round(up_s, 2),
        down_s=round(down_s, 2),
        up_mib_s=round(size_mib / up_s, 1),
        down_mib_s=round(size_mib / down_s, 1),
        server={"up": up, "down": down},
    )
    return result


# --- the measurement ------------------------------------------------------------------------


def write_artifact(path: Path, size_mib: int) -> str:
    """test_large_artifacts' content: every MiB starts with its own index (parts swapped or
    dropped change the digest), the rest is one random block. Returns the sha256."""
    block, digest = os.urandom(MIB), hashlib.sha256()
    with path.open("wb") as f:
        for index in range(size_mib):
            chunk = index.to_bytes(8, "big") + block[8:]
            f.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def _sized(plan: dict[str, dict[str, str]], size_mib: int) -> dict[str, dict[str, str]]:
    """For an artifact below MLflow's multipart threshold, the presigned modes (all but direct
    and proxied) get the threshold lowered to its size: they take a large artifact's path."""
    if size_mib * MIB >= MLFLOW_MULTIPART_MINIMUM:
        return plan
    lowered = {
        "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(size_mib * MIB),
    }
    return {
        name: env if _is_direct(name) or name.startswith("proxied") else lowered | env
        for name, env in plan.items()
    }


def measure_artifacts(
    size_mib: int = 1024,
    repeats: int = 3,
    *,
    modes: Sequence[str] = tuple(MODES),
    variants: Mapping[str, Mapping[str, str]] | None = None,
    server_env: Mapping[str, str] | None = None,
    stack: Stack | None = None,
    workdir: Path | str | None = None,
    warmup: bool = True,
    s3_tls: bool = True,
    base: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Moves one artifact of `size_mib` MiB up and down `repeats` times in every mode.

    `modes`: any of "direct" (boto3 to S3: the baseline), "presigned" (the MLflow client's
    defaults) and "proxied" (the client forced through the server). `variants`: more modes,
    name -> extra client environment: boto3 for a name starting with "direct", else the MLflow
    client. `warmup`: first move a 16 MiB artifact once in every mode, reported apart.
    `server_env`: extra variables for the server's ConfigMap. `stack`: running stand-ins to
    use (else started here and stopped after; `s3_tls`: its S3 over HTTPS, local_stack).
    `base`: a git ref; a second server runs that ref's launcher (profile_server.base_launcher)
    and the mode "proxied-base" goes through it, in the same repeats as "proxied".
    `workdir`: where the artifact, the server's
    TMPDIR and the downloads go (else a temporary folder, removed after). Within a repeat the
    modes run one after the other, so machine noise hits them alike.

    Returns a dict (all sizes MiB, speeds MiB/s, times s)::

        {"size_mib", "repeats", "s3_endpoint_scheme", "sha256", "client_threads", "machine",
         "warmup": {name: the warm-up run, as in "runs" below},
         "modes": {name: {
             "client_env": the client's extra environment,
             "up_mib_s", "down_mib_s": medians over the repeats,
             "ratio_up", "ratio_down": median of each repeat's speed / direct's in that
                 repeat (None without "direct"),
             "server_pss_growth_mib": {"up", "down", "max"}: largest over the repeats,
             "server_scratch_growth_mib": {"up", "down"}: the server's TMPDIR, largest over
                 the repeats,
             "server_cpu_s": {"up", "down"}: medians,
             "s3_cpu_s": {"up", "down"}: medians (None if the S3 process is shared),
             "upload_complete_s": median seconds of the upload's CompleteMultipartUpload
                 (through the server for the MLflow client; None without multipart),
             "up_mib_s_before_complete": median upload speed without that completion,
             "sha256_ok": every download came back identical,
             "paths": the server's artifact requests in the last repeat (mpu, presigned,
                 proxied_put, proxied_get),
             "runs": [per repeat: up_s, down_s, up_mib_s, down_mib_s, sha256, paths,
                 server: {up, down: pss_before/peak/growth/after_mib, scratch_growth_mib,
                 samples, server_cpu_s, s3_cpu_s}, client_phases: {up, down: {MLflow client
                 method (boto3: its multipart create and complete, under the same names):
                 {calls, s}}}]}}}
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown modes {unknown}: choose from {list(MODES)}")
    plan = {m: dict(MODES[m]) for m in modes} | {k: dict(v) for k, v in (variants or {}).items()}
    with ExitStack() as cleanup:
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="bench-artifacts-"))
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if stack is None:
            stack = cleanup.enter_context(local_stack(workdir / "stack", s3_tls=s3_tls))
        servers = {"": cleanup.enter_context(our_server(stack, workdir / "server", server_env))}
        if base is not None:
            from profile_server import base_launcher

            source = base_launcher(base, workdir / "base-launcher")
            servers[BASE] = cleanup.enter_context(
                our_server(stack, workdir / "base-server", server_env, source)
            )
            plan[f"proxied{BASE}"] = dict(FORCE_PROXY)

        def through(name: str) -> tuple[launcher.Server, str]:
            return servers[BASE if name.endswith(BASE) else ""]

        # One small transfer in every mode first: what the server (and moto) load or allocate
        # once, on their first transfer, is reported here and kept out of the repeats.
        warmups: dict[str, dict] = {}
        for name, env in _sized(plan, WARMUP_MIB).items() if warmup else ():
            artifact = workdir / "warmup" / large.ARTIFACT_NAME
            artifact.parent.mkdir(parents=True, exist_ok=True)
            digest = write_artifact(artifact, WARMUP_MIB)
            warmups[name] = _one_round(name, env, stack, *through(name), artifact, workdir / "x")
            warmups[name]["repeat"] = "warm-up"
            log(_line(name, warmups[name], digest))
            artifact.unlink()
        artifact = workdir / large.ARTIFACT_NAME
        cleanup.callback(artifact.unlink, missing_ok=True)
        started = time.monotonic()
        expected = write_artifact(artifact, size_mib)
        log(f"artifact: {size_mib} MiB written in {time.monotonic() - started:.1f} s")
        plan = _sized(plan, size_mib)
        runs: dict[str, list[dict]] = {name: [] for name in plan}
        for repeat in range(repeats):
            for name, env in plan.items():
                run = _one_round(name, env, stack, *through(name), artifact, workdir / "x")
                run["repeat"] = repeat
                runs[name].append(run)
                log(_line(name, run, expected))
    return {
        "size_mib": size_mib,
        "repeats": repeats,
        "s3_endpoint_scheme": stack.moto.endpoint.split(":", 1)[0],
        "sha256": expected,
        "client_threads": min(2 * (os.cpu_count() or 10), 20),
        "machine": _environment(),
        "warmup": warmups,
        "modes": {name: _summary(env, runs[name], runs.get("direct"), expected)
                  for name, env in plan.items()},
    }  # fmt: skip


def _summary(env: dict, runs: list[dict], direct: list[dict] | None, expected: str) -> dict:
    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(statistics.median(present), 2) if present else None

    def ratio(key: str) -> float | None:
        if not direct:
            return None
        return median([r[key] / d[key] for r, d in zip(runs, direct, strict=True)])

    growth = {d: max(r["server"][d]["pss_growth_mib"] for r in runs) for d in ("up", "down")}
    scratch = {d: max(r["server"][d]["scratch_growth_mib"] for r in runs) for d in ("up", "down")}
    return {
        "client_env": env,
        "up_mib_s": median([r["up_mib_s"] for r in runs]),
        "down_mib_s": median([r["down_mib_s"] for r in runs]),
        "ratio_up": ratio("up_mib_s"),
        "ratio_down": ratio("down_mib_s"),
        "server_pss_growth_mib": {**growth, "max": max(growth.values())},
        "server_scratch_growth_mib": scratch,
        "server_cpu_s": {d: median([r["server"][d]["server_cpu_s"] for r in runs])
                         for d in ("up", "down")},
        "s3_cpu_s": {d: median([r["server"][d]["s3_cpu_s"] for r in runs])
                     for d in ("up", "down")},
        "upload_complete_s": median([_complete_s(r) for r in runs]),
        "up_mib_s_before_complete": median([_before_complete(r) for r in runs]),
        "sha256_ok": all(r["sha256"] == expected for r in runs),
        "paths": runs[-1]["paths"],
        "runs": runs,
    }  # fmt: skip


def _complete_s(run: dict) -> float | None:
    """How long the S3 multipart upload's completion took, seen by the client."""
    step = run.get("client_phases", {}).get("up", {}).get("complete_multipart_upload")
    return step["s"] if step else None


def _before_complete(run: dict) -> float | None:
    """The upload's speed up to its CompleteMultipartUpload (the parts, and the create)."""
    complete = _complete_s(run)
    if complete is None:
        return None
    return round(run["up_mib_s"] * run["up_s"] / (run["up_s"] - complete), 1)


def _line(name: str, run: dict, expected: str) -> str:
    up, down = run["server"]["up"], run["server"]["down"]
    return (
        f"  [{run['repeat']}] {name:12} up {run['up_mib_s']:7.1f} MiB/s  down "
        f"{run['down_mib_s']:7.1f} MiB/s  server PSS +{up['pss_growth_mib']:.1f}/"
        f"+{down['pss_growth_mib']:.1f} MiB  scratch +{up['scratch_growth_mib']:.1f}/"
        f"+{down['scratch_growth_mib']:.1f} MiB  CPU {up['server_cpu_s']:.1f}/"
        f"{down['server_cpu_s']:.1f} s  S3 CPU {up['s3_cpu_s']}/{down['s3_cpu_s']} s  "
        f"complete {_complete_s(run)} s  "
        f"{'sha256 ok' if run['sha256'] == expected else 'SHA256 DIFFERS'}  {run['paths']}"
    )


def _environment() -> dict:
    mlflow = launcher.image_python("-c", "import mlflow; print(mlflow.__version__)")
    return {
        "mlflow": mlflow.stdout.strip(),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_table(report: dict) -> None:
    print(
        f"\n{report['size_mib']} MiB, median of {report['repeats']}; S3 stand-in over "
        f"{report['s3_endpoint_scheme']}; MLflow client threads {report['client_threads']}\n"
        "| mode | up MiB/s | down MiB/s | up / direct | down / direct | server PSS growth "
        "up / down (MiB) | server scratch growth up / down (MiB) | server CPU up / down (s) | "
        "S3 CPU up / down (s) | upload's "
        "complete (s) | up MiB/s before complete | sha256 |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for name, m in report["modes"].items():
        g, c, s = m["server_pss_growth_mib"], m["server_cpu_s"], m["s3_cpu_s"]
        t = m["server_scratch_growth_mib"]
        print(
            f"| {name} | {m['up_mib_s']} | {m['down_mib_s']} | {m['ratio_up']} | "
            f"{m['ratio_down']} | {g['up']} / {g['down']} | {t['up']} / {t['down']} | "
            f"{c['up']} / {c['down']} | "
            f"{s['up']} / {s['down']} | {m['upload_complete_s']} | "
            f"{m['up_mib_s_before_complete']} | "
            f"{'ok' if m['sha256_ok'] else 'DIFFERS'} |"
        )


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, settings = text.partition(":")
    env = dict(item.split("=", 1) for item in settings.split(",") if item)
    if not name or name in MODES:
        raise argparse.ArgumentTypeError(f"a variant needs a new name: {text}")
    return name, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument(
        "--variant", type=_variant, action="append", default=[],
        help="an extra MLflow client mode, e.g. up100:MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE=104857600",
    )  # fmt: skip
    parser.add_argument(
        "--server-env", type=lambda s: s.split("=", 1), action="append", default=[],
        help="an extra server (ConfigMap) variable, VAR=VALUE",
    )  # fmt: skip
    parser.add_argument(
        "--s3-http", action="store_true",
        help="the S3 stand-in over plain HTTP (botocore then hashes every byte it sends)",
    )  # fmt: skip
    parser.add_argument(
        "--base", help="a git ref: also proxy through a server with that ref's launcher"
    )
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder, removed")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args()
    report = measure_artifacts(
        args.size_mib,
        args.repeats,
        modes=args.modes,
        variants=dict(args.variant),
        server_env=dict(args.server_env),
        workdir=args.workdir,
        s3_tls=not args.s3_http,
        base=args.base,
    )
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
