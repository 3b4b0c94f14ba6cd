"""MLflow's GenAI jobs as the chart runs them (issue 22), on MariaDB and on PostgreSQL, sign-in
on: two API pods (MLFLOW_JOB_ROLE=submit) and the one job runner (MLFLOW_JOB_ROLE=run) sharing
one database, each in a pod home of its own.

A scorer run goes to API pod A by the UI's endpoint and is read through API pod B while the
runner runs it; an online-scoring config runs once per deployment; a runner killed (SIGKILL,
on MariaDB) or stopped (SIGTERM, on PostgreSQL) mid-job loses no job; `off` answers MLflow's
"not enabled" and `submit` without a runner leaves a job PENDING; the pods' memory (PSS) by
role.

The scorers are code-based (`@scorer`, no LLM), so MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS is on
here (jobs.custom_scorers). One set of processes per engine for the module.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import itest_launcher as launcher
import itest_otlp
import pytest
from itest_auth import Deployment, Response, client_env, deployed, send
from itest_chart import runner_container
from itest_hostile import tree_pss_mib
from opentelemetry.sdk.trace.export import SpanExportResult

pytestmark = pytest.mark.integration

CONFIG_FOR_ENGINE = {"mysql": "default", "postgres": "postgres"}
JOBS_API = "/ajax-api/3.0/jobs"
INVOKE_SCORER = "/ajax-api/3.0/mlflow/scorer/invoke"
CREATE_EXPERIMENT = "/api/2.0/mlflow/experiments/create"
REGISTER_SCORER = "/ajax-api/3.0/mlflow/scorers/register"
ONLINE_CONFIG = "/ajax-api/3.0/mlflow/scorers/online-config"
GATEWAY_API = "/ajax-api/3.0/mlflow/gateway"
CUSTOM_SCORERS = {"MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS": "true"}
API_ENV = {
    **CUSTOM_SCORERS,
    # The stand-in LLM provider listens on loopback over HTTP; MLflow's gateway takes public
    # HTTPS upstreams only unless told otherwise (mlflow/utils/validation.py
    # `_validate_gateway_api_base`).
    "MLFLOW_GATEWAY_API_BASE_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true",
}
RUNNER_ENV = {
    **API_ENV,
    # Online scoring leaves traces younger than this alone, waiting for them to finish (default
    # 300 s: mlflow/genai/scorers/online/trace_checkpointer.py); these are finished at once.
    "MLFLOW_ONLINE_SCORING_DEFAULT_TRACE_COMPLETION_BUFFER_SECONDS": "0",
}
TRACE_ARCHIVE = "trace-archive"
ARCHIVED_SPANS = ["agent", "retrieve", "generate"]
FINISHED = {"SUCCEEDED", "FAILED", "TIMEOUT", "CANCELED"}
# The online-scoring scheduler runs each minute (crontab(minute="*/1"): mlflow/server/jobs/
# utils.py `register_periodic_tasks`), and no variable shortens it: a minute and its job.
ONLINE_WAIT_SECONDS = 150

_TRACES = r"""
# The real MLflow client logs traces as an application would; prints their ids.
import json, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
engine, result = sys.argv[2], {}
for name in sys.argv[3:]:
    experiment = mlflow.set_experiment(name)
    ids = []
    for i in range(3):
        with mlflow.start_span(name="answer") as span:
            span.set_inputs({"question": f"q{i}"})
            span.set_outputs(f"answer number {i} of {name} on {engine}")
        ids.append(span.trace_id)
    result[name] = {"experiment_id": experiment.experiment_id, "trace_ids": ids}
