"""The deploy check waits for the rollout itself, through the Kubernetes API (verify.rollout),
against a local fake of the API server over HTTPS (tests/fake_kubernetes.py: the objects as
the API reference documents them). Each case is a state a real rollout passes through or ends
in; the clock is the test's, so a budget of minutes costs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlflow_launcher import cli
from mlflow_launcher.errors import LauncherError, VerificationFailed
from mlflow_launcher.verify import rollout, settings
from mlflow_launcher.verify.kubernetes import KubernetesApi
from tests.fake_kubernetes import (
    ANNOTATION,
    IMAGE,
    NAME,
    NAMESPACE,
    OLD_IMAGE,
    State,
    condition,
    deployment,
    failed,
    fake_kubernetes,
    pod,
    running,
    status_object,
    terminated_ok,
    waiting,
)
from tests.unit.launcher.test_launcher_verify import QUERY, _run_cli, fake_http

SETTINGS = settings.RolloutEnvironment(NAMESPACE, NAME, IMAGE, ANNOTATION, timeout_seconds=600)
ROLLING = "deployment mlflow/mlflow"
MIGRATE_ERROR = (
    "2026-05-20 14:19:33,120 mlflow-launcher ERROR the database schema is at revision "
    "ffffffffffff, which this image's MLflow (3.17.2, head 1b5f0d9ad7c1) does not know"
)
COMPLETE = State(deployment(), [pod("mlflow-5d4f8c9b7-a1"), pod("mlflow-5d4f8c9b7-b2")])


class Clock:
    """time.monotonic and time.sleep for the wait: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1


def wait(states: list[State], tmp_path: Path, rollout_settings=SETTINGS):
    """Run the wait against the fake; (the fake, the clock, the error or None)."""
    clock = Clock()
    with fake_kubernetes(states, tmp_path) as fake:
        api = KubernetesApi.in_cluster(fake.env(), [])
        try:
            rollout.wait_for_rollout(api, rollout_settings, clock=clock, sleep=clock.sleep)
        except VerificationFailed as exc:
            return fake, clock, str(exc)
    return fake, clock, None


# ---------------------------------------------------------------- complete -------------------


def test_a_complete_rollout_returns_at_once_as_the_pods_service_account(tmp_path):
    fake, clock, error = wait([COMPLETE], tmp_path)
    assert error is None
    assert clock.sleeps == 0
    # One read of the Deployment, with the mounted token; nothing else is needed.
    [(path, query, auth)] = fake.requests
    assert path == f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}"
    assert query == {} and auth == f"Bearer {fake.token}"


@pytest.mark.parametrize(
    ("stage", "summary"),
    [
        # Applied, not yet seen by the controller: its counts are the previous rollout's.
        (deployment(generation=5, observed=4), "the Deployment controller has not yet seen"),
        (deployment(updated=1, current=3, available=2, progressing="ReplicaSetUpdated"), "1 of 2"),
        (deployment(updated=2, current=3, available=2, progressing="ReplicaSetUpdated"), "1 old"),
        (deployment(updated=2, current=2, available=1, progressing="ReplicaSetUpdated"), "1 of 2"),
        # Every count right, the controller's verdict not in yet.
        (deployment(progressing="ReplicaSetUpdated"), "the controller not yet done"),
    ],
)
def test_each_stage_of_a_rollout_is_waited_out(tmp_path, caplog, stage, summary):
    caplog.set_level("INFO")
    fake, clock, error = wait([State(stage, [pod("mlflow-5d4f8c9b7-a1")]), COMPLETE], tmp_path)
    assert error is None
    assert fake.reads == 2 and clock.sleeps == 1
    assert f"waiting for {ROLLING}: " in caplog.text
    assert summary in caplog.text


def test_the_api_server_failing_over_is_waited_out(tmp_path):
    unavailable = (503, status_object(503, "ServiceUnavailable", "the server is shutting down"))
    _, clock, error = wait([State(unavailable), State(unavailable), COMPLETE], tmp_path)
    assert error is None and clock.sleeps == 2


