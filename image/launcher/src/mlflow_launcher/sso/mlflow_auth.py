"""MLflow's side of single sign-on: the basic-auth app's `authorization_function`.

MLflow (3.17, mlflow/server/auth `authenticate_request`) imports the function its config file
names (`authorization_function = module:function`) and calls it, in the request's Flask
context, for every protected request, several times per request (its before-request hook and
each permission check read the username from it). It returns a werkzeug `Authorization` whose
username must be an MLflow user, or a `Response`, which MLflow sends as is. Its FastAPI
middleware calls it too, for its native routes, in a synthetic Flask request
(`_authenticate_custom_for_fastapi`).

With the ALB's header the user is the token's (the guard verified it for this request; without
the guard's answer it is verified here); without it, MLflow's own basic auth decides, as it
would without single sign-on.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from mlflow_launcher import settings
from mlflow_launcher.sso import HEADER
from mlflow_launcher.sso.sign_in import SingleSignOn
from mlflow_launcher.sso.token import Refused

_current: SingleSignOn | None = None
_lock = threading.Lock()


def current() -> SingleSignOn | None:
    """This process's single sign-on (from its environment), None when it is off. Built once:
    the guard and this function share its caches."""
    global _current
    with _lock:
        if _current is None:
            config = settings.load_sso(os.environ)
            if config is None:
                return None
            from mlflow.server import auth

            from mlflow_launcher.sso.users import provisioner

            _current = SingleSignOn(
                config,
                provision=provisioner(auth.store),
                reserved=auth.auth_config.admin_username,
                sync_seconds=auth.auth_config.auth_cache_ttl_seconds,
            )
        return _current


def authenticate() -> Any:
    from flask import Response, request
    from mlflow.server import auth
    from werkzeug.datastructures import Authorization

    token = request.headers.get(HEADER)
    sso = current() if token else None
    if sso is None:
        return auth.authenticate_request_basic_auth()
    try:
        username = sso.username_for(token, request.remote_addr)
    except Refused as refusal:
        # No Basic challenge: behind the ALB a browser would ask for a password.
        message = f"single sign-on refused: {refusal.reason}"
        return Response(message, status=refusal.status, mimetype="text/plain")
    return Authorization("basic", {"username": username})