mlflow.flush_trace_async_logging()
print(json.dumps(result))
"""


def code_scorer(name: str, body: str) -> str:
    """A `@scorer` function as MLflow serializes it (Scorer.model_dump): its body as source,
    run by the job runner only (mlflow/genai/scorers/base.py)."""
    return json.dumps(
        {
            "name": name,
            "aggregations": None,
            "description": None,
            "is_session_level_scorer": False,
            "timeout": None,
            "mlflow_version": "3.17.2",
            "serialization_version": 1,
            "builtin_scorer_class": None,
            "builtin_scorer_pydantic_data": None,
            "call_source": body,
            "call_signature": "(outputs) -> int",
            "original_func_name": name,
            "instructions_judge_pydantic_data": None,
            "memory_augmented_judge_data": None,
            "third_party_scorer_data": None,
            "ensemble_scorer_data": None,
        }
    )


LENGTH = "return len(str(outputs))"
ONLINE_JUDGE = "online_quality"
JUDGE_ENDPOINT = "judge-endpoint"


def judge() -> str:
    """An LLM judge on an AI Gateway endpoint, as MLflow serializes one (make_judge(...).
    model_dump()): online scoring takes gateway-model scorers only (sqlalchemy_store.py
    `upsert_online_scoring_config`). The endpoint is not there, so each trace gets the judge's
    error as its assessment: what the gateway answered the job, which had to pass the
    server's Host check and sign-in on the way (the runner's address and gateway token)."""
    return json.dumps(
        {
            "name": ONLINE_JUDGE,
            "aggregations": ["mean"],
            "description": None,
            "is_session_level_scorer": False,
            "timeout": 0,
            "mlflow_version": "3.17.2",
            "serialization_version": 1,
            "builtin_scorer_class": None,
            "builtin_scorer_pydantic_data": None,
            "call_source": None,
            "call_signature": None,
            "original_func_name": None,
            "instructions_judge_pydantic_data": {
                "instructions": "Is {{ outputs }} a good answer?",
                "model": f"gateway:/{JUDGE_ENDPOINT}",
                "feedback_value_type": {"title": "Result", "type": "boolean"},
            },
            "memory_augmented_judge_data": None,
            "third_party_scorer_data": None,
            "ensemble_scorer_data": None,
        }
    )


def held(directory: Path) -> str:
    """A scorer that marks its start (one file per run, so a re-run is seen) and runs until
    the test removes `directory`/hold (at most two minutes)."""
    return (
        "import os, pathlib, time\n"
        f"d = pathlib.Path({str(directory)!r})\n"
        "(d / f'started-{os.getpid()}').touch()\n"
        "deadline = time.monotonic() + 120\n"
        "while (d / 'hold').exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.1)\n"
        "return len(str(outputs))"
    )


class FakeLlm(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that judges every answer good, counting the calls
    by the answer judged (the trace's output appears in the prompt)."""

    calls: ClassVar[Counter] = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with self.lock:
            FakeLlm.calls.update(set(re.findall(r"answer number \d+ of \w+ on \w+", body)))
        verdict = json.dumps({"result": True, "rationale": "a fine answer"})
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": verdict},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLlm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


