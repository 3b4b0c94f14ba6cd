"""The deploy check as its Job runs it: the synthesized Job's container (args and env), the
image's entrypoint, and the names it checks resolved to loopback for that process only.

Names: the Job checks the in-cluster Service name and the internal NLB's DNS name. A
`sitecustomize.py` on the verify process's PYTHONPATH maps exactly those two names to one
loopback address; every other name resolves as usual (moto, the database). Servers listen on
port 80 of their own loopback address (127.0.0.x), so Host and Origin carry no port, as behind
the Service and the NLB's listener, and several servers can run at once.

CloudFormation: a local receiver stands in for the wait condition handle's presigned URL and
records each request as it arrived (method, headers, body).

Kubernetes: the Job first waits for the server's rollout through the API; a local fake of the
API server (tests/fake_kubernetes.py) serves the synthesized Deployment, rolled out, with the
image the Job expects made local only where the Deployment's own image is that same one.
"""

from __future__ import annotations

import copy
import http.server
import json
import secrets
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import itest_launcher as launcher
from itest_auth import create_auth_secrets
from itest_browser import NLB_HOST
from itest_chart import PLACEHOLDER, container_env, pod, resolve_pseudo_parameters
from itest_servers import REGION, _pipe, free_port, shut_down

from tests.fake_kubernetes import FakeKubernetes, State, condition, fake_kubernetes

INTERNAL_HOST = "mlflow.mlflow.svc.cluster.local"
INTERNAL_URL = f"http://{INTERNAL_HOST}"
NLB_URL = f"http://{NLB_HOST}"
TARGETS_ENV = "MLFLOW_VERIFY_TARGETS"
SIGNAL_URL_ENV = "MLFLOW_VERIFY_SIGNAL_URL"
IMAGE_ENV = "MLFLOW_VERIFY_IMAGE"
LOCAL_IMAGE = "mlflow-on-eks-itest:local"
LOGS_COMMAND_ENV = "MLFLOW_VERIFY_LOGS_COMMAND"
ADMIN_SECRET_ENV = "MLFLOW_AUTH_ADMIN_SECRET_ID"

# Shaped like a wait condition handle's presigned S3 URL; the signature is the capability.
SIGNATURE = secrets.token_hex(32)
PRESIGNED_PATH = (
    "/arn%3Aaws%3Acloudformation%3Aeu-west-1%3A111122223333%3Astack/mlflow-server/"
    "0a1b2c3d-4e5f/TrackingServerDeployCheckSignal"
)
PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T000000Z&X-Amz-SignedHeaders=host"
    "&X-Amz-Expires=86399&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Feu-west-1%2Fs3%2Faws4_request"
    f"&X-Amz-Signature={SIGNATURE}"
)

_SITECUSTOMIZE = '''\
"""Test harness only: {names} resolve to {address}; every other name as usual."""
import socket

_names, _address = {names!r}, {address!r}
_getaddrinfo = socket.getaddrinfo


def _mapped(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    return _getaddrinfo(_address if name in _names else host, *args, **kwargs)


socket.getaddrinfo = _mapped
'''


def resolver(directory: Path, address: str) -> Path:
    """A directory for PYTHONPATH whose sitecustomize maps the checked names to `address`."""
    directory.mkdir(parents=True, exist_ok=True)
    text = _SITECUSTOMIZE.format(names=(INTERNAL_HOST, NLB_HOST), address=address)
    (directory / "sitecustomize.py").write_text(text)
    return directory


# ---------------------------------------------------------------- the Job --------------------


def verify_job(synth) -> dict:
    jobs = [
        job
        for job in synth.objects("Job")
        if any(c.get("args") == ["verify"] for c in job["spec"]["template"]["spec"]["containers"])
    ]
    assert len(jobs) == 1, f"expected one Job running `verify`, found {len(jobs)}"
    return jobs[0]


def _job_image(synth) -> str:
    [container] = verify_job(synth)["spec"]["template"]["spec"]["containers"]
    return container_env(synth, container)[IMAGE_ENV]


def rolled_out(synth) -> dict:
    """The synthesized server Deployment as the API serves it once rolled out: the pod template
    as applied (each image the Job's environment names made LOCAL_IMAGE, as verify_env makes
    the Job's own), every replica updated and available."""
    deployment = copy.deepcopy(pod(synth)[0])
    spec = deployment["spec"]["template"]["spec"]
    for container in [*spec["initContainers"], *spec["containers"]]:
        if container["image"] == _job_image(synth):
            container["image"] = LOCAL_IMAGE
    replicas = synth.object("HorizontalPodAutoscaler")["spec"]["minReplicas"]
    deployment["metadata"] |= {"generation": 2, "uid": "itest", "resourceVersion": "1"}
    deployment["spec"]["replicas"] = replicas
    deployment["status"] = {
        "observedGeneration": 2,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            condition("Available", "True", "MinimumReplicasAvailable", "minimum availability"),
            condition("Progressing", "True", "NewReplicaSetAvailable", "has progressed"),
        ],
    }
    return deployment


