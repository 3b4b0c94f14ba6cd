"""One benchmark client of bench/server.py, run with the image's Python (.venv-image: MLflow).

    .venv-image/bin/python bench/server_client.py   (JSON commands on stdin, one a line)

Each command names the mode (`writes`, `searches`, `populate`, `traces`) and the target: `{"kind":
"http", "uri": ..., "login": [user, password] | null}` (the real MlflowClient, signed in through
MLFLOW_TRACKING_USERNAME/PASSWORD as a user would) or `{"kind": "store", "uri": <database URI>,
"artifact_root": ...}` (MLflow's SqlAlchemyStore in this process: the work without HTTP, the
"limit").

Each client is a process of its own, so its CPU never shares a GIL with the measuring driver
or another client, and it lives for the whole benchmark, so MLflow is imported once, not per
workload. Per command it sets up first (connects, finds its experiment, builds its batches),
says `ready`, waits for a line on stdin, and only then does the timed work, so the set-up
stays out of the measured window. It answers with one JSON line: each operation's latency
and the process's own CPU seconds during the work (its own lines begin with PROTOCOL).
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
import time
import uuid

METRICS, PARAMS, TAGS = 100, 10, 5
"""What one run logs in one log_batch (issue 11's tracking-write workload)."""
SPANS_PER_TRACE, TRACES_PER_EXPORT = 10, 5
"""One agent-like trace: a root and nine children (a retrieval, tool calls, LLM calls), each
with a kilobyte of inputs and outputs; an export carries five, as the OpenTelemetry SDK's batch
processor sends what a busy application produced since its last export."""
ATTRIBUTE_TEXT = 500


class HttpTarget:
    """The tracking server over HTTP, through MLflow's own client."""

    def __init__(self, spec: dict) -> None:
        from mlflow.tracking import MlflowClient

        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(name, None)
        if spec.get("login"):
            username, password = spec["login"]
            os.environ["MLFLOW_TRACKING_USERNAME"] = username
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password
        self.client = MlflowClient(tracking_uri=spec["uri"])

    def experiment(self, name: str) -> str:
        return _experiment(self.client, name)

    def one_run(self, experiment_id: str, metrics, params, tags) -> None:
        run = self.client.create_run(experiment_id)
        self.client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        self.client.set_terminated(run.info.run_id)

    def search(self, experiment_id: str, filter_string: str, max_results: int) -> int:
        found = self.client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=max_results
        )
        return len(found)


def _experiment(api, name: str) -> str:
    """The experiment's ID, created if missing; `api` is an MlflowClient or a store (both
    have these two calls)."""
    found = api.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return api.create_experiment(name)
    except Exception:  # another client created it first
        return api.get_experiment_by_name(name).experiment_id


class StoreTarget:
    """The same calls on MLflow's SqlAlchemyStore in-process: what the server does per request,
    without HTTP, (de)serialisation or the server's middleware."""

    def __init__(self, spec: dict) -> None:
        self.store = _store(spec["uri"], spec["artifact_root"])

    def experiment(self, name: str) -> str:
        return _experiment(self.store, name)

    def one_run(self, experiment_id: str, metrics, params, tags) -> None:
        from mlflow.entities import RunStatus

        run = self.store.create_run(
            experiment_id, user_id="bench", start_time=_now_ms(), tags=[], run_name=None
        )
        run_id = run.info.run_id
        self.store.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        self.store.update_run_info(run_id, RunStatus.FINISHED, _now_ms(), run_name=None)

    def search(self, experiment_id: str, filter_string: str, max_results: int) -> int:
        from mlflow.entities import ViewType

        found = self.store.search_runs(
            [experiment_id], filter_string, ViewType.ACTIVE_ONLY, max_results=max_results
        )
        return len(found)