@dataclass
class Pods:
    d: Deployment
    api: list[launcher.Server]
    runner: launcher.Server
    traces: dict
    """By experiment name: experiment_id, trace_ids."""
    online_registered_ms: int
    runner_env: dict[str, str] = field(default_factory=dict)
    """The runner pod's changes: RUNNER_ENV and trace archival."""
    archival: dict[str, str] = field(default_factory=dict)
    """The archival test's traces (`old`, `recent`) and where archived spans go (`prefix`)."""
    starts: int = 0
    stopped: list[launcher.Server] = field(default_factory=list)
    off: launcher.Server | None = None
    """An API pod with jobs off (MLFLOW_JOB_ROLE=off)."""

    def off_pod(self) -> launcher.Server:
        assert self.off is not None
        return self.off

    @property
    def admin(self) -> tuple[str, str]:
        return self.d.auth.admin_login()

    def call(self, server: launcher.Server, method: str, path: str, body=None) -> Response:
        return send(server.base_url, method, path, login=self.admin, json_body=body)

    def gateway_endpoint(self, api_base: str) -> None:
        """An AI Gateway endpoint on the stand-in provider, made as the UI makes one: an API
        key in MLflow's encrypted secret store, a model on it, the endpoint."""
        key = {"api_key": f"sk-test-{secrets.token_hex(8)}"}
        secret = self.created(
            "secrets",
            secret_name=f"judge-key-{secrets.token_hex(3)}",
            secret_value=key,
            provider="openai",
            auth_config={"api_base": api_base},
        )["secret"]
        model = self.created(
            "model-definitions",
            name=f"judge-model-{secrets.token_hex(3)}",
            secret_id=secret["secret_id"],
            provider="openai",
            model_name="gpt-4o-mini",
        )["model_definition"]
        link = {"model_definition_id": model["model_definition_id"], "linkage_type": "PRIMARY"}
        self.created("endpoints", name=JUDGE_ENDPOINT, model_configs=[{**link, "weight": 1}])

    def created(self, kind: str, **body) -> dict:
        answer = self.call(self.api[0], "POST", f"{GATEWAY_API}/{kind}/create", body)
        assert answer.status == 200, answer
        return json.loads(answer.body)

    def start(self, role: str, **changes: str) -> launcher.Server:
        server = self.spawn(role, **changes)
        server.wait_healthy(timeout=180)
        return server

    def spawn(self, role: str, **changes: str) -> launcher.Server:
        """A pod started, not yet waited for (pods start side by side, as a rollout's do):
        `submit`, the chart's server container; `run`, its job runner's (Deployment
        mlflow-jobs); `off`, the server's as with jobs.enabled false."""
        self.starts += 1
        name = f"{role}-{self.starts}"
        container = runner_container(self.d.chart) if role == "run" else self.d.main
        if role == "off":
            changes = {"MLFLOW_JOB_ROLE": "off", **changes}
        env = self.d.env(container, name, **changes)
        assert env["MLFLOW_JOB_ROLE"] == role, "the chart gives this pod another role"
        return launcher.Server(env, self.d.home / f"{name}.log")

    def invoke(self, server: launcher.Server, experiment: str, scorer: str) -> Response:
        traces = self.traces[experiment]
        return self.call(
            server,
            "POST",
            INVOKE_SCORER,
            {
                "experiment_id": traces["experiment_id"],
                "serialized_scorer": scorer,
                "trace_ids": traces["trace_ids"],
                "log_assessments": True,
            },
        )

    def submit(self, experiment: str, scorer: str) -> str:
        """The UI's scorer run, by API pod A; the one job's id."""
        answer = self.invoke(self.api[0], experiment, scorer)
        assert answer.status == 200, answer
        [job] = json.loads(answer.body)["jobs"]
        return job["job_id"]

    def job(self, job_id: str) -> dict:
        """The job as the UI reads it, through API pod B."""
        answer = self.call(self.api[1], "GET", f"{JOBS_API}/{job_id}")
        assert answer.status == 200, answer
        return json.loads(answer.body)

    def wait_job(self, job_id: str, until: set[str], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["status"] not in until:
            assert time.monotonic() < deadline, f"job still {job['status']}:\n{self.logs()}"
            time.sleep(0.5)
        return job

    def assessments(self, experiment: str) -> Counter:
        """(trace id, assessment name) -> how many rows the database holds."""
        return Counter((row[0], row[1]) for row in self.assessment_rows(experiment))

    def assessment_rows(self, experiment: str) -> list[list[str]]:
        """trace id, name, error (empty: none) of the experiment's traces' assessments."""
        ids = ", ".join(f"'{t}'" for t in self.traces[experiment]["trace_ids"])
        return self.d.login.server.query(
            self.d.login.name,
            "SELECT trace_id, name, COALESCE(error, '') FROM assessments "  # noqa: S608
            f"WHERE trace_id IN ({ids})",
        )

    def spans(self, trace_id: str) -> tuple[int, int]:
        """The trace's span rows in the database, and those of them with a payload (the span
        as JSON: inputs, outputs, attributes); archival empties it and keeps the row (name,
        times) for searches."""
        [[rows, payloads]] = self.d.login.server.query(
            self.d.login.name,
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN content <> '' THEN 1 ELSE 0 END), 0) "  # noqa: S608
            f"FROM spans WHERE trace_id = '{trace_id}'",
        )
        return int(rows), int(payloads)

    def jobs_named(self, job_name: str) -> list[dict]:
        answer = self.call(self.api[1], "POST", f"{JOBS_API}/search", {"job_name": job_name})
        assert answer.status == 200, answer
        return json.loads(answer.body)["jobs"]

    def logs(self) -> str:
        return self.runner.logs()[-6000:]


