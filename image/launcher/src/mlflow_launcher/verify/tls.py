"""How the check reaches an https target: at the address it is told, under the target's name,
trusting the CAs it is told.

A load balancer with TLS answers under its certificate's name (the team's DNS name), while the
deploy knows it by its own DNS name; that name may not point at it yet. As curl's
`--connect-to`, the check connects to the load balancer and keeps the certificate's name for
everything else: TLS SNI, the certificate's hostname check, the Host header, the browser
Origin. So it proves what a client of that name will meet, DNS aside.

Both HTTP stacks of the check follow: the plain checks (urllib) and the MLflow client
(requests, through MLFLOW_TRACKING_SERVER_CERT_PATH, which MLflow passes as `verify`).
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

CERT_PATH_ENV = "MLFLOW_TRACKING_SERVER_CERT_PATH"
"""The MLflow client's CA bundle for its tracking server (mlflow.environment_variables)."""


@contextmanager
def connecting_to(addresses: Mapping[str, str]) -> Iterator[None]:
    """Within the block, a connection to a name of `addresses` goes to its address instead
    (every name resolution of this process passes socket.getaddrinfo, which urllib's and
    urllib3's connections call by attribute); other names resolve as usual."""
    if not addresses:
        yield
        return
    original = socket.getaddrinfo
    wanted = {name.lower(): address for name, address in addresses.items()}

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        address = wanted.get(name.lower()) if isinstance(name, str) else None
        return original(address or host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = original


@functools.cache
def client_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verifies the chain and the hostname, against `ca_bundle` (PEM) or, without one, the
    public roots the MLflow client trusts (certifi's, Mozilla's list)."""
    if ca_bundle:
        return ssl.create_default_context(cadata=ca_bundle)
    import certifi  # requests' own dependency, in the image

    return ssl.create_default_context(cafile=certifi.where())


@contextmanager
def trusting(ca_bundle: str | None, directory: str | None = None) -> Iterator[None]:
    """Within the block, the MLflow client trusts `ca_bundle` only (a file MLflow hands to
    requests); without one, its default (certifi's roots)."""
    if not ca_bundle:
        yield
        return
    previous = os.environ.get(CERT_PATH_ENV)
    with tempfile.TemporaryDirectory(prefix="verify-ca-", dir=directory) as tmp:
        path = os.path.join(tmp, "ca-bundle.pem")
        with open(path, "w") as out:
            out.write(ca_bundle)
        os.environ[CERT_PATH_ENV] = path
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(CERT_PATH_ENV, None)
            else:
                os.environ[CERT_PATH_ENV] = previous
