"""A local stand-in for the Kubernetes API server: HTTPS with its own CA, a bearer token, and the
two reads the deploy check makes, answered with objects shaped as the API reference documents
them (apps/v1 Deployment with its DeploymentStatus and conditions; v1 PodList with PodStatus,
its PodScheduled condition and ContainerStatus state/lastState), and errors as Status objects.

No machine here can run a real API server; the shapes below are the documented ones
(https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/deployment-v1/,
.../pod-v1/), so the wait is tested against what a cluster answers, not against our own guess.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NAMESPACE, NAME = "mlflow", "mlflow"
IMAGE = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/cdk-assets:0123abcd"
OLD_IMAGE = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/cdk-assets:fedc9876"
ANNOTATION = ("mlflow-on-eks/config-digest", "0123456789abcdef")
SELECTOR = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": "mlflow"}
NOW = "2026-05-20T14:19:33Z"


# ---------------------------------------------------------------- TLS ------------------------


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> Tls:
    """A CA and a server certificate for 127.0.0.1 (the API server's service IP stands in)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake kubernetes CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("kubernetes")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Tls(directory / "ca.crt", directory / "apiserver.crt", directory / "apiserver.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# ---------------------------------------------------------------- objects --------------------


def template(image: str = IMAGE, annotation: tuple[str, str] | None = ANNOTATION) -> dict[str, Any]:
    """The pod template, as the chart makes it (one image for every container)."""
    annotations = {"prometheus.io/scrape": "true"}
    if annotation:
        annotations[annotation[0]] = annotation[1]
    return {
        "metadata": {"labels": dict(SELECTOR), "annotations": annotations},
        "spec": {
            "initContainers": [{"name": "migrate", "image": image, "args": ["migrate"]}],
            "containers": [
                {"name": "server", "image": image, "args": ["serve"]},
                {"name": "metrics", "image": image, "args": ["metrics"]},
            ],
        },
    }


def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": NOW,
        "lastTransitionTime": NOW,
    }


def deployment(
    *,
    replicas: int = 2,
    generation: int = 4,
    observed: int = 4,
    updated: int = 2,
    current: int = 2,
    available: int = 2,
    progressing: str = "NewReplicaSetAvailable",
    image: str = IMAGE,
    annotation: tuple[str, str] | None = ANNOTATION,
    extra_conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """An apps/v1 Deployment as GET returns it. `current`: status.replicas (old pods too)."""
    progressing_status = "False" if progressing == "ProgressDeadlineExceeded" else "True"
    messages = {
        "NewReplicaSetAvailable": 'ReplicaSet "mlflow-5d4f8c9b7" has successfully progressed.',
        "ReplicaSetUpdated": 'ReplicaSet "mlflow-5d4f8c9b7" is progressing.',
        "NewReplicaSetCreated": 'Created new replica set "mlflow-5d4f8c9b7"',
        "ProgressDeadlineExceeded": 'ReplicaSet "mlflow-5d4f8c9b7" has timed out progressing.',
    }
    status: dict[str, Any] = {
        "observedGeneration": observed,
        "replicas": current,
        "updatedReplicas": updated,
        "readyReplicas": available,
        "availableReplicas": available,
        "conditions": [
            condition(
                "Available",
                "True" if available else "False",
                "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "Deployment has minimum availability.",
            ),
            condition("Progressing", progressing_status, progressing, messages[progressing]),
            *(extra_conditions or []),
        ],
    }
    if current - available > 0:
        status["unavailableReplicas"] = current - available
    # The API omits zero counts (omitempty).
    status = {k: v for k, v in status.items() if v != 0}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": "5e0c1d2a-8f3b-4c6d-9e7f-0a1b2c3d4e5f",
            "resourceVersion": "123456",
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": str(generation)},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": template(image, annotation),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "progressDeadlineSeconds": 2400,
            "revisionHistoryLimit": 10,
        },
        "status": status,
    }


def running(name: str, *, ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "state": {"running": {"startedAt": NOW}},
        "lastState": {},
        "ready": ready,
        "restartCount": restarts,
        "image": IMAGE,
        "imageID": "",
        "started": True,
    }


def terminated_ok(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "state": {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": NOW,
                "finishedAt": NOW,
            }
        },
        "lastState": {},
        "ready": True,
        "restartCount": 0,
        "image": IMAGE,
        "imageID": "",
    }


def failed(name: str, exit_code: int, message: str, *, restarts: int = 0) -> dict[str, Any]:
    """A container that has just exited with an error, before the kubelet restarts it."""
    return {
        "name": name,
        "state": {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Error",
                "message": message,
                "startedAt": NOW,
                "finishedAt": NOW,
            }
        },
        "lastState": {},
        "ready": False,
        "restartCount": restarts,
        "image": IMAGE,
        "imageID": "",
        "started": False,
    }