def _kill_tree(server: launcher.Server) -> None:
    """SIGKILL to every process of the pod at once, as the kubelet's after the grace period
    (or the node's loss) ends them."""
    for pid in server.process_tree():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.proc.wait(10)


@pytest.fixture(scope="module")
def pods(db_server, synth, moto, test_ca, tmp_path_factory, fake_llm) -> Iterator[Pods]:
    engine = db_server.engine
    home = tmp_path_factory.mktemp(f"jobs-{engine}")
    chart = synth(CONFIG_FOR_ENGINE[engine])
    d = deployed(db_server, chart, moto, test_ca.ca, home, templated=True)
    pods = Pods(d, [], None, {}, 0)  # type: ignore[arg-type]
    # jobs.trace_archival_after as the chart sets it (MLFLOW_TRACE_ARCHIVAL_*; the launcher
    # writes MLflow's file), on the runner from its first start, so that no test restarts it
    # only to change it; its pass every minute, not the chart's 5.
    destination = d.env(d.main, "archival-probe")["MLFLOW_ARTIFACTS_DESTINATION"]
    pods.runner_env = {
        **RUNNER_ENV,
        "MLFLOW_TRACE_ARCHIVAL_RETENTION": "1h",
        "MLFLOW_TRACE_ARCHIVAL_LOCATION": f"{destination}/{TRACE_ARCHIVE}",
        "MLFLOW_TRACE_ARCHIVAL_INTERVAL_SECONDS": "60",
    }
    try:
        pods.api = [pods.spawn("submit", **API_ENV) for _ in range(2)]
        pods.runner = pods.spawn("run", **pods.runner_env)
        pods.off = pods.spawn("off", **API_ENV)
        for server in (*pods.api, pods.runner, pods.off):
            server.wait_healthy(timeout=240)
        env = client_env(pods.api[0].base_url, str(d.home))
        env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = pods.admin
        pods.traces = launcher.mlflow_client(
            env,
            pods.api[0].base_url,
            engine,
            "scored",
            "online",
            "outlived",
            code=_TRACES,
        )
        # The online-scoring config first: its scheduler's minute runs while the others test.
        pods.gateway_endpoint(fake_llm)
        online = pods.traces["online"]["experiment_id"]
        scorer = {"experiment_id": online, "name": ONLINE_JUDGE}
        registered = pods.call(
            pods.api[0], "POST", REGISTER_SCORER, {**scorer, "serialized_scorer": judge()}
        )
        assert registered.status == 200, registered
        configured = pods.call(pods.api[1], "PUT", ONLINE_CONFIG, {**scorer, "sample_rate": 1.0})
        assert configured.status == 200, configured
        pods.online_registered_ms = int(time.time() * 1000)
        # Then the archival test's traces, one older than the retention: the runner's next
        # archival pass runs while the others test, too (within two minutes: MLflow skips a
        # poll that comes less than the interval after its last pass, by a millisecond even).
        pods.archival = _archival_traces(pods)
        yield pods
    finally:
        for server in [*pods.api, pods.runner, pods.off, *pods.stopped]:
            if server is not None and server.proc.poll() is None:
                server.stop()


