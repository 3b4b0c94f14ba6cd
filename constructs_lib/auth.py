"""MlflowAuth: who may use the server. MLflow's basic-auth app, its secrets generated here.

The users and their permissions live in a database of their own (`mlflow_auth`) on the
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

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from ..k8s_charts import AuthProps, AuthSecretIds
from .acknowledgements import acknowledge

# MLflow's store refuses passwords shorter than 12 characters; length is what makes these
# strong, and every printable ASCII character is allowed (the launcher and MLflow's client send
# them as basic-auth credentials, which any character survives).
_PASSWORD_LENGTH = 32
_KEY_LENGTH = 64
_ROTATION_REASON = (
    "No automatic rotation: {what}. Rotate deliberately (docs/operations.md, Authentication)."
)


class MlflowAuth(Construct):
    """The sign-in secrets: the admin login, the Flask secret key and the KEK passphrase.

    What the server does with sign-in (default permission, the sign-in cache) is not here: it
    is MlflowTrackingServer's `auth`, the same `AuthProps`, given to the server directly.

    Attributes: `props`, `admin_secret` (JSON `username`, `password`), `flask_secret_key`,
    `kek_passphrase` (plain strings), `secret_ids` (their ARNs, as the chart takes them).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        props: AuthProps | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param props: the sign-in settings (the config file's `auth` section); this construct
            uses `admin_username`, the user MLflow creates with the generated password on first
            start. Default: `AuthProps()`.
        :param removal_policy: of the secrets; keep them as long as the database.
            Default: RETAIN.
        """
        super().__init__(scope, id)
        props = props or AuthProps()
        if not props.enabled:
            raise ValueError(
                "MlflowAuth: props.enabled is false; with sign-in off there are no secrets to "
                "make: leave MlflowAuth out"
            )
        self.props = props
        admin_username = props.admin_username
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
    def secret_ids(self) -> AuthSecretIds:
        return AuthSecretIds(
            admin=self.admin_secret.secret_arn,
            flask_secret_key=self.flask_secret_key.secret_arn,
            kek_passphrase=self.kek_passphrase.secret_arn,
        )

    @property
    def secrets(self) -> tuple[secretsmanager.ISecret, ...]:
        return (self.admin_secret, self.flask_secret_key, self.kek_passphrase)
