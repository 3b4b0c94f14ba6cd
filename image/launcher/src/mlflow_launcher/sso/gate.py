"""The guard's side of single sign-on: before MLflow reads a request, its ALB token.

A valid token is a login (the guard then allows a signed-in request's body); an invalid one is
answered 401 before the body is read, as a wrong password is. A token verified and provisioned
lately is accepted from memory; any other is checked in a thread, through the same kind of
bounded slots as password checks (guard/sign_in.py `CheckSlots`), so garbage or costly tokens
cannot take the event loop or more than `count` threads of a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlflow_launcher.guard.limits import SIGN_IN_WAIT_SECONDS
from mlflow_launcher.guard.sign_in import CheckSlots, Verdict
from mlflow_launcher.sso import HEADER
from mlflow_launcher.sso.sign_in import VERIFIED, SingleSignOn, digest, untrusted
from mlflow_launcher.sso.token import Refused

_HEADER = HEADER.encode()


@dataclass(frozen=True)
class Answer:
    username: str | None
    """None: refused, for `refusal`'s reason."""
    refusal: Refused | None = None


class TokenGate:
    def __init__(self, sso: SingleSignOn, count: int) -> None:
        self.sso = sso
        self._slots = CheckSlots(count)

    @staticmethod
    def token_from(scope: dict[str, Any]) -> str | None:
        """The header's value, or None without one (then MLflow's basic auth decides). The
        ALB sends one; several are joined as the WSGI bridge joins them for MLflow, which
        no token survives."""
        values = [value for name, value in scope.get("headers", ()) if name == _HEADER]
        return b",".join(values).decode("latin-1") or None

    async def verify(self, token: str, source: str | None) -> Answer:
        """Accepted: VERIFIED is set for the rest of the request."""
        if not self.sso.allowed_from(source):
            return Answer(None, Refused(untrusted(source)))
        username = self.sso.remembered(token)
        if username is None:
            result = await self._slots.run(self._sign_in, token)
            if result is Verdict.BUSY:
                busy = "the server is checking as many sign-ins as it may at once; retry soon"
                return Answer(None, Refused(busy, 503, SIGN_IN_WAIT_SECONDS))
            if isinstance(result, Refused):
                return Answer(None, result)
            username = result
        VERIFIED.set((digest(token), username))
        return Answer(username)

    def _sign_in(self, token: str) -> str | Refused:
        try:
            return self.sso.sign_in(token)
        except Refused as refusal:
            return refusal
