"""The CloudFormation wait condition's signal: one PUT to its presigned URL."""

from __future__ import annotations

import http.client
import json
import logging
import time
from urllib.parse import urlsplit

from mlflow_launcher.errors import LauncherError
from mlflow_launcher.verify.checks import REQUEST_TIMEOUT_SECONDS
from mlflow_launcher.verify.messages import short_error
from mlflow_launcher.verify.settings import SIGNAL_URL_ENV

log = logging.getLogger(__name__)

SIGNAL_ATTEMPTS = 5
SIGNAL_BACKOFF_SECONDS = 1.0
UNIQUE_ID = "mlflow-verify"


def send_signal(url: str, status: str, reason: str, data: str) -> None:
    """PUT the wait condition's JSON to its presigned URL, as `curl -T file URL` does.

    http.client rather than urllib: urllib adds a form Content-Type to any request with a body,
    and S3 checks the presigned signature against the headers it covers. Retries connection
    errors and 5xx a few times; a 4xx (expired or wrong URL) will not change by retrying.
    """
    body = json.dumps(
        {"Status": status, "Reason": reason, "UniqueId": UNIQUE_ID, "Data": data}
    ).encode()
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    error = "not sent"
    for attempt in range(1, SIGNAL_ATTEMPTS + 1):
        connection = connection_type(parts.netloc, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            connection.request("PUT", path, body=body)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            error = short_error(exc)
        else:
            if 200 <= response.status < 300:
                log.info("signal %s sent to CloudFormation (UniqueId %s)", status, UNIQUE_ID)
                return
            # Only the status: S3's error body can echo the request's signature.
            error = f"HTTP {response.status}"
            if response.status < 500:
                break
        finally:
            connection.close()
        if attempt < SIGNAL_ATTEMPTS:
            time.sleep(SIGNAL_BACKOFF_SECONDS * 2 ** (attempt - 1))
    raise LauncherError(
        f"the {status} signal did not reach CloudFormation ({SIGNAL_URL_ENV}): {error}"
    )