@functools.cache
def _store(uri: str, artifact_root: str):
    """One store (engine, connection pool) per database, as a server worker keeps one."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(uri, artifact_root)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _batch(seed: int):
    from mlflow.entities import Metric, Param, RunTag

    rng, now = random.Random(seed), _now_ms()  # noqa: S311 - test data
    metrics = [Metric(f"m{i}", rng.random(), now, 0) for i in range(METRICS)]
    params = [Param(f"p{i}", f"value-{rng.randrange(1000)}") for i in range(PARAMS)]
    tags = [RunTag(f"t{i}", f"tag-{rng.randrange(1000)}") for i in range(TAGS)]
    return metrics, params, tags


def writes(target, spec: dict) -> list[float]:
    experiment_id = target.experiment(spec["experiment"])
    batches = [_batch(spec["seed"] * 100_000 + i) for i in range(spec["count"])]
    for metrics, params, tags in batches[: spec.get("warmup", 0)]:  # each worker's first calls
        target.one_run(experiment_id, metrics, params, tags)
    _wait_for_go()
    latencies = []
    for metrics, params, tags in batches:
        start = time.perf_counter()
        target.one_run(experiment_id, metrics, params, tags)
        latencies.append(time.perf_counter() - start)
    return latencies


def searches(target, spec: dict) -> list[float]:
    target.search(spec["experiment_id"], spec["filter"], spec["max_results"])  # warm: plans
    _wait_for_go()
    latencies = []
    for _ in range(spec["count"]):
        start = time.perf_counter()
        found = target.search(spec["experiment_id"], spec["filter"], spec["max_results"])
        latencies.append(time.perf_counter() - start)
        assert found > 0, "the search found nothing: the experiment is not populated"
    return latencies


def _export_body(rng: random.Random) -> bytes:
    """One OTLP/HTTP protobuf body (ExportTraceServiceRequest) of TRACES_PER_EXPORT traces."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def text(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    spans = []
    now = time.time_ns()
    for _ in range(TRACES_PER_EXPORT):
        trace_id = rng.randbytes(16)
        root = rng.randbytes(8)
        for i in range(SPANS_PER_TRACE):
            start = now - (SPANS_PER_TRACE - i) * 1_000_000
            payload = "".join(rng.choices("abcdefghij ", k=ATTRIBUTE_TEXT))
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=root if i == 0 else rng.randbytes(8),
                    parent_span_id=b"" if i == 0 else root,
                    name="agent" if i == 0 else f"step-{i}",
                    kind=Span.SPAN_KIND_INTERNAL,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + 500_000,
                    attributes=[
                        text("mlflow.spanInputs", json.dumps({"question": payload})),
                        text("mlflow.spanOutputs", json.dumps({"answer": payload})),
                        text("mlflow.spanType", "CHAIN" if i == 0 else "LLM"),
                    ],
                )
            )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[text("service.name", "bench-agent")]),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )
    return request.SerializeToString()


def traces(spec: dict) -> tuple[list[float], int]:
    """`count` exports of TRACES_PER_EXPORT traces to /v1/traces, as an instrumented
    application's OTLP exporter sends them (protobuf, signed in where the server wants it).
    Returns each export's latency and how many were sent again (429, 502, 503, 504)."""
    import requests

    target = spec["target"]
    session = requests.Session()
    session.headers["Content-Type"] = "application/x-protobuf"
    session.headers["x-mlflow-experiment-id"] = spec["experiment_id"]
    if target.get("login"):
        session.auth = tuple(target["login"])
    url = target["uri"] + "/v1/traces"
    rng = random.Random(spec["seed"])  # noqa: S311 - test data
    bodies = [_export_body(rng) for _ in range(spec["count"] + spec.get("warmup", 0))]
    for body in bodies[: spec.get("warmup", 0)]:
        _export(session, url, body)
    _wait_for_go()
    latencies, retries = [], 0
    for body in bodies[spec.get("warmup", 0) :]:
        start = time.perf_counter()
        retries += _export(session, url, body)
        latencies.append(time.perf_counter() - start)
    return latencies, retries


RETRYABLE = (429, 502, 503, 504)
"""What an OTLP/HTTP exporter retries, with backoff and the server's Retry-After (the OTLP
specification, "Retryable Response Codes"); the OpenTelemetry SDK's exporter does."""