def test_a_rotated_token_is_read_again(tmp_path):
    """The kubelet refreshes a projected token before it expires; the client must follow."""
    clock = Clock()
    with fake_kubernetes([State(deployment(available=1)), COMPLETE], tmp_path) as fake:
        api = KubernetesApi.in_cluster(fake.env(), [])
        old = fake.token

        def rotate(seconds: float) -> None:
            clock.sleep(seconds)
            fake.token = "rotated-" + old
            (fake.directory / "token").write_text(fake.token)

        rollout.wait_for_rollout(api, SETTINGS, clock=clock, sleep=rotate)
    auths = [auth for path, _, auth in fake.requests if path.endswith(f"/deployments/{NAME}")]
    assert auths == [f"Bearer {old}", f"Bearer rotated-{old}"]


# ---------------------------------------------------------------- what fails -----------------


def test_a_crash_loop_fails_with_the_container_and_its_last_message(tmp_path):
    crashing = pod(
        "mlflow-5d4f8c9b7-a1",
        init=[
            waiting(
                "migrate",
                "CrashLoopBackOff",
                "back-off 40s restarting failed container=migrate pod=mlflow-5d4f8c9b7-a1",
                restarts=rollout.CRASH_LOOP_RESTARTS,
                last_exit=(2, f"some earlier line\n{MIGRATE_ERROR}\n"),
            )
        ],
        containers=[waiting("server", "PodInitializing"), waiting("metrics", "PodInitializing")],
    )
    stuck = State(deployment(updated=1, current=3, available=2), [crashing])
    _, clock, error = wait([stuck], tmp_path)
    assert error == (
        f"{ROLLING} cannot roll out: pod mlflow-5d4f8c9b7-a1: init container migrate "
        "CrashLoopBackOff: back-off 40s restarting failed container=migrate "
        f"pod=mlflow-5d4f8c9b7-a1, {rollout.CRASH_LOOP_RESTARTS} restarts; last exit 2 (Error): "
        f"{MIGRATE_ERROR}"
    )
    assert clock.sleeps == 0


def test_a_restart_or_two_is_not_yet_a_failure(tmp_path):
    """A pod that started during a database failover exits after its database wait and
    starts again: that is the rollout going on."""
    restarted = pod(
        "mlflow-5d4f8c9b7-a1",
        init=[
            waiting(
                "migrate",
                "CrashLoopBackOff",
                "back-off 10s",
                restarts=rollout.CRASH_LOOP_RESTARTS - 1,
                last_exit=(2, "waited 90 s for the database"),
            )
        ],
    )
    _, clock, error = wait([State(deployment(available=1), [restarted]), COMPLETE], tmp_path)
    assert error is None and clock.sleeps == 1