def test_a_scorer_run_sent_to_one_api_pod_is_run_by_the_runner_and_read_through_another(pods):
    """The UI's scorer run: recorded by A (its job PENDING in the database), run by the runner
    pod, its state read through B; the assessments land on each trace exactly once. A code
    scorer, then an LLM judge on an AI Gateway endpoint: its job calls the runner's own
    /gateway/ as the user who ran it (the launcher's gateway token, the runner's address among
    the allowed hosts), which calls the provider once per trace."""
    trace_ids = pods.traces["scored"]["trace_ids"]
    for scorer in (code_scorer("answer_length", LENGTH), judge()):
        job = pods.wait_job(pods.submit("scored", scorer), FINISHED)
        assert job["status"] == "SUCCEEDED", job
        assert job["job_name"] == "invoke_scorer"
    assert pods.assessments("scored") == Counter(
        {(t, name): 1 for t in trace_ids for name in ("answer_length", ONLINE_JUDGE)}
    )
    assert not [row for row in pods.assessment_rows("scored") if row[2]], "an assessment failed"
    answers = [f"answer number {i} of scored on {pods.d.engine}" for i in range(len(trace_ids))]
    assert {a: FakeLlm.calls[a] for a in answers} == dict.fromkeys(answers, 1)
    # Neither API pod runs jobs: no runner, no huey consumer in their process trees.
    for server in pods.api:
        commands = [_cmdline(pid) for pid in server.process_tree()]
        assert not [c for c in commands if "mlflow.server.jobs" in c or "huey" in c], commands


def _runner_pids() -> set[int]:
    """What `mlflow-launcher runner-alive` finds (the image's launcher, all of /proc here)."""
    code = "from mlflow_launcher import runner; print(runner.runner_pids())"
    return set(json.loads(launcher.image_python("-c", code).stdout))


