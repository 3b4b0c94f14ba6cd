"""MlflowAuth: who may use the server. MLflow's basic-auth app, its secrets generated here.

The users and their permissions live in a database of their own (`database_name`) on the
backend store's RDS instance, created and migrated by the server's `migrate` init container.
This construct holds what must never appear in a template, a manifest or argv, each generated
into Secrets Manager and read by the launcher at pod start:

- the admin login (`username`, `password`): MLflow creates this user once, on first start;
- the Flask secret key: signs session and CSRF tokens, so it is the same on every replica;
- the KEK passphrase: encrypts the secrets MLflow stores (e.g. AI gateway keys) in the database.

All three belong with the data: a lost passphrase makes those stored secrets unreadable, and the
admin password is the one the database's user table was created with. So they live in the data
stack and are retained with the database unless it is destroyed.
"""

from __future__ import annotations

from typing import get_args

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from ..k8s_charts import AuthProps
from ..k8s_charts.rules import Permission
from .acknowledgements import acknowledge

PERMISSIONS: tuple[str, ...] = get_args(Permission)
"""What every signed-in user may do where no grant says otherwise (mlflow.server.auth's
permissions, as the launcher's contract lists them; DENY exists only as an explicit grant)."""

# MLflow's store refuses passwords shorter than 12 characters; length is what makes these
# strong, and every printable ASCII character is allowed (the launcher and MLflow's client send
# them as basic-auth credentials, which any character survives).
_PASSWORD_LENGTH = 32
_KEY_LENGTH = 64
_ROTATION_REASON = (
    "No automatic rotation: {what}. Rotate deliberately (docs/operations.md, Authentication)."
)


class MlflowAuth(Construct):
    """The basic-auth app's settings and its three generated secrets.

    Attributes: `admin_secret` (JSON `username`, `password`), `flask_secret_key`,
    `kek_passphrase` (plain strings), `default_permission`, `database_name`, `admin_username`,
    `sign_in_cache_seconds`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        admin_username: str = "admin",
        default_permission: Permission = AuthProps.default_permission,
        database_name: str = AuthProps.database_name,
        sign_in_cache_seconds: int = AuthProps.sign_in_cache_seconds,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param admin_username: the user MLflow creates, with a generated password, on first
            start. Default: `admin`.
        :param default_permission: what a signed-in user may do on what others created, unless
            granted more. Default: READ.
        :param database_name: the auth database on the backend store's instance.
            Default: `mlflow_auth`.
        :param sign_in_cache_seconds: how long each server process remembers a successful
            password check (0: never); a changed password or deleted user takes up to this long
            to reach the other processes. Default: 30 (see `AuthProps`).
        :param removal_policy: of the secrets; keep them as long as the database.
            Default: RETAIN.
        """
        super().__init__(scope, id)
        if default_permission not in PERMISSIONS:
            raise ValueError(
                f"default_permission must be one of {', '.join(PERMISSIONS)}, "
                f"got {default_permission!r}"
            )
        if not admin_username or any(c.isspace() or c == ":" for c in admin_username):
            # Basic auth joins user and password with ':'; MLflow cannot sign such a user in.
            raise ValueError(f"admin_username {admin_username!r} is empty or has ':' or spaces")
        self.admin_username = admin_username
        self.default_permission = default_permission
        self.database_name = database_name
        self.sign_in_cache_seconds = sign_in_cache_seconds
        self.admin_secret = self._secret(
            "AdminCredentials",
            "MLflow admin login (basic auth): username and generated password",
            secretsmanager.SecretStringGenerator(
                secret_string_template=f'{{"username": "{admin_username}"}}',
                generate_string_key="password",
                password_length=_PASSWORD_LENGTH,
            ),
            removal_policy,
            "MLflow creates the admin user from it once; later changes go through MLflow's "
            "update-password API, which this secret would then have to follow",
        )
        self.flask_secret_key = self._secret(
            "FlaskSecretKey",
            "MLflow server secret key (signs sessions and CSRF tokens on every replica)",
            secretsmanager.SecretStringGenerator(
                password_length=_KEY_LENGTH, exclude_punctuation=True
            ),
            removal_policy,
            "every replica must hold the same key; pods read it at start, so a rotation needs "
            "a restart of the Deployment",
        )
        self.kek_passphrase = self._secret(
            "KekPassphrase",
            "MLflow KEK passphrase (encrypts secrets MLflow stores in its database)",
            secretsmanager.SecretStringGenerator(
                password_length=_KEY_LENGTH, exclude_punctuation=True
            ),
            removal_policy,
            "secrets stored under the old passphrase must be re-encrypted first "
            "(`mlflow crypto rotate-kek`), with the server stopped",
        )

    def _secret(
        self,
        id: str,
        description: str,
        generator: secretsmanager.SecretStringGenerator,
        removal_policy: RemovalPolicy,
        why_not_rotated: str,
    ) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            id,
            description=description,
            generate_secret_string=generator,
            removal_policy=removal_policy,
        )
        acknowledge(secret, "AwsSolutions-SMG4", _ROTATION_REASON.format(what=why_not_rotated))
        return secret

    @property
    def secrets(self) -> tuple[secretsmanager.ISecret, ...]:
        return (self.admin_secret, self.flask_secret_key, self.kek_passphrase)
