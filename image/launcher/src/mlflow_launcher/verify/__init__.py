"""``mlflow-launcher verify``: after a deploy, use the server as a real user would, through
every name it is served under, and tell CloudFormation the outcome in one line.

First, with MLFLOW_VERIFY_DEPLOYMENT set, it waits until the server's Deployment has rolled out
the pod template this deploy applied (verify.rollout). Then per target, in order: /health
answers; MLflow accepts the name as Host on an API path; a browser page served under the name
may write (its Origin is listed); the MLflow client creates an experiment and a run, logs
params, a metric, a tag and an artifact through the server's artifact proxy, reads the artifact
back and finds the run by its metric. Each step is retried through what passes by itself (no
answer yet, 502/503/504, a search that does not see the run yet) until the target's deadline;
what cannot get better fails at once. The first failure stops the check. Its reason names the
target and the step, so the stack's failure event says what to fix without anyone reading logs
first.

The timings tests shorten live where they are read: RETRY_INTERVAL_SECONDS in `retry`,
REQUEST_TIMEOUT_SECONDS in `checks`, POLL_SECONDS in `rollout`, SIGNAL_BACKOFF_SECONDS in
`cfn_signal`.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Mapping, MutableSequence

from mlflow_launcher.errors import LauncherError, VerificationFailed
from mlflow_launcher.verify.cfn_signal import UNIQUE_ID, send_signal
from mlflow_launcher.verify.checks import (
    BROWSER_PATH,
    HOST_CHECK_PATH,
    _auth_headers,
    _step,
    check_browser_write,
    check_host,
    wait_healthy,
)
from mlflow_launcher.verify.client import exercise_client
from mlflow_launcher.verify.kubernetes import KubernetesApi
from mlflow_launcher.verify.messages import first_line, one_line, short_error
from mlflow_launcher.verify.rollout import wait_for_rollout
from mlflow_launcher.verify.settings import (
    ADMIN_SECRET_ENV,
    LOGS_COMMAND_ENV,
    PASSWORD_ENV,
    SIGNAL_URL_ENV,
    TARGETS_ENV,
    TIMEOUT_ENV,
    USERNAME_ENV,
    VerifyEnvironment,
    load,
    load_signal_url,
    parse_target,
    secret_forms,
    sign_in_as_admin,
)
from mlflow_launcher.verify.tls import connecting_to, trusting

__all__ = [
    "ADMIN_SECRET_ENV",
    "BROWSER_PATH",
    "HOST_CHECK_PATH",
    "LOGS_COMMAND_ENV",
    "PASSWORD_ENV",
    "SIGNAL_URL_ENV",
    "TARGETS_ENV",
    "TIMEOUT_ENV",
    "UNIQUE_ID",
    "USERNAME_ENV",
    "VerifyEnvironment",
    "check_browser_write",
    "check_host",
    "exercise_client",
    "first_line",
    "load",
    "load_signal_url",
    "one_line",
    "parse_target",
    "run",
    "secret_forms",
    "send_signal",
    "short_error",
    "sign_in_as_admin",
    "verify_target",
    "wait_healthy",
]

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 1000  # a stack event's reason, read in a console: short, whatever the cause


class _Stopped(BaseException):
    """SIGTERM: the Job's deadline passed or the Job was deleted. Not an Exception, so that no
    `except Exception` on the way (the MLflow client has some) swallows it."""


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


def run(env: Mapping[str, str], log_secrets: MutableSequence[str]) -> None:
    """Verify every target, then signal CloudFormation (when asked) exactly once.

    `log_secrets` is the log filter's list of values to mask; the signal URL and the tracking
    password join it before anything is logged.
    """
    log_secrets.extend(secret_forms(env))
    signal_url = load_signal_url(env)
    outcomes: dict[str, str] = {}  # target -> "ok (2.1 s)" | "failed" | "not checked"
    start = time.monotonic()
    # Killed at the Job's deadline, the check still tells CloudFormation (in the grace period)
    # rather than leaving the stack waiting for the wait condition's own timeout.
    previous_handler = signal.signal(signal.SIGTERM, _stop)
    try:
        settings = load(env)
        rollout = settings.rollout
        steps = [f"deployment {rollout.namespace}/{rollout.name}"] if rollout else []
        outcomes.update(dict.fromkeys([*steps, *settings.targets], "not checked"))
        if rollout is not None:
            outcomes[steps[0]] = "failed"
            step_start = time.monotonic()
            wait_for_rollout(KubernetesApi.in_cluster(env, log_secrets), rollout)
            outcomes[steps[0]] = f"ok ({time.monotonic() - step_start:.1f} s)"
        # After the rollout: a new IAM grant on the admin secret has had time to take effect.
        settings = sign_in_as_admin(settings, env, log_secrets)
        with connecting_to(settings.connect_to), trusting(settings.ca_bundle):
            for target in settings.targets:
                outcomes[target] = "failed"
                target_start = time.monotonic()
                verify_target(target, settings)
                outcomes[target] = f"ok ({time.monotonic() - target_start:.1f} s)"
    except (Exception, _Stopped) as exc:
        reason, error = _failure(exc, outcomes, env.get(LOGS_COMMAND_ENV, "").strip())
        if signal_url:
            try:
                send_signal(signal_url, "FAILURE", reason, _data(outcomes) or reason)
            except LauncherError as signal_error:
                log.error("%s", signal_error)
        if error is None:
            raise
        raise error from exc
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    names = ", ".join(settings.targets)
    log.info("verify ok: MLflow works under %s (%.1f s)", names, time.monotonic() - start)
    if signal_url:
        try:
            send_signal(signal_url, "SUCCESS", f"MLflow works under {names}", _data(outcomes))
        except LauncherError as exc:
            raise LauncherError(f"MLflow works, but {exc}") from exc


def _failure(
    exc: BaseException, outcomes: Mapping[str, str], logs_command: str
) -> tuple[str, LauncherError | None]:
    """The one-line reason, and the error to exit with (None: re-raise, a bug)."""
    if isinstance(exc, _Stopped):
        checking = next((t for t, o in outcomes.items() if o == "failed"), "the settings")
        reason = (
            f"stopped by SIGTERM while checking {checking} (the Job's deadline passed, "
            "or the Job was deleted)"
        )
        error_type: type[LauncherError] | None = VerificationFailed
    elif isinstance(exc, LauncherError):
        reason, error_type = one_line(str(exc), limit=MAX_REASON_CHARS), type(exc)
    else:  # a bug must still fail the deploy now, not at the wait condition's timeout
        reason, error_type = f"verify crashed: {short_error(exc)}", None
    if logs_command:
        reason += f" (logs: {logs_command})"
    return reason, error_type(reason) if error_type else None


def _data(outcomes: Mapping[str, str]) -> str:
    return "; ".join(f"{target} {outcome}" for target, outcome in outcomes.items())


def verify_target(target: str, settings: VerifyEnvironment) -> None:
    """The four checks on one target, within one deadline; VerificationFailed with the reason
    at the first failure that is not transient, or at the deadline with the last one."""
    deadline = time.monotonic() + settings.timeout_seconds
    auth = _auth_headers(settings.credentials)
    with _step(target, "/health answering"):
        wait_healthy(target, deadline, settings)
    with _step(target, "Host accepted on the API"):
        check_host(target, deadline, settings, auth)
    with _step(target, "browser-style write accepted"):
        check_browser_write(target, deadline, settings, auth)
    exercise_client(target, deadline)
