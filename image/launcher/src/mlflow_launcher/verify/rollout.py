"""Wait until the server's Deployment has rolled out the pod template this deploy applied.

The deploy applies the check's Job only after `kubectl apply` of the workload has returned, so
the Deployment the API serves already holds this deploy's template; the Job waits here, inside
the cluster, instead of CloudFormation waiting through a kubectl read. A read that waits is a
hazard in a rollback: CloudFormation calls it again with the previous properties while the new,
failing template is still applied, and it waits again until it fails (UPDATE_ROLLBACK_FAILED).

Complete, as `kubectl rollout status` and the Deployment controller define it (Kubernetes docs,
Deployments, "Complete Deployment"; kubectl's polymorphichelpers/rollout_status.go; the
controller's deploymentutil.DeploymentComplete): the controller has observed this generation
(status.observedGeneration >= metadata.generation), every replica is updated and available
(updatedReplicas == replicas == availableReplicas == spec.replicas, no unavailableReplicas), and
the Progressing condition says NewReplicaSetAvailable.

It fails on what will not get better by waiting: the Progressing condition's
ProgressDeadlineExceeded (no progress for spec.progressDeadlineSeconds, which the chart sizes to
one pod's slowest start), a container of a new pod crash-looping CRASH_LOOP_RESTARTS times (each
start of the launcher already outlasts its own bounded waits: a database failover is over by the
second), a template this deploy did not apply, no replicas at all, or the API refusing the Job's
ServiceAccount; and on its own budget's end. The reason names the pod and container that hold
the rollout up, with the kubelet's reason and the container's last message.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlflow_launcher.errors import VerificationFailed
from mlflow_launcher.verify.kubernetes import (
    ApiError,
    KubernetesApi,
    deployment_path,
    label_selector,
    pods_path,
)
from mlflow_launcher.verify.messages import one_line, short_error
from mlflow_launcher.verify.settings import RolloutEnvironment

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
CRASH_LOOP_RESTARTS = 3
"""A container of a new pod restarted this often and back-off waiting again: it will not start."""
MAX_PODS_NAMED = 3
COMPLETE_REASON = "NewReplicaSetAvailable"
DEADLINE_REASON = "ProgressDeadlineExceeded"
# Waiting reasons of a container that is merely on its way (kubelet: ContainerCreating while the
# image is pulled and the sandbox made, PodInitializing while init containers run).
_STARTING = frozenset({"ContainerCreating", "PodInitializing"})
# Init containers first: they run before the others, which wait in PodInitializing meanwhile.
_CONTAINER_KINDS = (("init container", "initContainerStatuses"), ("container", "containerStatuses"))


class _Persistent(Exception):
    """A state the rollout will not leave by itself; the message is the reason."""


@dataclass(frozen=True)
class _Progress:
    complete: bool
    summary: str
    """Where the rollout stands, in kubectl's words."""