def _job_processes(server: launcher.Server) -> list[int]:
    """MLflow's job processes (one per running job) in the pod."""
    return [pid for pid in server.process_tree() if "_job_subproc_entry" in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_with_jobs_off_the_job_endpoints_say_so(pods):
    """MLFLOW_JOB_ROLE=off (jobs.enabled false): the UI's scorer run gets MLflow's own answer,
    not a job that never runs."""
    answer = pods.invoke(pods.off_pod(), "scored", code_scorer("never_run", LENGTH))
    assert answer.status == 500, answer
    assert "job execution feature is not enabled" in answer.body, answer
    assert not pods.jobs_named("invoke_scorer") or all(
        "never_run" not in json.dumps(job["params"]) for job in pods.jobs_named("invoke_scorer")
    )


def test_memory_by_role(pods, tmp_path, record_property):
    """PSS of each pod's process tree: an API pod that submits costs what one with jobs off
    does (no runner, no consumers in it); the runner pod idle and while a job runs."""
    off = pods.off_pod()
    for server in (off, pods.api[0]):
        pods.invoke(server, "scored", code_scorer("never_run", LENGTH))  # both have served
    time.sleep(2)
    # Idle: between the online-scoring config's jobs (one a minute).
    _wait_for(lambda: not _job_processes(pods.runner), "an idle runner", timeout=90)
    figures = {
        "api_off": tree_pss_mib(off.proc.pid),
        "api_submit": tree_pss_mib(pods.api[0].proc.pid),
        "runner_idle": tree_pss_mib(pods.runner.proc.pid),
    }
    hold = tmp_path / "hold"
    hold.touch()
    job_id = pods.submit("scored", code_scorer("measured", held(tmp_path)))
    _wait_for(lambda: list(tmp_path.glob("started-*")), "the job's start")
    time.sleep(1)
    figures["runner_with_a_job"] = tree_pss_mib(pods.runner.proc.pid)
    # `runner-alive` (the runner pod's liveness probe) finds MLflow's real runner, there only.
    assert _runner_pids() & set(pods.runner.process_tree())
    assert not _runner_pids() & {p for s in pods.api for p in s.process_tree()}
    # The job runs in the runner pod: MLflow's job process, a child of its runner.
    figures["job_processes"] = sum(tree_pss_mib(pid) for pid in _job_processes(pods.runner))
    figures["runner_processes"] = len(pods.runner.process_tree())
    hold.unlink()
    assert pods.wait_job(job_id, FINISHED)["status"] == "SUCCEEDED"
    rounded = {name: round(value) for name, value in figures.items()}
    print(f"PSS MiB ({pods.d.engine}): {rounded}")
    record_property("pss_mib", rounded)
    # MLflow's default engine in an API pod would add a runner and huey consumers (1.3-1.4 GB).
    assert figures["api_submit"] < figures["api_off"] + 100, rounded
    assert figures["job_processes"] > 50, rounded


# After the tests that leave the runner alone, so that its scheduler's minute (from the config
# `pods` registers) has mostly passed; before those that restart the runner, which would run
# a job it was killed in again.
def test_an_online_scoring_config_runs_once_per_deployment(pods):
    """Registered and sampled (rate 1) through the API pods; the scheduler runs in the runner
    pod only, so each trace is scored once and each of its minutes submits one job, not one
    per server process.

    With sign-in on, MLflow 3.17.2's online-scoring job calls the gateway as no one: only
    `invoke_scorer_job` passes a user and the gateway token on (mlflow/genai/scorers/job.py),
    so the runner's server answers 401 and each trace gets the judge's error as its one
    assessment. Pinned here: when MLflow passes a user, this fails and the provider's calls
    (once per trace) become the check."""
    trace_ids = pods.traces["online"]["trace_ids"]
    expected = Counter({(t, ONLINE_JUDGE): 1 for t in trace_ids})
    deadline = pods.online_registered_ms / 1000 + ONLINE_WAIT_SECONDS
    while pods.assessments("online") != expected:
        assert time.time() < deadline, (pods.assessments("online"), pods.logs())
        time.sleep(2)
    jobs = pods.jobs_named("run_online_trace_scorer")
    assert jobs, "no online-scoring job"
    per_minute = Counter(job["creation_time"] // 60_000 for job in jobs)
    assert max(per_minute.values()) == 1, jobs
    assert pods.assessments("online") == expected
    errors = [row[2] for row in pods.assessment_rows("online")]
    assert all("You are not authenticated" in error for error in errors), errors
    answers = [f"answer number {i} of online on {pods.d.engine}" for i in range(len(trace_ids))]
    assert not [a for a in answers if FakeLlm.calls[a]]


# One way to stop per engine: what the database does (the row left RUNNING, taken back by
# the next runner's recovery) is the same after either, and what the stop does (the signals,
# the processes) is the same on either engine. Each pair costs a runner restart and a held job
# (20-30 s of CPU).
STOP_ON_ENGINE = {"mysql": "SIGKILL", "postgres": "SIGTERM"}


def test_a_job_outlives_its_runner(pods, tmp_path):
    """The runner pod ends mid-job (SIGKILL on MariaDB: the node lost, the grace period over;
    SIGTERM on PostgreSQL: the pod's normal stop); the job stays RUNNING in the database, and
    the next runner pod (the Deployment's Recreate) runs it again from the start: SUCCEEDED,
    assessments once."""
    stop = STOP_ON_ENGINE[pods.d.engine]
    hold = tmp_path / "hold"
    hold.touch()
    experiment = "outlived"
    job_id = pods.submit(experiment, code_scorer(f"held_{stop.lower()}", held(tmp_path)))
    pods.wait_job(job_id, {"RUNNING"} | FINISHED)
    _wait_for(lambda: list(tmp_path.glob("started-*")), "the job's start")
    old = pods.runner
    if stop == "SIGKILL":
        # MLflow's runner process alone first: the pod goes on answering /health with no
        # runner in it, which only `runner-alive` (its liveness probe) sees.
        [runner_pid] = _runner_pids() & set(old.process_tree())
        os.kill(runner_pid, signal.SIGKILL)
        _wait_for(lambda: not _runner_pids() & set(old.process_tree()), "its end")
        assert old.get("/health", "localhost")[0] == 200
        _kill_tree(old)
    else:
        old.stop(signal.SIGTERM)
    assert pods.job(job_id)["status"] == "RUNNING", "no runner, yet the job looks finished"
    waiting = None
    if stop == "SIGKILL":
        # Submitted while no runner runs: the API pods take it and it waits, PENDING (which is
        # why the chart deploys the runner with jobs on).
        waiting = pods.submit("scored", code_scorer("while_no_runner", LENGTH))
        time.sleep(3)
        assert pods.job(waiting)["status"] == "PENDING"
    pods.runner = pods.start("run", **pods.runner_env)
    _wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 2, "the job's second start")
    hold.unlink()
    job = pods.wait_job(job_id, FINISHED)
    assert job["status"] == "SUCCEEDED", job
    trace_ids = pods.traces[experiment]["trace_ids"]
    name = f"held_{stop.lower()}"
    assert pods.assessments(experiment) == Counter({(t, name): 1 for t in trace_ids})
    if waiting is not None:
        assert pods.wait_job(waiting, FINISHED)["status"] == "SUCCEEDED"


def _archival_traces(pods: Pods) -> dict[str, str]:
    """Two traces sent as an OTLP exporter sends them, one started two hours ago (older than
    the runner's retention), one now; each span's payload in the database."""
    created = pods.call(pods.api[0], "POST", CREATE_EXPERIMENT, {"name": "archived"})
    assert created.status == 200, created
    experiment_id = json.loads(created.body)["experiment_id"]
    earlier = time.time_ns() - 2 * 3600 * 10**9
    url = pods.api[0].base_url
    sent, old = itest_otlp.export_spans(
        url, experiment_id, pods.admin, ARCHIVED_SPANS, start_ns=earlier
    )
    assert sent == SpanExportResult.SUCCESS
    sent, recent = itest_otlp.export_spans(url, experiment_id, pods.admin, ["recent"])
    assert sent == SpanExportResult.SUCCESS
    location = pods.runner_env["MLFLOW_TRACE_ARCHIVAL_LOCATION"]
    return {"old": old, "recent": recent, "prefix": location.removeprefix(f"s3://{pods.d.bucket}/")}


def test_trace_archival_moves_old_spans_to_the_bucket_and_reads_them_back(pods):
    """jobs.trace_archival_after (the runner's environment, `pods`): the runner's periodic
    task moves the span payloads of a trace older than the retention out of the database into
    the bucket under trace-archive/; the trace stays, and an API pod reads its spans back from
    S3. A trace within the retention keeps its payloads. Both were sent as the module's pods
    started (`_archival_traces`); MLflow's scheduler polls once a minute. The spans read back
    are the archive's: their payloads are no longer in the database."""
    old, recent = pods.archival["old"], pods.archival["recent"]
    _wait_for(lambda: pods.spans(old)[1] == 0, "archival of the old trace", timeout=240)
    assert pods.spans(old) == (len(ARCHIVED_SPANS), 0), "archival dropped a span's row"
    prefix = pods.archival["prefix"]
    assert [k for k in pods.d.moto.objects(pods.d.bucket) if k.startswith(prefix)], prefix
    assert pods.spans(recent) == (1, 1), "a trace within the retention was archived"
    code = (
        "import json, sys\n"
        "from mlflow import MlflowClient\n"
        "t = MlflowClient(sys.argv[1]).get_trace(sys.argv[2])\n"
        "print(json.dumps([sorted(s.name for s in t.data.spans), t.info.tags]))\n"
    )
    url = pods.api[0].base_url
    env = client_env(url, str(pods.d.home))
    env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = pods.admin
    spans, tags = launcher.mlflow_client(env, url, old, code=code)
    assert spans == sorted(ARCHIVED_SPANS), spans
    assert tags["mlflow.trace.spansLocation"] == "ARCHIVE_REPO", tags


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)
