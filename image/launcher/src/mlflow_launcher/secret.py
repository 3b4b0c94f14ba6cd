"""Credentials and keys from Secrets Manager: the database login RDS generated, and the
basic-auth secrets the data stack generated.

Credentials come from boto3's default chain (IRSA on EKS: an STS AssumeRoleWithWebIdentity
call); the endpoint from boto3's standard settings (AWS_ENDPOINT_URL_SECRETS_MANAGER in tests),
so there is no test-only code path here. Errors name the secret, or STS, and the cause, never the
secret's content.

Every call is bounded, so that an unreachable Secrets Manager or STS ends the container with
this module's message before its startup probe gives up: connect and read timeouts here, retries
from the environment (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS: the chart's ConfigMap sets them for every
AWS client in the pod). k8s_charts/contract.py counts these numbers in the start budget.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mlflow_launcher import contract
from mlflow_launcher.errors import LauncherError

REQUIRED_KEYS = ("username", "password")
# botocore's defaults are 60 s each, per attempt. Secrets Manager and STS answer in well under a
# second from inside the region; these still leave room for a slow answer. In the contract: the
# chart counts them in the server's start budget.
CONNECT_TIMEOUT_SECONDS = contract.AWS_CONNECT_TIMEOUT_SECONDS
READ_TIMEOUT_SECONDS = contract.AWS_READ_TIMEOUT_SECONDS

_CLIENT_ERROR_HINTS = {
    "ResourceNotFoundException": "does not exist (check MLFLOW_DB_SECRET_ID and the region)",
    "AccessDeniedException": "is not readable by this pod's role (check the IRSA role's policy)",
    "DecryptionFailure": "cannot be decrypted (check the KMS key policy for this pod's role)",
    "InvalidRequestException": "cannot be read now (is it scheduled for deletion?)",
}


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # repr=False: a logged object never shows it


def fetch_credentials(secret_id: str, *, region: str | None, client: Any = None) -> Credentials:
    """Read and validate ``{"username": ..., "password": ...}`` from Secrets Manager."""
    return parse_secret(secret_id, fetch_string(secret_id, region=region, client=client))


@functools.cache
def _session() -> boto3.Session:
    core = botocore.session.get_session()
    # A session's default client config reaches every client the session makes, including the
    # STS client of the web-identity credential provider (IRSA): botocore's credential chain
    # creates it through this same session (credentials._get_client_creator ->
    # Session.create_client, which merges the default config). No `retries` here: the
    # environment's AWS_RETRY_MODE / AWS_MAX_ATTEMPTS then apply, as to every other client.
    core.set_default_client_config(
        Config(connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS)
    )
    return boto3.Session(botocore_session=core)


@functools.cache
def _client(region: str | None) -> Any:
    return _session().client("secretsmanager", region_name=region)


def _credentials(session: boto3.Session, secret_id: str) -> None:
    """Resolve the pod's credentials now, so that a failure names STS rather than Secrets
    Manager (IRSA's STS call would otherwise happen inside the first secret read)."""
    role = os.environ.get("AWS_ROLE_ARN")
    source = (
        f"STS (AssumeRoleWithWebIdentity for role {role})"
        if role
        else "the AWS credential provider"
    )
    try:
        credentials = session.get_credentials()
        if credentials is None:
            raise NoCredentialsError
        credentials.get_frozen_credentials()
    except NoCredentialsError:
        raise _no_credentials(secret_id) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise LauncherError(
            f"{source} refused the pod's AWS credentials, needed to read secret {secret_id} "
            f"[{code}] (check the IRSA role's trust policy: the cluster's OIDC provider, this "
            "namespace and service account)"
        ) from None
    except BotoCoreError as exc:
        raise LauncherError(
            f"cannot reach {source} for the pod's AWS credentials, needed to read secret "
            f"{secret_id}: {exc}"
        ) from None


def _no_credentials(secret_id: str) -> LauncherError:
    return LauncherError(
        f"no AWS credentials to read secret {secret_id} (on EKS: is the pod's service "
        "account annotated with the IRSA role?)"
    )


def fetch_string(secret_id: str, *, region: str | None, client: Any = None) -> str:
    """A secret's SecretString, as stored (a plain value or JSON); never empty."""
    if client is None:
        _credentials(_session(), secret_id)
        client = _client(region)
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        hint = _CLIENT_ERROR_HINTS.get(code, "cannot be read")
        raise LauncherError(f"secret {secret_id} {hint} [{code or 'error'}]") from None
    except NoCredentialsError:
        raise _no_credentials(secret_id) from None
    except BotoCoreError as exc:
        raise LauncherError(f"cannot reach Secrets Manager to read {secret_id}: {exc}") from None
    text = response.get("SecretString")
    if not text:
        raise LauncherError(
            f"secret {secret_id} has no SecretString (empty, or binary: unsupported)"
        )
    return text


def json_strings(
    secret_id: str, text: str, keys: tuple[str, ...], *, shape: str = ""
) -> dict[str, str]:
    """The secret's JSON object's string values at `keys`, each non-blank; messages say what is
    wrong (and `shape`, what it must hold) without echoing the content."""
    try:
        data = json.loads(text)
    except ValueError:
        raise LauncherError(f"secret {secret_id} is not valid JSON") from None
    if not isinstance(data, dict):
        raise LauncherError(f"secret {secret_id} must be a JSON object")
    missing = [k for k in keys if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise LauncherError(
            f"secret {secret_id} lacks non-empty string key(s): {', '.join(missing)}"
            + (f"; it must hold {shape}" if shape else "")
        )
    return {key: data[key] for key in keys}


def parse_secret(secret_id: str, text: str) -> Credentials:
    """Validate the secret's JSON; messages say what is wrong without echoing the content."""
    values = json_strings(secret_id, text, REQUIRED_KEYS)
    return Credentials(username=values["username"], password=values["password"])