def waiting(
    name: str,
    reason: str,
    message: str = "",
    *,
    restarts: int = 0,
    last_exit: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """A container waiting (`reason`), after `restarts` restarts, the last one ending with
    `last_exit` (exit code, termination message)."""
    state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    last: dict[str, Any] = {}
    if last_exit is not None:
        last = {
            "terminated": {
                "exitCode": last_exit[0],
                "reason": "Error",
                "message": last_exit[1],
                "startedAt": NOW,
                "finishedAt": NOW,
            }
        }
    return {
        "name": name,
        "state": state,
        "lastState": last,
        "ready": False,
        "restartCount": restarts,
        "image": IMAGE,
        "imageID": "",
        "started": False,
    }


def pod(
    name: str,
    *,
    init: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    unschedulable: str | None = None,
    image: str = IMAGE,
    annotation: tuple[str, str] | None = ANNOTATION,
) -> dict[str, Any]:
    """A v1 Pod of the template (`image`, `annotation`) as a pod list returns it: ready when
    every container is, Pending and unscheduled with an `unschedulable` message."""
    spec = template(image, annotation)
    if unschedulable is not None:
        status: dict[str, Any] = {
            "phase": "Pending",
            "conditions": [condition("PodScheduled", "False", "Unschedulable", unschedulable)],
            "qosClass": "Burstable",
        }
    else:
        init = init if init is not None else [terminated_ok("migrate")]
        containers = (
            containers if containers is not None else [running("server"), running("metrics")]
        )
        ready = all(c["ready"] for c in containers)
        status = {
            "phase": "Running" if any("running" in c["state"] for c in containers) else "Pending",
            "conditions": [
                condition("PodScheduled", "True", "", ""),
                condition(
                    "Initialized", "True" if all(c["ready"] for c in init) else "False", "", ""
                ),
                condition("Ready", "True" if ready else "False", "", ""),
            ],
            "initContainerStatuses": init,
            "containerStatuses": containers,
            "podIP": "10.0.1.23",
            "qosClass": "Burstable",
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {**SELECTOR, "pod-template-hash": "5d4f8c9b7"},
            "annotations": spec["metadata"]["annotations"],
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "mlflow-5d4f8c9b7",
                    "uid": "9a8b7c6d-0000-4000-8000-000000000001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec["spec"],
        "status": status,
    }


def status_object(code: int, reason: str, message: str) -> dict[str, Any]:
    """The API's error body (meta/v1 Status)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


# ---------------------------------------------------------------- the server -----------------


@dataclass
class State:
    """What the API answers now: the Deployment (or an error as (code, Status)) and pods."""

    deployment: dict[str, Any] | tuple[int, dict[str, Any]]
    pods: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeKubernetes:
    """Answers from `states`, one per read of the Deployment, the last one repeating."""

    states: list[State]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    port: int = 0
    directory: Path = Path()
    requests: list[tuple[str, dict[str, list[str]], str]] = field(default_factory=list)
    """(path, query, Authorization header) of each request."""
    reads: int = 0
    namespace: str = NAMESPACE
    name: str = NAME
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Secret name -> object, in `namespace`: what a merge patch changes."""
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """(path, Content-Type, body) of each PATCH."""

    def env(self) -> dict[str, str]:
        """What the pod would have: the service address and where the token and CA are."""
        return {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "MLFLOW_VERIFY_SERVICE_ACCOUNT_DIR": str(self.directory),
        }

    def _state(self) -> State:
        return self.states[min(self.reads, len(self.states) - 1)]

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(handler.path)
        auth = handler.headers.get("Authorization", "")
        self.requests.append((parts.path, parse_qs(parts.query), auth))
        if auth != f"Bearer {self.token}":
            return 401, status_object(401, "Unauthorized", "Unauthorized")
        deployment_path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}"
        if parts.path == deployment_path:
            state = self._state()
            self.reads += 1
            if isinstance(state.deployment, tuple):
                return state.deployment
            return 200, state.deployment
        if parts.path == f"/api/v1/namespaces/{self.namespace}/pods":
            state = self.states[min(self.reads - 1, len(self.states) - 1)]
            wanted = dict(
                item.split("=", 1)
                for item in parse_qs(parts.query).get("labelSelector", [""])[0].split(",")
                if item
            )
            items = [
                p
                for p in state.pods
                if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
            ]
            return 200, {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "123460"},
                "items": items,
            }
        return 404, status_object(404, "NotFound", f"the server could not find {parts.path}")

    def patch(self, handler: http.server.BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        """A JSON merge patch of one of `secrets` (its `data`), as the API server applies it."""
        parts = urlsplit(handler.path)
        auth = handler.headers.get("Authorization", "")
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", 0))))
        self.patches.append((parts.path, handler.headers.get("Content-Type", ""), body))
        if auth != f"Bearer {self.token}":
            return 401, status_object(401, "Unauthorized", "Unauthorized")
        prefix = f"/api/v1/namespaces/{self.namespace}/secrets/"
        name = parts.path.removeprefix(prefix)
        if not parts.path.startswith(prefix) or name not in self.secrets:
            return 404, status_object(404, "NotFound", f'secrets "{name}" not found')
        if handler.headers.get("Content-Type") != "application/merge-patch+json":
            return 415, status_object(415, "UnsupportedMediaType", "unsupported media type")
        secret = self.secrets[name]
        secret["data"] = {**secret.get("data", {}), **body.get("data", {})}
        return 200, secret


@contextmanager
def fake_kubernetes(states: list[State], directory: Path) -> Iterator[FakeKubernetes]:
    """The fake API on 127.0.0.1 over HTTPS; `directory` gets its token and ca.crt, as the
    ServiceAccount volume holds them."""
    tls = make_tls(directory / "tls")
    account = directory / "serviceaccount"
    account.mkdir(parents=True, exist_ok=True)
    fake = FakeKubernetes(states, directory=account)
    first = states[0].deployment
    if isinstance(first, dict):  # where the API serves it: its own namespace and name
        fake.namespace, fake.name = first["metadata"]["namespace"], first["metadata"]["name"]
    (account / "token").write_text(fake.token)
    (account / "ca.crt").write_bytes(tls.ca.read_bytes())
    (account / "namespace").write_text(NAMESPACE)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send(*fake.answer(self))

        def do_PATCH(self) -> None:
            self._send(*fake.patch(self))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