def wait_for_rollout(
    api: KubernetesApi,
    rollout: RolloutEnvironment,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once the rollout is complete; VerificationFailed with the reason otherwise."""
    name = f"deployment {rollout.namespace}/{rollout.name}"
    deadline = clock() + rollout.timeout_seconds
    logged = ""
    while True:
        try:
            state = _state(api, rollout)
        except _Persistent as exc:
            raise VerificationFailed(f"{name} {exc}") from None
        except ApiError as exc:
            if not exc.transient:
                raise VerificationFailed(_refused(exc, name)) from None
            state = f"the Kubernetes API answered {exc.status}: {exc.message}"
        except ssl.SSLCertVerificationError as exc:
            raise VerificationFailed(f"the Kubernetes API: TLS: {short_error(exc)}") from None
        except (OSError, http.client.HTTPException) as exc:
            state = f"the Kubernetes API did not answer: {short_error(exc)}"
        if state is None:
            log.info("verify: %s rolled out", name)
            return
        if clock() >= deadline:
            raise VerificationFailed(
                f"{name} did not finish rolling out within {rollout.timeout_seconds:g} s: {state}"
            )
        if state != logged:
            log.info("verify: waiting for %s: %s", name, state)
            logged = state
        sleep(max(0.0, min(POLL_SECONDS, deadline - clock())))


def _state(api: KubernetesApi, rollout: RolloutEnvironment) -> str | None:
    """None once complete, else where it stands (and what holds it up); _Persistent for what
    waiting will not change."""
    deployment = api.get(deployment_path(rollout.namespace, rollout.name))
    other = _other_template(deployment, rollout)
    if other:
        raise _Persistent(
            f"runs a pod template this deploy did not apply ({other}): another deploy, a "
            "rollback or a manual change replaced it"
        )
    if _spec_replicas(deployment) == 0:
        # Complete by every count, and nothing serves; the autoscaler leaves a target scaled
        # to zero alone (Kubernetes docs, HorizontalPodAutoscaler, "Implicit maintenance-mode
        # deactivation"), so waiting changes nothing.
        raise _Persistent(
            f"is scaled to 0 replicas, so nothing serves: scale it up (kubectl -n "
            f"{rollout.namespace} scale deployment/{rollout.name} --replicas=<n>)"
        )
    progress = _progress(deployment)
    if progress.complete:
        return None
    pods = api.get(
        pods_path(rollout.namespace),
        {"labelSelector": label_selector(_match_labels(deployment))},
    ).get("items", [])
    problems = [p for p in map(_pod_problem, _new_pods(pods, rollout)) if p is not None]
    failure = _condition(deployment, "ReplicaFailure")
    if failure and failure.get("status") == "True":
        problems.insert(0, (f"pods cannot be created: {_message(failure)}", False))
    named = "; ".join(text for text, _ in problems[:MAX_PODS_NAMED])
    stuck = [text for text, persistent in problems if persistent]
    if stuck:
        raise _Persistent(f"cannot roll out: {stuck[0]}")
    progressing = _condition(deployment, "Progressing")
    if _observed(deployment) and progressing and progressing.get("reason") == DEADLINE_REASON:
        seconds = deployment.get("spec", {}).get("progressDeadlineSeconds")
        raise _Persistent(
            f"made no progress for its progress deadline ({seconds} s): {progress.summary}"
            + (f"; {named}" if named else "")
        )
    return progress.summary + (f" ({named})" if named else "")


def _observed(deployment: Mapping[str, Any]) -> bool:
    generation = deployment.get("metadata", {}).get("generation", 0)
    return deployment.get("status", {}).get("observedGeneration", 0) >= generation


def _spec_replicas(deployment: Mapping[str, Any]) -> int:
    replicas = deployment.get("spec", {}).get("replicas")
    return 1 if replicas is None else int(replicas)  # the API's default


def _progress(deployment: Mapping[str, Any]) -> _Progress:
    """kubectl rollout status's steps, then the controller's own verdict (the condition)."""
    if not _observed(deployment):
        return _Progress(False, "the Deployment controller has not yet seen the new template")
    status = deployment.get("status", {})
    want = _spec_replicas(deployment)
    updated, replicas = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < want:
        return _Progress(False, f"{updated} of {want} new pods created")
    if replicas > updated:
        return _Progress(False, f"{replicas - updated} old pods still to be stopped")
    if available < updated:
        return _Progress(False, f"{available} of {updated} new pods available")
    if status.get("unavailableReplicas", 0):
        return _Progress(False, f"{status['unavailableReplicas']} pods unavailable")
    progressing = _condition(deployment, "Progressing") or {}
    if progressing.get("reason") != COMPLETE_REASON:
        reason = progressing.get("reason") or "no Progressing condition"
        return _Progress(False, f"all pods available, the controller not yet done ({reason})")
    return _Progress(True, "complete")


def _condition(deployment: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = deployment.get("status", {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def _match_labels(deployment: Mapping[str, Any]) -> dict[str, str]:
    return dict(deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {})


def _images(spec: Mapping[str, Any]) -> set[str]:
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return {c.get("image", "") for c in containers}


def _other_template(deployment: Mapping[str, Any], rollout: RolloutEnvironment) -> str:
    """What differs between the Deployment's pod template and this deploy's ('' if nothing)."""
    template = deployment.get("spec", {}).get("template", {})
    return _differences(template.get("metadata", {}), template.get("spec", {}), rollout)


def _differences(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], rollout: RolloutEnvironment
) -> str:
    found = []
    images = _images(spec)
    if images != {rollout.image}:
        found.append(f"image {', '.join(sorted(images))}, not {rollout.image}")
    if rollout.annotation is not None:
        key, value = rollout.annotation
        actual = (metadata.get("annotations") or {}).get(key)
        if actual != value:
            found.append(f"{key} {actual or '(none)'}, not {value}")
    return "; ".join(found)


def _new_pods(pods: Iterable[Mapping[str, Any]], rollout: RolloutEnvironment) -> list[dict]:
    """The pods of this deploy's template: a pod carries its template's annotations and
    images, so no ReplicaSet needs reading (nor the permission to)."""
    return [
        dict(pod)
        for pod in pods
        if not _differences(pod.get("metadata", {}), pod.get("spec", {}), rollout)
        and not pod.get("metadata", {}).get("deletionTimestamp")
    ]


def _pod_problem(pod: Mapping[str, Any]) -> tuple[str, bool] | None:
    """(what holds this pod up, whether it is persistent), or None for a ready pod."""
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status", {})
    scheduled = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    if scheduled and scheduled.get("status") == "False":
        reason = scheduled.get("reason")
        return f"pod {name}: not scheduled ({reason}): {_message(scheduled)}", False
    for kind, key in _CONTAINER_KINDS:
        for container in status.get(key) or []:
            problem = _container_problem(container, init=kind == "init container")
            if problem is not None:
                text, persistent = problem
                return f"pod {name}: {kind} {container.get('name')} {text}", persistent
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready and ready.get("status") == "True":
        return None
    return f"pod {name}: {status.get('phase', 'Pending')}, not ready", False


def _container_problem(container: Mapping[str, Any], *, init: bool) -> tuple[str, bool] | None:
    state = container.get("state") or {}
    restarts = int(container.get("restartCount") or 0)
    last = _terminated(container.get("lastState", {}).get("terminated"))
    if "terminated" in state:
        if state["terminated"].get("exitCode") == 0:
            return None
        text = _terminated(state["terminated"])
    elif "waiting" in state:
        waiting = state["waiting"]
        reason = waiting.get("reason") or "waiting"
        if reason in _STARTING and not last:
            return None  # on its way; the pod-level line says not ready if it stays so
        text = f"{reason}" + (f": {one_line(waiting['message'])}" if waiting.get("message") else "")
        if reason == "CrashLoopBackOff" and restarts >= CRASH_LOOP_RESTARTS:
            return _with(text, restarts, last), True
    elif "running" in state:
        if init:
            text = "running (it must finish before the server starts)"
        elif container.get("ready"):
            return None
        else:
            text = "running, not ready"
    else:
        return None
    return _with(text, restarts, last), False


def _with(text: str, restarts: int, last: str) -> str:
    if restarts:
        text += f", {restarts} restart{'s' if restarts > 1 else ''}"
    return text + (f"; last exit {last}" if last else "")


def _terminated(terminated: Mapping[str, Any] | None) -> str:
    """`2 (Error): <the container's last message>`; the message is the termination log (the
    launcher writes its error there), else the kubelet's last log lines with
    FallbackToLogsOnError: its last non-empty line either way."""
    if not terminated:
        return ""
    text = f"{terminated.get('exitCode')} ({terminated.get('reason') or 'terminated'})"
    lines = [line for line in (terminated.get("message") or "").splitlines() if line.strip()]
    return text + (f": {one_line(lines[-1])}" if lines else "")


def _message(condition: Mapping[str, Any]) -> str:
    return one_line(condition.get("message") or condition.get("reason") or "no message")


def _refused(exc: ApiError, name: str) -> str:
    if exc.status == 404:
        return f"{name} does not exist (the Kubernetes API answered 404: {exc.message})"
    if exc.status in (401, 403):
        return (
            f"the Kubernetes API refused the deploy check's ServiceAccount ({exc.status}: "
            f"{exc.message}): its Role must allow get on {name} and list on pods"
        )
    return f"the Kubernetes API answered {exc.status} for {exc.path}: {exc.message}"
