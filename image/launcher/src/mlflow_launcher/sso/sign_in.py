"""A verified ALB token to an MLflow user, in one server process.

`sign_in(token)` checks the token (token.py, keys.py), takes the username from the configured
claim and, when an admin group is configured, whether the user is in it; then has `provision`
create the user on first sign-in (with no grant: MLflow's default permission applies) or bring
its admin flag in line with the IdP. Both results are remembered: a verified token until it
expires (the ALB may send the same one again), a user's provisioning for `sync_seconds` (the
sign-in cache's time, so an IdP change of the admin group reaches MLflow as fast as a
password change does). `remembered(token)` answers from memory alone, so the guard can let a
request through without a thread; `sign_in` blocks (key fetch, signature, database).

MLflow-agnostic: `provision(username, admin)` is given (users.py makes it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from mlflow_launcher.settings import SsoEnvironment
from mlflow_launcher.sso import token as tokens
from mlflow_launcher.sso.keys import Keys
from mlflow_launcher.sso.token import Refused

log = logging.getLogger(__name__)

TOKENS_KEPT = 4096
USERS_KEPT = 4096
MAX_USERNAME_CHARS = 255
"""MLflow's users.username column (String(255))."""

VERIFIED: ContextVar[tuple[bytes, str] | None] = ContextVar("mlflow_on_eks_sso", default=None)
"""(digest of the token, username) the guard accepted for this request: MLflow's
authorization function, called many times per request, finds it here."""


@dataclass(frozen=True)
class Identity:
    username: str
    admin: bool | None
    """Whether in the IdP's admin group; None when no admin group is configured."""


@dataclass(frozen=True)
class _Verified:
    identity: Identity
    expires: float


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("latin-1", errors="replace")).digest()


def identity(claims: dict, config: SsoEnvironment) -> Identity:
    """The MLflow user the claims name; Refused if they name none usable."""
    claim = config.username_claim
    username = claims.get(claim)
    if (
        not isinstance(username, str)
        or not username
        or username != username.strip()
        or len(username) > MAX_USERNAME_CHARS
        or not username.isprintable()
    ):
        raise Refused(f"the IdP's {claim} claim is missing or not a usable MLflow username")
    # An IdP that lets people type their own e-mail address says so (OIDC Core 5.1).
    if claim == "email" and claims.get("email_verified") in (False, "false"):
        raise Refused("the IdP has not verified this e-mail address (email_verified: false)")
    admin = None
    if config.admin_group is not None:
        groups = claims.get(config.groups_claim, [])
        groups = [groups] if isinstance(groups, str) else groups
        admin = isinstance(groups, list) and config.admin_group in groups
    return Identity(username, admin)


class SingleSignOn:
    def __init__(
        self,
        config: SsoEnvironment,
        *,
        provision: Callable[[str, bool | None], None],
        reserved: str | None = None,
        sync_seconds: float = 30,
        keys: Keys | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`reserved`: MLflow's admin, whose name no IdP user may take (its rights come from
        its password, and the IdP would otherwise decide them)."""
        self.config = config
        self._provision, self._reserved = provision, reserved
        self._sync_seconds, self._clock = sync_seconds, clock
        self._keys = keys or Keys(config.key_url)
        self._networks = config.trusted_networks
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()
        self._synced: OrderedDict[str, tuple[bool | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allowed_from(self, peer: str | None) -> bool:
        """Whether a connection from `peer` may present the header (MLFLOW_SSO_TRUSTED_CIDRS)."""
        if not self._networks:
            return True
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def remembered(self, token: str) -> str | None:
        """The username, if this token was verified and its user provisioned lately."""
        now = self._clock()
        with self._lock:
            entry = self._verified.get(digest(token))
            if entry is None or entry.expires + tokens.LEEWAY_SECONDS < now:
                return None
            synced = self._synced.get(entry.identity.username)
            if synced is None or synced[1] <= now or synced[0] != entry.identity.admin:
                return None
            return entry.identity.username

    def sign_in(self, token: str) -> str:
        """The username; Refused otherwise. Blocks: key fetch, signature, database."""
        key = digest(token)
        now = self._clock()
        with self._lock:
            entry = self._verified.get(key)
        if entry is None or entry.expires + tokens.LEEWAY_SECONDS < now:
            entry = self._verify(token, now)
            with self._lock:
                self._verified[key] = entry
                _trim(self._verified, TOKENS_KEPT)
        self._sync(entry.identity, now)
        return entry.identity.username

    def username_for(self, token: str, peer: str | None) -> str:
        """MLflow's side: the guard's answer for this request, or (without the guard) a
        sign-in of its own."""
        accepted = VERIFIED.get()
        if accepted is not None and accepted[0] == digest(token):
            return accepted[1]
        if not self.allowed_from(peer):
            raise Refused(untrusted(peer))
        return self.sign_in(token)

    def _verify(self, token: str, now: float) -> _Verified:
        config = self.config
        unverified = tokens.parse(token)
        kid = tokens.check_header(
            unverified,
            signer=config.alb_arn,
            now=now,
            issuer=config.issuer,
            client=config.client_id,
        )
        claims = tokens.verify(unverified, self._keys.get(kid))
        tokens.check_claims(claims, now=now, issuer=config.issuer)
        found = identity(claims, config)
        if found.username == self._reserved:
            raise Refused(
                f"{found.username!r} is MLflow's admin, who signs in with its password only"
            )
        return _Verified(found, tokens.expiry(unverified))

    def _sync(self, found: Identity, now: float) -> None:
        with self._lock:
            synced = self._synced.get(found.username)
        if synced is not None and synced[1] > now and synced[0] == found.admin:
            return
        try:
            self._provision(found.username, found.admin)
        except Exception:
            log.exception("cannot create or update MLflow user %r", found.username)
            raise Refused(
                "cannot read or write the users' database now; retry in a moment", 503, 5
            ) from None
        with self._lock:
            self._synced[found.username] = (found.admin, now + self._sync_seconds)
            self._synced.move_to_end(found.username)
            _trim(self._synced, USERS_KEPT)


def untrusted(peer: str | None) -> str:
    return (
        f"the sign-in header came from {peer or 'an unknown address'}, outside the load "
        "balancer's networks (MLFLOW_SSO_TRUSTED_CIDRS)"
    )


def _trim(entries: OrderedDict, size: int) -> None:
    while len(entries) > size:
        entries.popitem(last=False)
