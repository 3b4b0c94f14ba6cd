"""The few Kubernetes API reads the deploy check makes, as an in-cluster client makes them:
HTTPS to KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT (the kubelet sets both in every pod),
the pod's ServiceAccount token as a bearer token, the server certificate verified against the
cluster CA mounted next to it (client-go's `rest.InClusterConfig` does the same; Kubernetes docs,
"Accessing the Kubernetes API from a Pod").

The standard library rather than the `kubernetes` client package: two GETs do not justify adding
that package and its dependencies (requests-oauthlib, google-auth, websocket-client, ...) to the
server image's hash-locked requirements, which every server pod would then carry.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Mapping, MutableSequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from mlflow_launcher.errors import LauncherError
from mlflow_launcher.verify.messages import one_line

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where Kubernetes mounts the token and ca.crt (automountServiceAccountToken)."""
SERVICE_ACCOUNT_DIR_ENV = "MLFLOW_VERIFY_SERVICE_ACCOUNT_DIR"
"""Another directory holding `token` and `ca.crt`: for a run outside a pod."""
REQUEST_TIMEOUT_SECONDS = 10.0
# Answers that may change by themselves: the API server overloaded (429 with Retry-After), or
# restarting or failing over behind its load balancer (EKS runs several).
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class ApiError(Exception):
    """An answer other than 2xx; `message` is the Status object's, else the body's first line."""

    def __init__(self, status: int, path: str, message: str) -> None:
        super().__init__(f"{path}: {status} {message}")
        self.status, self.path, self.message = status, path, message

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES


class KubernetesApi:
    """Requests to the API server as the pod's ServiceAccount: the deploy check's GETs, and
    the merge patch `sync-sso-secret` writes its one Secret with."""

    def __init__(self, host: str, port: int, directory: Path) -> None:
        self.host, self.port, self.directory = host, port, directory
        self._context = ssl.create_default_context(cafile=str(directory / "ca.crt"))

    @classmethod
    def in_cluster(cls, env: Mapping[str, str], log_secrets: MutableSequence[str]) -> KubernetesApi:
        """From the pod's environment; the token joins `log_secrets` (it is a credential)."""
        host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
        port = env.get("KUBERNETES_SERVICE_PORT", "").strip()
        directory = Path(env.get(SERVICE_ACCOUNT_DIR_ENV, "").strip() or SERVICE_ACCOUNT_DIR)
        if not host or not port.isdigit():
            raise LauncherError(
                "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set: this command "
                "needs the Kubernetes API (the kubelet sets both in every pod)"
            )
        missing = [name for name in ("token", "ca.crt") if not (directory / name).is_file()]
        if missing:
            raise LauncherError(
                f"no ServiceAccount {' or '.join(missing)} in {directory}: this command's pod "
                "needs its API token mounted (automountServiceAccountToken: true)"
            )
        try:
            api = cls(host, int(port), directory)
        except (OSError, ssl.SSLError) as exc:
            ca = directory / "ca.crt"
            raise LauncherError(f"cannot read the cluster CA {ca}: {exc}") from None
        log_secrets.append(api._token())
        return api

    def _token(self) -> str:
        # Read on every request: the kubelet rotates a projected token before it expires, and
        # clients must reload it (Kubernetes docs, "Bound service account token volume").
        return (self.directory / "token").read_text().strip()

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON object at `path`. Raises ApiError for an HTTP error answer, OSError or
        http.client.HTTPException when no answer came (ssl.SSLCertVerificationError among
        them: the server is not the cluster's)."""
        return self._call("GET", path + (f"?{urlencode(query)}" if query else ""), path)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386) of the object at `path`; errors as for `get`. The
        body is not logged anywhere: it may hold a secret."""
        body = json.dumps(patch).encode()
        return self._call("PATCH", path, path, body, "application/merge-patch+json")

    def _call(
        self,
        method: str,
        target: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        connection = http.client.HTTPSConnection(
            self.host, self.port, timeout=REQUEST_TIMEOUT_SECONDS, context=self._context
        )
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise ApiError(response.status, path, _status_message(answer))
        return json.loads(answer)


def secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments/{quote(name)}"


def pods_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/pods"


def label_selector(labels: Mapping[str, str]) -> str:
    """`k=v,k2=v2`, the form the labelSelector query parameter takes."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _status_message(body: bytes) -> str:
    """A Status object's message (the API's error body), else the body's first line."""
    text = body.decode(errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("message"):
        return one_line(str(parsed["message"]))
    lines = [line for line in text.splitlines() if line.strip()]
    return one_line(lines[0]) if lines else "(empty body)"