def _export(session, url: str, body: bytes, attempts: int = 6) -> int:
    """POST one body as the SDK's exporter does; the retries it took. Raises on a refusal."""
    for attempt in range(attempts):
        answer = session.post(url, data=body, timeout=60)
        if answer.status_code not in RETRYABLE or attempt == attempts - 1:
            answer.raise_for_status()
            return attempt
        time.sleep(float(answer.headers.get("Retry-After", 0.5 * 2**attempt)))
    raise AssertionError("unreachable")


def populate(spec: dict) -> dict:
    """`count` finished runs in a new experiment, inserted in bulk through MLflow's own table
    models (the shared search data: fast, and the same rows the store's own writes make)."""
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from sqlalchemy import insert

    store = _store(spec["target"]["uri"], spec["target"]["artifact_root"])
    experiment_id = store.create_experiment(spec["experiment"])
    rng, now = random.Random(spec["count"]), _now_ms()  # noqa: S311
    root = spec["target"]["artifact_root"]
    rows: dict = {model: [] for model in (SqlRun, SqlMetric, SqlLatestMetric, SqlParam, SqlTag)}
    for i in range(spec["count"]):
        run_id = uuid.uuid4().hex
        rows[SqlRun].append(
            {
                "run_uuid": run_id,
                "name": f"run-{i}",
                "source_type": "LOCAL",
                "source_name": "bench",
                "entry_point_name": "",
                "user_id": "bench",
                "status": "FINISHED",
                "start_time": now - i,
                "end_time": now - i + 1,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{root}/{experiment_id}/{run_id}/artifacts",
                "experiment_id": int(experiment_id),
            }
        )
        for k in range(5):
            metric = {"key": f"m{k}", "value": rng.random(), "timestamp": now, "step": 0}
            metric |= {"is_nan": False, "run_uuid": run_id}
            rows[SqlMetric].append(metric)
            rows[SqlLatestMetric].append(dict(metric))
        rows[SqlParam] += [{"key": f"p{k}", "value": "x", "run_uuid": run_id} for k in range(3)]
        rows[SqlTag].append({"key": "mlflow.runName", "value": f"run-{i}", "run_uuid": run_id})
    with store.ManagedSessionMaker() as session:
        for model, values in rows.items():
            for start in range(0, len(values), 5000):
                session.execute(insert(model), values[start : start + 5000])
    return {"experiment_id": experiment_id}


def _wait_for_go() -> None:
    """Set-up done: say so, and start the timed work when the driver says go."""
    say("ready")
    sys.stdin.readline()
    global _cpu_at_go
    _cpu_at_go = time.process_time()


_cpu_at_go = 0.0
PROTOCOL = "@@ "
"""Marks this script's own lines on stdout (MLflow's client prints lines of its own)."""


def say(text: str) -> None:
    print(PROTOCOL + text, flush=True)


def run(spec: dict) -> dict:
    if spec["mode"] == "populate":
        return populate(spec)
    if spec["mode"] == "traces":  # plain HTTP, as an OTLP exporter: no MLflow client
        latencies, retries = traces(spec)
        cpu = time.process_time() - _cpu_at_go
        return {"latencies": latencies, "cpu_s": cpu, "retries": retries}
    target = (HttpTarget if spec["target"]["kind"] == "http" else StoreTarget)(spec["target"])
    if spec["mode"] == "experiment":  # for `traces`, which needs only its ID
        return {"experiment_id": target.experiment(spec["experiment"])}
    latencies = {"writes": writes, "searches": searches}[spec["mode"]](target, spec)
    return {"latencies": latencies, "cpu_s": time.process_time() - _cpu_at_go}


def main() -> None:
    import mlflow  # noqa: F401 - imported once, before the first command

    say("started")
    for line in sys.stdin:
        say(json.dumps(run(json.loads(line))))


if __name__ == "__main__":
    main()