def test_the_progress_deadline_fails_naming_what_holds_the_pods(tmp_path):
    pulling = pod(
        "mlflow-5d4f8c9b7-a1",
        containers=[
            waiting(
                "server",
                "ImagePullBackOff",
                f'Back-off pulling image "{IMAGE}"',
            ),
            waiting("metrics", "ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'),
        ],
    )
    old = pod("mlflow-7c6b5a4d3-z9", image=OLD_IMAGE)  # serving still; not the rollout's
    stalled = deployment(updated=1, current=3, available=2, progressing="ProgressDeadlineExceeded")
    _, _, error = wait([State(stalled, [old, pulling])], tmp_path)
    assert error == (
        f"{ROLLING} made no progress for its progress deadline (2400 s): 1 of 2 new pods "
        "created; pod mlflow-5d4f8c9b7-a1: container server ImagePullBackOff: Back-off "
        f'pulling image "{IMAGE}"'
    )


def test_unschedulable_pods_are_named_when_the_budget_ends(tmp_path):
    message = (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    pending = pod("mlflow-5d4f8c9b7-a1", unschedulable=message)
    short = settings.RolloutEnvironment(NAMESPACE, NAME, IMAGE, ANNOTATION, timeout_seconds=30)
    stuck = State(deployment(updated=1, current=3, available=2), [pending])
    _, clock, error = wait([stuck], tmp_path, short)
    assert error == (
        f"{ROLLING} did not finish rolling out within 30 s: 1 of 2 new pods created (pod "
        f"mlflow-5d4f8c9b7-a1: not scheduled (Unschedulable): {message})"
    )
    assert clock.now == 1030.0  # it waited its whole budget, polling


def test_pods_that_cannot_be_created_are_named(tmp_path):
    refused = condition(
        "ReplicaFailure",
        "True",
        "FailedCreate",
        'pods "mlflow-5d4f8c9b7-x" is forbidden: violates PodSecurity "restricted:latest"',
    )
    stuck = deployment(updated=0, current=2, available=2, extra_conditions=[refused])
    short = settings.RolloutEnvironment(NAMESPACE, NAME, IMAGE, ANNOTATION, timeout_seconds=5)
    _, _, error = wait([State(stuck)], tmp_path, short)
    assert error is not None
    assert "0 of 2 new pods created (pods cannot be created: pods " in error
    assert 'violates PodSecurity "restricted:latest")' in error


def test_a_template_this_deploy_did_not_apply_fails_at_once(tmp_path):
    """The Job is applied after the workload: another template means another apply (a manual
    change, a rollback) replaced this deploy's, which no wait undoes."""
    other = deployment(image=OLD_IMAGE, annotation=(ANNOTATION[0], "fedcba9876543210"))
    _, clock, error = wait([State(other)], tmp_path)
    assert error == (
        f"{ROLLING} runs a pod template this deploy did not apply (image {OLD_IMAGE}, not "
        f"{IMAGE}; {ANNOTATION[0]} fedcba9876543210, not {ANNOTATION[1]}): another deploy, a "
        "rollback or a manual change replaced it"
    )
    assert clock.sleeps == 0


def test_no_replicas_fails_at_once_saying_how_to_scale_up(tmp_path):
    _, _, error = wait([State(deployment(replicas=0, updated=0, current=0, available=0))], tmp_path)
    assert error == (
        f"{ROLLING} is scaled to 0 replicas, so nothing serves: scale it up (kubectl -n mlflow "
        "scale deployment/mlflow --replicas=<n>)"
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            (403, status_object(403, "Forbidden", 'deployments.apps "mlflow" is forbidden')),
            "the Kubernetes API refused the deploy check's ServiceAccount (403: "
            'deployments.apps "mlflow" is forbidden): its Role must allow get on '
            f"{ROLLING} and list on pods",
        ),
        (
            (404, status_object(404, "NotFound", 'deployments.apps "mlflow" not found')),
            f'{ROLLING} does not exist (the Kubernetes API answered 404: deployments.apps "mlflow" '
            "not found)",
        ),
    ],
)
def test_a_refusal_fails_at_once(tmp_path, answer, reason):
    _, clock, error = wait([State(answer)], tmp_path)
    assert error == reason and clock.sleeps == 0


def test_an_api_server_that_is_not_the_clusters_is_refused(tmp_path):
    with fake_kubernetes([COMPLETE], tmp_path) as fake:
        (fake.directory / "ca.crt").write_text(
            (tmp_path / "tls" / "apiserver.crt").read_text()  # not the CA that signed it
        )
        api = KubernetesApi.in_cluster(fake.env(), [])
        with pytest.raises(VerificationFailed, match=r"^the Kubernetes API: TLS: "):
            rollout.wait_for_rollout(api, SETTINGS, clock=Clock(), sleep=Clock().sleep)
    assert fake.requests == []


def test_no_token_mounted_is_a_clear_error(tmp_path):
    with fake_kubernetes([COMPLETE], tmp_path) as fake:
        (fake.directory / "token").unlink()
        with pytest.raises(LauncherError) as caught:
            KubernetesApi.in_cluster(fake.env(), [])
    assert str(caught.value) == (
        f"no ServiceAccount token in {fake.directory}: this command's pod needs its API "
        "token mounted (automountServiceAccountToken: true)"
    )


