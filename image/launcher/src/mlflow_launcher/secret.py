"""Credentials and keys from Secrets Manager: the database login RDS generated, and the
basic-auth secrets the data stack generated.

Credentials come from boto3's default chain (IRSA on EKS); the endpoint from boto3's standard
settings (AWS_ENDPOINT_URL_SECRETS_MANAGER in tests), so there is no test-only code path here.
Errors name the secret and the cause, never its content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mlflow_launcher.errors import LauncherError

REQUIRED_KEYS = ("username", "password")

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


def fetch_string(secret_id: str, *, region: str | None, client: Any = None) -> str:
    """A secret's SecretString, as stored (a plain value or JSON); never empty."""
    if client is None:
        client = boto3.client("secretsmanager", region_name=region)
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        hint = _CLIENT_ERROR_HINTS.get(code, "cannot be read")
        raise LauncherError(f"secret {secret_id} {hint} [{code or 'error'}]") from None
    except NoCredentialsError:
        raise LauncherError(
            f"no AWS credentials to read secret {secret_id} (on EKS: is the pod's service "
            "account annotated with the IRSA role?)"
        ) from None
    except BotoCoreError as exc:
        raise LauncherError(f"cannot reach Secrets Manager to read {secret_id}: {exc}") from None
    text = response.get("SecretString")
    if not text:
        raise LauncherError(
            f"secret {secret_id} has no SecretString (empty, or binary: unsupported)"
        )
    return text


def parse_secret(secret_id: str, text: str) -> Credentials:
    """Validate the secret's JSON; messages say what is wrong without echoing the content."""
    try:
        data = json.loads(text)
    except ValueError:
        raise LauncherError(f"secret {secret_id} is not valid JSON") from None
    if not isinstance(data, dict):
        raise LauncherError(f"secret {secret_id} must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if not isinstance(data.get(k), str) or not data.get(k)]
    if missing:
        raise LauncherError(
            f"secret {secret_id} lacks non-empty string key(s): {', '.join(missing)}"
        )
    return Credentials(username=data["username"], password=data["password"])