@contextmanager
def kubernetes_api(synth, directory: Path) -> Iterator[FakeKubernetes]:
    """The API server the Job asks about the rollout, the server's rollout complete."""
    with fake_kubernetes([State(rolled_out(synth))], directory) as fake:
        yield fake


def verify_env(
    synth,
    signal_url: str,
    admin_secret_id: str | None = None,
    kubernetes: FakeKubernetes | None = None,
    targets: tuple[str, ...] = (INTERNAL_URL, NLB_URL),
) -> dict[str, str]:
    """The Job container's environment as Kubernetes would set it, deploy-time values made
    local: the internal load balancer's name is NLB_HOST, the signal URL the receiver's, the
    admin login's secret (with authentication on) `admin_secret_id`, the image LOCAL_IMAGE,
    the API server `kubernetes` (its address, token and CA, as the kubelet provides them).
    `targets`: what the Job must check (plain HTTP to the load balancer by default)."""
    [container] = verify_job(synth)["spec"]["template"]["spec"]["containers"]
    env = {k: resolve_pseudo_parameters(v) for k, v in container_env(synth, container).items()}
    assert kubernetes is not None, "the Job waits for the rollout first: pass the API server"
    env[IMAGE_ENV] = LOCAL_IMAGE
    env |= kubernetes.env()
    # The NLB's name is read back at deploy time; resolve_pseudo_parameters made it NLB_HOST.
    assert env[TARGETS_ENV] == ",".join(targets), env[TARGETS_ENV]
    assert PLACEHOLDER.fullmatch(env[SIGNAL_URL_ENV]), env[SIGNAL_URL_ENV]
    env[SIGNAL_URL_ENV] = signal_url
    if ADMIN_SECRET_ENV in env:
        assert PLACEHOLDER.fullmatch(env[ADMIN_SECRET_ENV]), env[ADMIN_SECRET_ENV]
        assert admin_secret_id, "the Job signs in with the admin secret: give its local ARN"
        env[ADMIN_SECRET_ENV] = admin_secret_id
    leftovers = {k: v for k, v in env.items() if PLACEHOLDER.search(v)}
    assert not leftovers, f"unsubstituted placeholders: {leftovers}"
    return env


def local_auth(env: dict[str, str], database: Database, moto, admin: dict) -> dict[str, str]:
    """Local values for the basic-auth settings' deploy-time ones, where the server's
    environment has them (else none): the secrets in moto as MlflowAuth makes them (the admin
    logins as JSON, the others plain strings; itest_auth's), the users' database next to the
    store's, made by hand (the launcher's login may not create databases here)."""
    if ADMIN_SECRET_ENV not in env:
        return {}
    assert database.server.engine == "mysql", "the users' database is made with MariaDB's SQL"
    auth_db = f"{database.name}_auth"
    database.server.admin(
        f"CREATE DATABASE `{auth_db}` CHARACTER SET utf8mb4;"
        f"GRANT ALL PRIVILEGES ON `{auth_db}`.* TO '{database.user}'@'%';"
    )
    arns = create_auth_secrets(moto).arns | {ADMIN_SECRET_ENV: admin["arn"]}
    return {**{key: arn for key, arn in arns.items() if key in env}, "MLFLOW_AUTH_DB_NAME": auth_db}


def admin_secret(moto, password: str, username: str = "admin") -> dict:
    """The admin login's secret in moto: {"arn", "username", "password"}."""
    arn = moto.create_secret(json.dumps({"username": username, "password": password}))
    return {"arn": arn, "username": username, "password": password}


# ---------------------------------------------------------------- a TLS load balancer -------


@contextmanager
def tls_terminator(address: str, cert: Path, key: Path, backend_port: int = 80) -> Iterator[None]:
    """What an NLB's TLS listener does: on `address`:443, TLS with `cert` (whatever name the
    client asks for in SNI: one certificate, as a listener with only its default one), and
    plain TCP on to `address`:`backend_port` (the pod inside the VPC)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    listener = socket.create_server((address, 443))
    listener.settimeout(0.2)
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def connection(raw: socket.socket) -> None:
        try:
            client = context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):  # the client refused the certificate: as it should
            raw.close()
            return
        upstream = socket.create_connection((address, backend_port))
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(None)
            threading.Thread(target=connection, args=(raw,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        listener.close()


# ---------------------------------------------------------------- CloudFormation's side ------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class SignalReceiver:
    """Answers every request 200 and keeps it."""

    base: str
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base}{PRESIGNED_PATH}?{PRESIGNED_QUERY}"


@contextmanager
def signal_receiver() -> Iterator[SignalReceiver]:
    receiver = SignalReceiver("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.requests.append(
                Received(self.command, self.path, dict(self.headers.items()), body)
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---------------------------------------------------------------- running the check ---------


@dataclass
class Verdict:
    returncode: int
    output: str
    signals: list[dict]
    requests: list[Received]

    def reason_logged(self) -> str:
        """The launcher's last ERROR line: the reason it exits with."""
        errors = [line for line in self.output.splitlines() if " mlflow-launcher ERROR " in line]
        assert errors, f"no error logged:\n{self.output}"
        return errors[-1].split(" mlflow-launcher ERROR ", 1)[1]


