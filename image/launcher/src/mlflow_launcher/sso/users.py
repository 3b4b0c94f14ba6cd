"""MLflow users for people the ALB signed in, in MLflow's basic-auth user store.

A first sign-in creates the user with no grant (MLflow's default permission applies to what
others made; what it creates, it manages) and a random password no one is told: it signs in
through the ALB only, unless an admin sets it a password. An existing user of that name, one
an admin made, is the same person signing in another way. When an admin group is configured,
the user's admin flag is the IdP's on every sign-in, both ways: someone removed from the group
loses MLflow admin rights too (the IdP decides, or MLflow does; never both).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PASSWORD_BYTES = 32


def provisioner(store: Any) -> Callable[[str, bool | None], None]:
    """`provision(username, admin)` on MLflow's auth store (mlflow.server.auth.store)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        RESOURCE_ALREADY_EXISTS,
        RESOURCE_DOES_NOT_EXIST,
        ErrorCode,
    )

    def is_error(error: MlflowException, code: int) -> bool:
        return error.error_code == ErrorCode.Name(code)

    def provision(username: str, admin: bool | None) -> None:
        try:
            user = store.get_user(username)
        except MlflowException as error:
            if not is_error(error, RESOURCE_DOES_NOT_EXIST):
                raise
            try:
                # Hashed with MLflow's scrypt like any password: it is never checked, but a
                # hash that is not one would be a second kind of user in MLflow's table.
                store.create_user(username, secrets.token_urlsafe(PASSWORD_BYTES), bool(admin))
            except MlflowException as race:
                if not is_error(race, RESOURCE_ALREADY_EXISTS):
                    raise
                user = store.get_user(username)  # another process signed it in first
            else:
                log.info(
                    "created MLflow user %r at its first sign-in through the load balancer%s",
                    username,
                    " (admin: in the IdP's admin group)" if admin else "",
                )
                return
        if admin is not None and bool(user.is_admin) != admin:
            store.update_user(username, is_admin=admin)
            log.info(
                "MLflow user %r is %s admin now, as the IdP's admin group says",
                username,
                "an" if admin else "no longer an",
            )

    return provision