# ---------------------------------------------------------------- settings -------------------


def test_the_rollout_settings_are_read_and_checked_all_at_once():
    env = {
        settings.TARGETS_ENV: "http://mlflow.mlflow.svc.cluster.local",
        settings.DEPLOYMENT_ENV: NAME,
        settings.POD_ANNOTATION_ENV: "no-equals-sign",
        settings.ROLLOUT_TIMEOUT_ENV: "-1",
    }
    with pytest.raises(LauncherError) as caught:
        settings.load(env)
    assert str(caught.value) == (
        f"{settings.NAMESPACE_ENV} is not set ({settings.DEPLOYMENT_ENV} names a Deployment to "
        f"wait for); {settings.IMAGE_ENV} is not set ({settings.DEPLOYMENT_ENV} names a "
        f"Deployment to wait for); {settings.POD_ANNOTATION_ENV}='no-equals-sign' is not "
        f"<annotation>=<value>; {settings.ROLLOUT_TIMEOUT_ENV} must be a positive number of "
        "seconds, got '-1'"
    )
    env |= {
        settings.NAMESPACE_ENV: NAMESPACE,
        settings.IMAGE_ENV: IMAGE,
        settings.POD_ANNOTATION_ENV: "=".join(ANNOTATION),
        settings.ROLLOUT_TIMEOUT_ENV: "2400",
    }
    loaded = settings.load(env).rollout
    assert loaded == settings.RolloutEnvironment(NAMESPACE, NAME, IMAGE, ANNOTATION, 2400.0)
    assert settings.load({settings.TARGETS_ENV: "http://x"}).rollout is None


# ---------------------------------------------------------------- as the Job runs it ---------


def test_a_failed_rollout_is_signalled_before_any_target_is_checked(monkeypatch, capfd, tmp_path):
    monkeypatch.setattr(rollout, "POLL_SECONDS", 0.01)
    stalled = deployment(updated=1, current=3, available=2, progressing="ProgressDeadlineExceeded")
    crashing = pod("mlflow-5d4f8c9b7-a1", init=[failed("migrate", 2, MIGRATE_ERROR, restarts=1)])
    with (
        fake_kubernetes([State(stalled, [crashing])], tmp_path) as fake,
        fake_http({("PUT", f"/handle?{QUERY}"): [(200, "")]}) as receiver,
    ):
        code, err = _run_cli(
            monkeypatch,
            capfd,
            {
                **fake.env(),
                settings.TARGETS_ENV: "http://mlflow.mlflow.svc.cluster.local",
                settings.SIGNAL_URL_ENV: f"{receiver.url}/handle?{QUERY}",
                settings.DEPLOYMENT_ENV: NAME,
                settings.NAMESPACE_ENV: NAMESPACE,
                settings.IMAGE_ENV: IMAGE,
                settings.POD_ANNOTATION_ENV: "=".join(ANNOTATION),
            },
        )
        token = fake.token
    assert code == 3
    [sent] = receiver.requests
    signal = json.loads(sent.body)
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"] == (
        f"{ROLLING} made no progress for its progress deadline (2400 s): 1 of 2 new pods created; "
        f"pod mlflow-5d4f8c9b7-a1: init container migrate 2 (Error): {MIGRATE_ERROR}, 1 restart"
    )
    assert signal["Data"] == (
        f"{ROLLING} failed; http://mlflow.mlflow.svc.cluster.local not checked"
    )
    assert token not in err
    cli.log.error("after the run: %s", token)  # the token stays masked in this process
    assert "after the run: ***" in capfd.readouterr().err


def test_running_pods_of_a_complete_rollout_need_no_pod_reads(tmp_path):
    """Init containers done, containers ready: no problem to name."""
    ready = pod(
        "mlflow-5d4f8c9b7-a1",
        init=[terminated_ok("migrate")],
        containers=[running("server"), running("metrics")],
    )
    fake, _, error = wait([State(deployment(), [ready])], tmp_path)
    assert error is None
    assert [path for path, _, _ in fake.requests if path.endswith("/pods")] == []
