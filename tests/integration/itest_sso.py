"""A server pod with single sign-on, for tests/integration/test_sso.py and test_sso_browser.py:
the synthesized chart's pod (ConfigMap, `migrate`, `serve`) with sign-in on, its database on
the session's MariaDB or PostgreSQL, the MLFLOW_SSO_* settings as k8s_charts' sso_environment
renders them, and an ES256 key of our own served over local HTTP in place of AWS's key
endpoint (tests/fake_alb.py)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import itest_hostile as hostile
import itest_launcher as launcher
import itest_template as template
from itest_auth import (
    AuthSecrets,
    Login,
    create_auth_secrets,
    memory_limit_mib,
    new_login,
    signed_in_pod_env,
)
from itest_chart import pod

from mlflow_on_eks.k8s_charts.contract import sso_environment
from tests.fake_alb import ARN, CLIENT_ID, HEADER, ISSUER, KeyServer, Signer, key_server

CONFIG_FOR_ENGINE = {"mysql": "default", "postgres": "postgres"}
ADMIN_GROUP = "mlflow-admins"
TRUSTED_CIDR = "127.0.0.0/30"
"""Stands for the ALB's subnets: connections from 127.0.0.1-3 may present the header."""
OUTSIDE = "127.0.5.1"
"""Another host of the VPC (127.0.0.0/8 is all local on Linux)."""


@dataclass
class SsoPod:
    server: launcher.Server
    login: Login
    auth: AuthSecrets
    auth_db: str
    signer: Signer
    keys: KeyServer
    memory_limit_mib: int
    env: dict[str, str] = field(repr=False)

    @property
    def port(self) -> int:
        return self.server.port

    def token(self, email: str, *groups: str, **header) -> str:
        """A token as the ALB signs it for this IdP user."""
        claims = {"sub": f"sub-{email}", "email": email, "email_verified": True}
        return self.signer.token({**claims, "groups": list(groups)}, **header)

    def send(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: dict | None = None,
        source: str = "127.0.0.1",
        **options,
    ) -> hostile.Answer:
        headers = dict(options.pop("headers", {}))
        if token is not None:
            headers[HEADER] = token
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return hostile.request(
            self.port, method, path, body=data, headers=headers, source=source, **options
        )

    def users(self) -> dict[str, bool]:
        """The auth database's users: whether each is an admin."""
        rows = self.login.server.query(self.auth_db, "SELECT username, is_admin FROM users")
        return {name: str(flag) in ("1", "t", "True") for name, flag in rows}


@contextmanager
def sso_pod(db_server, synth, moto, test_ca, home: Path, **changes: str) -> Iterator[SsoPod]:
    """The pod serving, sign-in and single sign-on on; `changes` to its environment."""
    chart = synth(CONFIG_FOR_ENGINE[db_server.engine])
    _, (init, main) = pod(chart)
    token = secrets.token_urlsafe(8)
    login = new_login(db_server, moto, f"db-{token}")
    auth = create_auth_secrets(moto)
    bucket = moto.create_bucket()
    signer = Signer()
    sso = sso_environment(
        alb_arn=ARN,
        admin_group=ADMIN_GROUP,
        issuer=ISSUER,
        client_id=CLIENT_ID,
        trusted_cidrs=[TRUSTED_CIDR],
    )
    with key_server(signer) as keys:

        def env(container: dict, **more: str) -> dict:
            # The test's key endpoint: what the chart never sets (the launcher would take
            # AWS's for the ALB's Region).
            sso_env = {**sso, "MLFLOW_SSO_KEY_URL": keys.url}
            return signed_in_pod_env(
                chart,
                container,
                login,
                auth,
                moto,
                test_ca.ca,
                bucket,
                home / "pod",
                **sso_env,
                **more,
            )

        template.migrate(db_server, init["args"], env(init))
        server_env = env(main, **changes)
        server = launcher.Server(server_env, home / "server.log")
        try:
            server.wait_healthy(timeout=180)
            yield SsoPod(
                server,
                login,
                auth,
                f"{login.name}_auth",
                signer,
                keys,
                memory_limit_mib(main),
                server_env,
            )
        finally:
            server.stop()