def _process_env(env: dict[str, str], home: Path, address: str, aws: dict[str, str]) -> dict:
    process_env = launcher.container_env({**env, **aws}, home)
    process_env["PYTHONPATH"] = str(resolver(home / f"resolver-{address}", address))
    return process_env


def run_verify(
    env: dict[str, str],
    receiver: SignalReceiver,
    home: Path,
    address: str,
    aws: dict[str, str],
    timeout: float = 240,
) -> Verdict:
    """`verify` through the image's entrypoint, the checked names resolving to `address`;
    `aws`: how it reaches moto (Secrets Manager, for the admin login)."""
    start = len(receiver.requests)
    result = launcher.run(["verify"], _process_env(env, home, address, aws), timeout=timeout)
    sent = receiver.requests[start:]
    signals = [json.loads(r.body) for r in sent]
    return Verdict(result.returncode, result.stdout + result.stderr, signals, sent)


class RunningVerify:
    """`verify` as run_verify starts it, in the background, its output in a file the test can
    watch while it changes what the check meets."""

    def __init__(
        self,
        env: dict[str, str],
        receiver: SignalReceiver,
        home: Path,
        address: str,
        aws: dict[str, str],
    ) -> None:
        self.receiver, self.start = receiver, len(receiver.requests)
        self.log = home / f"verify-{secrets.token_hex(4)}.log"
        home.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*launcher.entrypoint(), "verify"],
                env=_process_env(env, home, address, aws),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 120) -> None:
        """Until the output has `text` (the check is then at that point, and still running)."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc.poll() is None, f"verify ended before {text!r}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{self.output()}"
            time.sleep(0.2)

    def finish(self, timeout: float = 300) -> Verdict:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"verify still running after {timeout} s:\n{self.output()}"
            ) from None
        sent = self.receiver.requests[self.start :]
        return Verdict(code, self.output(), [json.loads(r.body) for r in sent], sent)


def assert_failed(verdict: Verdict, reason: str, logs_command: str) -> None:
    """Exit 3, the reason as the log's last error, and one FAILURE signal with that reason."""
    expected = f"{reason} (logs: {logs_command})"
    assert verdict.returncode == 3, verdict.output
    assert verdict.reason_logged() == expected, verdict.output
    [signal] = verdict.signals
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"] == expected
    assert signal["UniqueId"] == "mlflow-verify"
    assert "\n" not in signal["Data"]


def assert_no_secrets(verdict: Verdict, *passwords: str) -> None:
    for value in (PRESIGNED_QUERY, SIGNATURE):
        assert value not in verdict.output, "the signal URL appears in the verify's output"
    for password in passwords:
        launcher.assert_no_secret(verdict.output, password, "the verify's output")


# ---------------------------------------------------------------- servers' surroundings -----


@dataclass
class Database:
    """A database with its own user and a Secrets Manager secret (as conftest's Target)."""

    server: object
    name: str
    user: str
    password: str
    secret_arn: str


def new_database(server, moto) -> Database:
    suffix = secrets.token_hex(5)
    name, user, password = f"mlflow_{suffix}", f"user_{suffix}", f"pw-{secrets.token_urlsafe(16)}"
    server.create_database(name, user, password)
    secret = {"username": user, "password": password, "engine": server.engine}
    return Database(server, name, user, password, moto.create_secret(json.dumps(secret)))


class Relay:
    """A TCP relay to the database that can be cut: open connections torn down and new ones
    refused, as when the database goes away, then restored on the same port. Transparent, so
    TLS stays end to end."""

    def __init__(self, upstream_port: int) -> None:
        self.port, self.upstream_port = free_port(), upstream_port
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Relay:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.2)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def _serve(self, listener: socket.socket) -> None:
        with listener:
            while not self._stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                self._connections += [client, upstream]
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()

    def cut(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        shut_down(self._connections)
        self._connections.clear()


AUTH_INI = """\
[mlflow]
default_permission = READ
database_uri = sqlite:///{path}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def basic_auth_server(directory: Path, address: str, admin_password: str) -> launcher.Server:
    """MLflow's own `mlflow server --app-name basic-auth` (SQLite, local artifacts) on
    `address`:80, answering the two checked names."""
    directory.mkdir(parents=True, exist_ok=True)
    ini = directory / "auth.ini"
    ini.write_text(AUTH_INI.format(path=directory / "auth.db"))
    env = launcher.container_env(
        {
            "MLFLOW_PORT": "80",
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "AWS_REGION": REGION,
        },
        directory / "home",
    )
    mlflow = launcher.image_venv() / "bin" / "mlflow"
    command = [
        str(mlflow),
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        address,
        "--port",
        "80",
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{directory / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(directory / "artifacts"),
        "--allowed-hosts",
        f"{INTERNAL_HOST},{NLB_HOST}",
        "--cors-allowed-origins",
        f"{INTERNAL_URL},{NLB_URL}",
    ]
    server = launcher.Server(env, directory / "server.log", command=command)
    server.base_url = f"http://{address}:80"
    return server
