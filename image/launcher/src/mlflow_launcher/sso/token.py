"""The ALB's user claims token (x-amzn-oidc-data), parsed and checked; nothing in it is
trusted before its signature is verified, and nothing is fetched before the cheap checks pass.

AWS documents the token as base64url header.payload.signature, the JWT header holding `alg`,
`kid`, `signer` (the ALB's ARN), `iss`, `client` and `exp`, the signature ECDSA P-256 with
SHA-256 (ES256), and warns that its segments carry base64 padding ('='), which RFC 7515 leaves
out: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-authenticate-users.html#user-claims-encoding
So padding is accepted here, and the signature is checked over the segments as sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_TOKEN_CHARS = 16 * 1024
"""The ALB refuses (HTTP 500) claims and access token over 11K bytes together (same page,
"Authentication flow"); their base64 is a third larger."""
SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")
KID = re.compile(r"[A-Za-z0-9-]{1,64}")
"""AWS's key IDs are UUIDs; nothing that could change the key URL's path or host passes."""
LEEWAY_SECONDS = 10
"""A token expired this long ago still passes: the pod's clock and the ALB's may differ a
little (both are kept by the Amazon Time Sync Service)."""
ES256_SIGNATURE_BYTES = 64
"""JWS's ES256 signature: R and S, 32 bytes each (RFC 7518, 3.4), not DER."""


class Refused(Exception):
    """The token signs no one in: 401, or 503 when it could not be checked now."""

    def __init__(self, reason: str, status: int = 401, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after


@dataclass(frozen=True)
class Unverified:
    header: dict[str, Any]
    signed: bytes
    """What the signature covers: the header and payload segments as sent, with their dot."""
    payload: str
    signature: bytes


def parse(token: str) -> Unverified:
    """The token's parts; Refused if it is not a well-formed padded-or-not JWS."""
    if len(token) > MAX_TOKEN_CHARS:
        raise Refused(f"the sign-in token is longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3 or not all(SEGMENT.fullmatch(part) for part in parts):
        raise Refused("the sign-in token is not a JWT (three base64url segments)")
    header = _json(parts[0], "header")
    return Unverified(header, f"{parts[0]}.{parts[1]}".encode(), parts[1], _decode(parts[2]))


def check_header(
    unverified: Unverified,
    *,
    signer: str,
    now: float,
    issuer: str | None = None,
    client: str | None = None,
) -> str:
    """The key ID, once the header names ES256, this ALB, a future expiry and (when given)
    this issuer and client."""
    header = unverified.header
    if header.get("alg") != "ES256":
        raise Refused(f"the sign-in token's algorithm is {header.get('alg')!r}, not ES256")
    if header.get("signer") != signer:
        raise Refused("the sign-in token was signed by another load balancer than this one")
    expires = _seconds(header.get("exp"))
    if expires is None:
        raise Refused("the sign-in token has no expiry")
    if expires + LEEWAY_SECONDS < now:
        raise Refused("the sign-in token has expired")
    if issuer is not None and header.get("iss") != issuer:
        raise Refused("the sign-in token names another issuer")
    if client is not None and header.get("client") != client:
        raise Refused("the sign-in token names another client")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise Refused("the sign-in token's key ID is not one AWS gives")
    return kid


def expiry(unverified: Unverified) -> float:
    """`exp` of a header check_header accepted."""
    expires = _seconds(unverified.header.get("exp"))
    assert expires is not None, "check_header first"
    return expires


def verify(unverified: Unverified, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The claims, once the signature is the key's."""
    signature = unverified.signature
    if len(signature) != ES256_SIGNATURE_BYTES:
        raise Refused("the sign-in token's signature is not an ES256 one")
    half = ES256_SIGNATURE_BYTES // 2
    r = int.from_bytes(signature[:half], "big")
    s = int.from_bytes(signature[half:], "big")
    try:
        key.verify(encode_dss_signature(r, s), unverified.signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refused("the sign-in token's signature is not the load balancer's") from None
    return _json(unverified.payload, "payload")


def check_claims(claims: dict[str, Any], *, now: float, issuer: str | None = None) -> None:
    """The payload's own `exp` and `iss`, where it has them: the ALB repeats the header's
    there (AWS's verifier for these tokens, awslabs/aws-jwt-verify, checks the payload's), and
    AWS's blog "Security best practices when using ALB authentication" says to check the
    payload's expiry so an older signed header cannot be replayed."""
    if "exp" in claims:
        expires = _seconds(claims["exp"])
        if expires is None or expires + LEEWAY_SECONDS < now:
            raise Refused("the sign-in token has expired")
    if issuer is not None and "iss" in claims and claims["iss"] != issuer:
        raise Refused("the sign-in token names another issuer")


def _decode(segment: str) -> bytes:
    bare = segment.rstrip("=")
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError):
        raise Refused("the sign-in token is not valid base64url") from None


def _json(segment: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(_decode(segment))
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
        raise Refused(f"the sign-in token's {part} is not JSON") from None
    if not isinstance(value, dict):
        raise Refused(f"the sign-in token's {part} is not a JSON object")
    return value


def _seconds(value: object) -> float | None:
    """A NumericDate: a number, or its digits as a string."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
