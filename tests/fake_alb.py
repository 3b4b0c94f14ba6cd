"""A stand-in for an ALB's OIDC action, for the single sign-on tests.

- `Signer`: an ES256 key of our own in place of AWS's, signing user claims tokens in the ALB's
  format (base64url segments with their padding, header `alg`, `kid`, `signer`, `iss`,
  `client`, `exp`; Elastic Load Balancing docs, "User claims encoding and signature
  verification");
- `key_server`: its public key served over HTTP as AWS serves the Region's keys (PEM at
  <base URL><kid>), counting what was asked for;
- `alb`: a reverse proxy in front of the server that, as the ALB does for a signed-in browser,
  adds a freshly signed x-amzn-oidc-data header to every request it forwards (and drops any the
  client sent).
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ARN = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
    "loadbalancer/app/k8s-mlflow-mlflowss-4f8a2b1c9d/50dc6c495c0c9188"
)
OTHER_ARN = ARN.replace("50dc6c495c0c9188", "0123456789abcdef")
"""Another ALB of the same account and Region (anyone with the account can make one)."""
ISSUER = "https://login.example.com/tenant"
CLIENT_ID = "mlflow-alb-client"
HEADER = "x-amzn-oidc-data"


def b64(data: bytes) -> str:
    """base64url with its padding, as the ALB sends its segments."""
    return base64.urlsafe_b64encode(data).decode()


@dataclass
class Signer:
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    kid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(
        self,
        claims: dict[str, Any],
        *,
        signer: str = ARN,
        lifetime: float = 120,
        padded: bool = True,
        **header: Any,
    ) -> str:
        """A token as the ALB makes it; `header` adds or replaces header fields (None drops
        one). The payload repeats the header's `exp` and `iss`, as AWS's own verifier models
        these tokens (awslabs/aws-jwt-verify's ALB tests), unless `claims` has its own."""
        fields = {
            "typ": "JWT",
            "kid": self.kid,
            "alg": "ES256",
            "iss": ISSUER,
            "client": CLIENT_ID,
            "signer": signer,
            "exp": int(time.time() + lifetime),
            **header,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        repeated = {k: fields[k] for k in ("exp", "iss") if k in fields}
        claims = {k: v for k, v in {**repeated, **claims}.items() if v is not None}
        signed = f"{b64(json.dumps(fields).encode())}.{b64(json.dumps(claims).encode())}"
        if not padded:
            signed = ".".join(part.rstrip("=") for part in signed.split("."))
        r, s = decode_dss_signature(self.key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
        signature = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return f"{signed}.{signature if padded else signature.rstrip('=')}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class KeyServer:
    url: str
    """The base URL (MLFLOW_SSO_KEY_URL): a key ID appended is its PEM."""
    asked: list[str]
    """The key IDs requested, in order."""


@contextmanager
def key_server(*signers: Signer) -> Iterator[KeyServer]:
    keys = {s.kid: s.pem() for s in signers}
    asked: list[str] = []

    class Keys(_Handler):
        def do_GET(self) -> None:
            kid = self.path.lstrip("/")
            asked.append(kid)
            pem = keys.get(kid)
            self.send_response(200 if pem else 404)
            body = pem or b"<Error><Code>NoSuchKey</Code></Error>"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with _serving(Keys) as port:
        yield KeyServer(f"http://127.0.0.1:{port}/", asked)


@contextmanager
def _serving(handler: type[http.server.BaseHTTPRequestHandler], port: int = 0) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"}


@contextmanager
def alb(upstream_port: int, token: Callable[[], str], port: int = 0) -> Iterator[int]:
    """A reverse proxy on `port` (default: any) to 127.0.0.1:`upstream_port` adding `token()`
    to each request, as the ALB does behind its OIDC action; its port is yielded. The Host
    header goes through as the browser sent it (the ALB keeps it too)."""

    class Proxy(_Handler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in HOP_BY_HOP and not k.lower().startswith("x-amzn-oidc-")
            }
            headers[HEADER] = token()
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
            finally:
                upstream.close()
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward

    with _serving(Proxy, port) as bound:
        yield bound
