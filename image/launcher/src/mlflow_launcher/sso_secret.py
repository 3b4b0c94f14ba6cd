"""``mlflow-launcher sync-sso-secret``: copy the IdP client's credentials from Secrets Manager
into the Kubernetes Secret the ALB's OIDC action is configured from.

The load balancer controller reads the client's `clientID` and `clientSecret` from a Secret in
the Ingress's namespace (AWS Load Balancer Controller docs, Ingress annotations,
"auth-idp-oidc"). The chart applies that Secret empty, so the value never passes through a
template or a manifest; this command, as its own ServiceAccount (whose Role may patch that one
Secret) and IAM role (which may read that one Secrets Manager secret), fills it. It runs as a
Job on each deploy and hourly, so a rotated client secret reaches the load balancer within the
hour. The values join the log mask before anything could print them.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, MutableSequence

from mlflow_launcher import contract, secret, settings
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.verify.kubernetes import ApiError, KubernetesApi, secret_path

log = logging.getLogger(__name__)

KEYS = ("clientID", "clientSecret")
"""The keys the controller reads, and the ones the Secrets Manager secret must hold."""


def client_credentials(secret_id: str, text: str) -> dict[str, str]:
    """The two values from the secret's JSON; messages name what is wrong, never a value."""
    shape = 'the IdP application\'s credentials as {"clientID": ..., "clientSecret": ...}'
    return secret.json_strings(secret_id, text, KEYS, shape=shape)


def sync(
    env: Mapping[str, str],
    log_secrets: MutableSequence[str],
    *,
    api: KubernetesApi | None = None,
    secrets_client: object = None,
) -> None:
    values = settings.parse(
        env, contract.SSO_CLIENT_SECRET_ID, contract.SSO_SECRET_NAME, contract.SSO_SECRET_NAMESPACE
    )
    secret_id = values[contract.SSO_CLIENT_SECRET_ID.name]
    name = values[contract.SSO_SECRET_NAME.name]
    namespace = values[contract.SSO_SECRET_NAMESPACE.name]
    region = secret_id.split(":")[3]  # the secret's own region, whichever the cluster's is
    text = secret.fetch_string(secret_id, region=region, client=secrets_client)
    credentials = client_credentials(secret_id, text)
    log_secrets.extend(credentials.values())
    api = api or KubernetesApi.in_cluster(env, log_secrets)
    data = {key: base64.b64encode(value.encode()).decode() for key, value in credentials.items()}
    try:
        api.merge_patch(secret_path(namespace, name), {"data": data})
    except ApiError as error:
        hint = {
            403: "its Role must allow patch on this Secret",
            404: "the chart applies it (empty) before this Job runs; is the Ingress's manifest "
            "applied?",
        }.get(error.status, "")
        raise LauncherError(
            f"cannot write Secret {namespace}/{name}: {error.status} {error.message}"
            + (f" ({hint})" if hint else "")
        ) from None
    except OSError as error:
        raise LauncherError(f"cannot reach the Kubernetes API: {error}") from None
    log.info("Secret %s/%s holds the IdP client's credentials from %s", namespace, name, secret_id)
