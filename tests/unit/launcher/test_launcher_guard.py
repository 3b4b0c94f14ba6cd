"""The guard's own logic with stand-ins for MLflow and uvicorn: limits from the environment,
logins parsed as werkzeug parses them, the throttle's window, the bound on concurrent checks,
and the ASGI decisions (what is refused before MLflow is called, and with what). That the
real server behaves so, memory and probes included: tests/integration/test_guard.py."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
import zlib

import pytest

from mlflow_launcher import app
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.guard import limits, otlp
from mlflow_launcher.guard.asgi import Guard
from mlflow_launcher.guard.sign_in import (
    VERIFIED,
    Login,
    SignInGate,
    Throttle,
    Verdict,
    already_verified,
    login_from,
)
from mlflow_launcher.guard.transfers import Slots

MIB = limits.MIB


def test_limits_default_and_every_bad_value_in_one_error():
    assert limits.load({}) == limits.Limits()
    assert limits.load({"MLFLOW_MAX_REQUEST_BODY_MIB": "8"}).max_body_bytes == 8 * MIB
    with pytest.raises(LauncherError) as error:
        limits.load(
            {
                "MLFLOW_MAX_REQUEST_BODY_MIB": "0",
                "MLFLOW_CONCURRENT_SIGN_IN_CHECKS": "two",
                "MLFLOW_CONCURRENT_ARTIFACT_TRANSFERS": "-1",
            }
        )
    message = str(error.value)
    for name in (
        "MLFLOW_MAX_REQUEST_BODY_MIB",
        "MLFLOW_CONCURRENT_SIGN_IN_CHECKS",
        "MLFLOW_CONCURRENT_ARTIFACT_TRANSFERS",
    ):
        assert name in message


def _scope(path="/api/2.0/mlflow/runs/log-batch", method="POST", headers=(), client="10.0.0.1"):
    return {
        "type": "http",
        "path": path,
        "method": method,
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "client": (client, 40000),
    }


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_logins_are_read_as_werkzeug_reads_them():
    login = login_from(_scope(headers=[("authorization", _basic("anna", "pä:ss 🔑"))]))
    assert login == Login("anna", "pä:ss 🔑")
    assert login_from(_scope(headers=[("authorization", "Bearer abc")])) is None
    assert login_from(_scope(headers=[("authorization", "Basic !!!")])) is None
    assert login_from(_scope()) is None
    # On /gateway/ routes MLflow reads its own header first; the Authorization one is the
    # caller's provider key there.
    gateway = _scope(
        "/gateway/chat/mlflow/invocations",
        headers=[
            ("authorization", "Bearer sk-provider"),
            ("x-mlflow-authorization", _basic("bob", "pw")),
        ],
    )
    assert login_from(gateway) == Login("bob", "pw")
    assert "pw" not in repr(login_from(gateway))


def test_a_verified_login_matches_only_itself():
    token = VERIFIED.set(Login("anna", "secret").fingerprint)
    try:
        assert already_verified("anna", "secret")
        assert not already_verified("anna", "other")
        assert not already_verified("bob", "secret")
    finally:
        VERIFIED.reset(token)
    assert not already_verified("anna", "secret")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_slows_one_login_from_one_source_for_the_window():
    clock = Clock()
    throttle = Throttle(3, clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1", "admin") is None
        throttle.failed("10.0.0.1", "admin")
    wait = throttle.retry_after("10.0.0.1", "admin")
    assert wait == pytest.approx(limits.FAILURE_WINDOW_SECONDS)
    assert throttle.retry_after("10.0.0.2", "admin") is None  # another source
    assert throttle.retry_after("10.0.0.1", "anna") is None  # another login
    clock.now += limits.FAILURE_WINDOW_SECONDS + 1
    assert throttle.retry_after("10.0.0.1", "admin") is None


def test_the_throttle_never_counts_a_source_over_all_logins():
    """A shared source (an NLB node) must not stop every login's sign-in for one guesser."""
    throttle = Throttle(2, Clock())
    for n in range(1000):
        throttle.failed("10.0.0.1", f"user{n}")
    assert throttle.retry_after("10.0.0.1", "someone-else") is None


def test_the_throttle_keeps_a_bounded_number_of_entries():
    throttle = Throttle(5, Clock())
    for n in range(limits.SIGN_IN_QUEUE * 200):
        throttle.failed(f"10.0.{n // 250}.{n % 250}", "admin")
    assert len(throttle._failures) <= 10_000


def _gate(checks: int = 2, *, accept: bool = False, remembered: bool = False):
    running, peak, calls = 0, 0, []
    lock = threading.Lock()
    release = threading.Event()

    def check(username: str, password: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            calls.append(username)
        release.wait(5)
        with lock:
            running -= 1
        return accept

    gate = SignInGate(
        limits.Limits(sign_in_checks=checks, sign_in_failures=100),
        check=check,
        remembered=lambda u, p: remembered,
    )
    return gate, release, calls, lambda: peak


def test_no_more_checks_run_at_once_than_the_limit():
    gate, release, calls, peak = _gate(checks=2)

    async def run():
        tasks = [
            asyncio.create_task(gate.verify(Login(f"u{n}", "x"), f"10.0.0.{n}")) for n in range(8)
        ]
        await asyncio.sleep(0.2)
        assert peak() == 2 and len(calls) == 2
        release.set()
        return await asyncio.gather(*tasks)

    outcomes = asyncio.run(run())
    assert {o.verdict for o in outcomes} == {Verdict.REFUSED}
    assert peak() == 2 and len(calls) == 8


def test_a_remembered_login_is_not_hashed_and_a_throttled_one_not_tried():
    gate, release, calls, _ = _gate(remembered=True)
    release.set()
    assert asyncio.run(gate.verify(Login("anna", "pw"), "10.0.0.1")).verdict is Verdict.ACCEPTED
    assert calls == []

    gate, release, calls, _ = _gate()
    release.set()
    for _ in range(100):
        gate.throttle.failed("10.0.0.1", "admin")
    outcome = asyncio.run(gate.verify(Login("admin", "guess"), "10.0.0.1"))
    assert outcome.verdict is Verdict.THROTTLED and outcome.retry_after > 0
    assert calls == []


def test_a_check_the_database_failed_is_not_a_wrong_password():
    """The error reaches the caller (a 5xx the client retries); the throttle, which counts
    wrong passwords, does not count it, so retries through a failover leave the login free."""
    failing = True

    def check(username: str, password: str) -> bool:
        if failing:
            raise ConnectionError("the database is away")
        return True

    gate = SignInGate(
        limits.Limits(sign_in_checks=2, sign_in_failures=3),
        check=check,
        remembered=lambda u, p: False,
    )
    for _ in range(10):
        with pytest.raises(ConnectionError):
            asyncio.run(gate.verify(Login("admin", "right"), "10.0.0.1"))
    failing = False
    assert asyncio.run(gate.verify(Login("admin", "right"), "10.0.0.1")).verdict is Verdict.ACCEPTED


class Users:
    """MLflow's auth store: its user records, each read counted."""

    def __init__(self) -> None:
        self.records = {"ana": {"is_admin": True}}
        self.reads = 0
        self.during_read = None  # a change another request makes while one reads

    def get_user(self, username):
        self.reads += 1
        record = dict(self.records[username])  # KeyError: no such user, as MLflow raises
        change, self.during_read = self.during_read, None
        if change is not None:
            change()
        return record

    def update_user(self, username, password=None, is_admin=None):
        self.records[username]["is_admin"] = is_admin

    def delete_user(self, username):
        del self.records[username]


def test_a_user_record_is_kept_for_the_sign_in_window_and_own_changes_apply_at_once():
    store, now = Users(), [0.0]
    app._remember_users(store, 30, 10, clock=lambda: now[0])
    assert store.get_user("ana")["is_admin"] and store.get_user("ana")["is_admin"]
    assert store.reads == 1
    store.records["ana"]["is_admin"] = False  # changed by another process
    now[0] = 29.9
    assert store.get_user("ana")["is_admin"] and store.reads == 1
    now[0] = 30.0  # the window over: read again
    assert not store.get_user("ana")["is_admin"] and store.reads == 2

    store.update_user("ana", is_admin=True)  # this process's change: at once
    assert store.get_user("ana")["is_admin"] and store.reads == 3
    store.delete_user("ana")
    with pytest.raises(KeyError):
        store.get_user("ana")
    with pytest.raises(KeyError):  # a missing user is not remembered either
        store.get_user("ana")
    assert store.reads == 5


def test_a_record_read_across_a_change_is_not_kept_and_the_cache_is_bounded():
    store = Users()
    app._remember_users(store, 30, 2)
    store.during_read = lambda: store.update_user("ana", is_admin=False)
    assert store.get_user("ana")["is_admin"]  # read before the change took effect...
    assert not store.get_user("ana")["is_admin"]  # ...and not kept
    for name in ("bo", "cy", "di"):
        store.records[name] = {"is_admin": False}
        store.get_user(name)
    reads = store.reads
    store.get_user("ana")  # the oldest went first
    assert store.reads == reads + 1


def test_with_no_sign_in_cache_every_request_reads_the_user():
    store = Users()
    app._remember_users(store, 0, 10)
    store.get_user("ana"), store.get_user("ana")
    assert store.reads == 2


# ---------------------------------------------------------------- the ASGI guard ------------


class App:
    """MLflow's app: records that it was called, reads the whole body, answers 200."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send):
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _serve(guard, scope, chunks: list[bytes]):
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def _guard(tmp_path, app, *, auth: bool, **limit_values):
    gate = (
        SignInGate(
            limits.Limits(**limit_values),
            check=lambda u, p: p == "right",
            remembered=lambda u, p: False,
        )
        if auth
        else None
    )
    return Guard(
        app,
        limits.Limits(**limit_values),
        sign_in=gate,
        unprotected=lambda path: path == "/health",
        slots=Slots(tmp_path / "slots", limit_values.get("transfers", 1)),
    )


def test_without_a_login_a_body_stops_at_64_kib_and_mlflow_is_not_called(tmp_path):
    app = App()
    guard = _guard(tmp_path, app, auth=True)
    chunked = _scope(headers=[("transfer-encoding", "chunked")])
    status, headers, body = _serve(guard, chunked, [b"x" * 65536, b"x"])
    assert status == 401 and app.calls == 0
    assert headers[b"www-authenticate"] == b'Basic realm="mlflow"'
    assert "64 KiB" in json.loads(body)["message"]
    # A small anonymous request reaches MLflow, which decides (401 for its protected routes).
    status, _, _ = _serve(guard, _scope(headers=[("content-length", "2")]), [b"{}"])
    assert status == 200 and app.calls == 1


def test_a_sign_in_check_the_database_failed_is_a_503_not_a_401(tmp_path, caplog):
    """MLflow's check raises when the users' database is away: the client gets the 503 it
    retries (MLflow's client does), not a 401, and the log one line without the password."""

    def check(username: str, password: str) -> bool:
        raise ConnectionError("(2013, 'Lost connection to server during query')\n[SQL: ...]")

    app = App()
    guard = Guard(
        app,
        limits.Limits(),
        sign_in=SignInGate(limits.Limits(), check=check, remembered=lambda u, p: False),
        unprotected=lambda path: False,
        slots=Slots(tmp_path / "slots", 1),
    )
    scope = _scope(
        headers=[("authorization", _basic("admin", "s3cret-pw")), ("content-length", "2")]
    )
    status, headers, body = _serve(guard, scope, [b"{}"])
    assert status == 503 and app.calls == 0
    assert json.loads(body)["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert headers[b"retry-after"] == b"5"
    [record] = [r for r in caplog.records if "sign-in check failed" in r.getMessage()]
    assert "Lost connection" in record.getMessage() and "SQL" not in record.getMessage()
    assert "s3cret-pw" not in caplog.text


def test_a_wrong_password_is_answered_before_the_body_is_read(tmp_path):
    app = App()
    guard = _guard(tmp_path, app, auth=True)
    scope = _scope(
        headers=[("authorization", _basic("admin", "wrong")), ("content-length", "1000000")]
    )
    status, _, body = _serve(guard, scope, [b"x" * 1_000_000])
    assert status == 401 and app.calls == 0
    assert b"You are not authenticated" in body


def test_a_signed_in_body_over_the_limit_is_refused_by_its_declared_length(tmp_path):
    app = App()
    guard = _guard(tmp_path, app, auth=True, max_body_bytes=MIB)
    login = ("authorization", _basic("admin", "right"))
    status, _, body = _serve(
        guard, _scope(headers=[login, ("content-length", str(MIB + 1))]), [b"x" * (MIB + 1)]
    )
    assert status == 413 and app.calls == 0
    assert "server.max_request_body_mib" in json.loads(body)["message"]
    status, _, _ = _serve(guard, _scope(headers=[login, ("content-length", "5")]), [b"hello"])
    assert status == 200 and app.bodies == [b"hello"]


def test_a_chunked_body_is_replayed_whole_within_the_limit_and_refused_past_it(tmp_path):
    app = App()
    guard = _guard(tmp_path, app, auth=False, max_body_bytes=MIB)
    chunked = _scope(headers=[("transfer-encoding", "chunked")])
    status, _, _ = _serve(guard, chunked, [b"a" * 1000, b"b" * 1000])
    assert status == 200 and app.bodies == [b"a" * 1000 + b"b" * 1000]
    status, _, _ = _serve(guard, chunked, [b"a" * MIB, b"b"])
    assert status == 413 and app.calls == 1


def test_bodies_held_at_once_are_bounded_per_process(tmp_path):
    entered, release = asyncio.Event(), asyncio.Event()

    class Slow(App):
        async def __call__(self, scope, receive, send):
            entered.set()
            await release.wait()
            await super().__call__(scope, receive, send)

    guard = _guard(tmp_path, Slow(), auth=False, max_body_bytes=MIB)
    size = str(MIB)
    statuses = []

    async def one(scope):
        sent = []
        messages = [{"type": "http.request", "body": b"x" * MIB, "more_body": False}]

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await guard(scope, receive, send)
        statuses.append(next(m["status"] for m in sent if m["type"] == "http.response.start"))

    async def run():
        scope = _scope(headers=[("content-length", size)])
        held = [asyncio.create_task(one(scope)) for _ in range(limits.BODY_BUDGET_REQUESTS)]
        await entered.wait()
        await asyncio.sleep(0.05)
        await one(scope)  # over the budget while the others are held
        release.set()
        await asyncio.gather(*held)

    asyncio.run(run())
    assert statuses[0] == 503
    assert statuses[1:] == [200] * limits.BODY_BUDGET_REQUESTS


def test_transfer_slots_are_shared_by_the_pods_processes(tmp_path):
    one, other = Slots(tmp_path, 2), Slots(tmp_path, 2)  # two processes' views of the files
    first, second = one.take(), other.take()
    assert first is not None and second is not None
    assert one.take() is None and other.take() is None
    Slots.give_back(first)
    third = other.take()
    assert third is not None
    Slots.give_back(second)
    Slots.give_back(third)


def test_an_upload_over_the_artifact_limit_stops_mlflow_and_says_why(tmp_path):
    app = App()
    guard = _guard(tmp_path, app, auth=False, max_artifact_bytes=MIB)
    path = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.bin"
    chunked = _scope(path, "PUT", headers=[("transfer-encoding", "chunked")])
    status, _, body = _serve(guard, chunked, [b"x" * MIB, b"x" * MIB, b"x"])
    assert status == 413
    assert app.bodies == [b"x" * MIB]  # then MLflow saw the client leave
    assert "presigned multipart" in json.loads(body)["message"]
    declared = _scope(path, "PUT", headers=[("content-length", str(2 * MIB))])
    status, _, _ = _serve(guard, declared, [b"x" * (2 * MIB)])
    assert status == 413 and app.calls == 1
    # The slot came back both times: a transfer within the limit goes through.
    within = _scope(path, "PUT", headers=[("content-length", "3")])
    assert _serve(guard, within, [b"abc"])[0] == 200


class Receiver(App):
    """MLflow's app, keeping the size of every body message it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    async def __call__(self, scope, receive, send):
        async def recorded():
            message = await receive()
            if message["type"] == "http.request":
                self.sizes.append(len(message.get("body", b"")))
            return message

        await super().__call__(scope, recorded, send)


def test_an_uploads_pieces_reach_mlflow_joined_into_whole_messages(tmp_path):
    app = Receiver()
    guard = _guard(tmp_path, app, auth=False, max_artifact_bytes=8 * MIB)
    path = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.bin"
    piece = 64 * 1024
    pieces = [bytes([i % 251]) * piece for i in range(40)] + [b"end"]  # 2.5 MiB and 3 bytes
    scope = _scope(path, "PUT", headers=[("content-length", str(sum(map(len, pieces))))])
    assert _serve(guard, scope, pieces)[0] == 200
    assert app.bodies == [b"".join(pieces)]  # every byte, in order
    assert app.sizes == [MIB, MIB, MIB // 2 + 3]
    # Other routes' bodies pass as they come: the guard bounds them, it does not join them.
    other = Receiver()
    _serve(_guard(tmp_path, other, auth=False), _scope(), [b"{", b"}"])
    assert other.sizes == [1, 1]


def test_a_client_leaving_mid_message_reaches_mlflow_as_a_disconnect(tmp_path):
    """MLflow's upload then stops (and its parts are aborted): nothing joined is passed on as
    if it were the body's end."""
    path = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.bin"
    scope = _scope(path, "PUT", headers=[("content-length", str(4 * MIB))])
    messages = [{"type": "http.request", "body": b"x" * 1024, "more_body": True}]
    seen: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def inner(scope, receive, send):
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message):
        pass

    asyncio.run(_guard(tmp_path, inner, auth=False)(scope, receive, send))
    assert seen == [{"type": "http.disconnect"}]


def test_a_downloads_slot_is_free_once_its_declared_length_is_sent(tmp_path):
    """A streamed download (s3_download.py) declares its length: the client has the whole
    answer with the last byte and may start its next transfer at once, before the empty last
    message follows; that transfer must find the slot free."""
    taken: list[int | None] = []

    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", b"6"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        taken.append(guard.slots.take())  # half the bytes sent: still held
        await send({"type": "http.response.body", "body": b"def", "more_body": True})
        taken.append(guard.slots.take())  # all of them: free
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    guard = _guard(tmp_path, app, auth=False)  # one transfer slot
    path = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.bin"
    assert _serve(guard, _scope(path, "GET"), [])[::2] == (200, b"abcdef")
    assert taken[0] is None and taken[1] is not None, taken
    Slots.give_back(taken[1])


def test_a_304_frees_the_downloads_slot_with_its_headers(tmp_path):
    """A client has a 304 with its headers and sends its next request at once (a browser
    revalidating, then asking for a range; http.client in test_guard met it): that request
    must find the slot free, not a 503, before the empty last message follows."""
    taken: list[int | None] = []

    async def app(scope, receive, send):
        # werkzeug's 304 to If-None-Match: no length, no body
        headers = [(b"etag", b'"abc"')]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        taken.append(guard.slots.take())
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    guard = _guard(tmp_path, app, auth=False)  # one transfer slot
    path = "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/model.bin"
    assert _serve(guard, _scope(path, "GET"), [])[0] == 304
    assert taken[0] is not None, "the answer's headers were all, and the slot was still held"
    Slots.give_back(taken[0])


def test_transfer_routes_need_a_login_when_auth_is_on(tmp_path):
    app = App()
    guard = _guard(tmp_path, app, auth=True)
    download = _scope("/get-artifact", "GET")
    assert _serve(guard, download, [])[0] == 401 and app.calls == 0
    signed_in = _scope("/get-artifact", "GET", headers=[("authorization", _basic("a", "right"))])
    assert _serve(guard, signed_in, [])[0] == 200


def test_the_charts_memory_rule_and_the_guard_agree():
    """k8s_charts/rules.py sizes the memory limit for what the guard lets in at once; the chart
    cannot import the launcher, so the two are held together here."""
    from mlflow_on_eks.k8s_charts import contract, rules
    from mlflow_on_eks.k8s_charts.workload import WorkloadProps

    assert rules.BODY_EXPANSION == limits.BODY_EXPANSION
    assert limits.BODY_BUDGET_REQUESTS == 1  # the rule counts one largest body per worker
    defaults = WorkloadProps()
    env = contract.guard_environment(defaults)
    assert limits.load(env) == limits.Limits(
        max_artifact_bytes=defaults.max_proxied_artifact_gib * 1024 * MIB,
        max_body_bytes=defaults.max_request_body_mib * MIB,
    )
    assert limits.load({}) == limits.load(env)  # the launcher's defaults are the chart's


def test_a_burst_of_guesses_sent_at_once_is_held_to_the_limit():
    """Checks in flight count: 30 wrong passwords at once from one source for one login run at
    most the per-minute limit of checks; the rest are told to retry (429)."""
    gate, release, calls, _ = _gate(checks=2)
    gate.throttle.per_login = 5

    async def run():
        tasks = [
            asyncio.create_task(gate.verify(Login("admin", f"guess{n}"), "10.0.0.1"))
            for n in range(30)
        ]
        await asyncio.sleep(0.1)
        release.set()
        return await asyncio.gather(*tasks)

    verdicts = [o.verdict for o in asyncio.run(run())]
    assert verdicts.count(Verdict.REFUSED) == 5 and len(calls) == 5
    assert verdicts.count(Verdict.THROTTLED) == 25


def test_the_runners_gateway_token_reaches_mlflow_on_gateway_routes_only(tmp_path):
    """The job runner's jobs call its /gateway/ as their user with the runner's token for a
    password (mlflow/genai/scorers/job.py); no password check knows it, so the guard passes it
    to MLflow, which admits it there only, and never marks it verified (MLflow's store would
    take it for the user's password). Elsewhere it is a wrong password. On real servers:
    tests/integration/test_jobs.py (an LLM judge run from the UI)."""
    app = App()
    token = "a" * 64
    guard = _guard(tmp_path, app, auth=True)
    guard.gateway_token = token
    seen: list[bytes | None] = []

    async def mlflow(scope, receive, send):
        seen.append(VERIFIED.get())
        await app(scope, receive, send)

    guard.app = mlflow
    chat = "/gateway/mlflow/v1/chat/completions"
    for header in ("authorization", "x-mlflow-authorization"):
        scope = _scope(chat, headers=[(header, _basic("alice", token)), ("content-length", "2")])
        status, _, _ = _serve(guard, scope, [b"{}"])
        assert status == 200 and seen[-1] is None, header
    for path, password in ((chat, "b" * 64), ("/api/2.0/mlflow/runs/create", token)):
        scope = _scope(path, headers=[("authorization", _basic("alice", password))])
        status, _, _ = _serve(guard, scope, [b"{}"])
        assert status == 401, path
    assert app.calls == 2
    # Without a token (the API pods, jobs off) nothing is let through.
    guard.gateway_token = None
    scope = _scope(chat, headers=[("authorization", _basic("alice", token))])
    assert _serve(guard, scope, [b"{}"])[0] == 401


# ------------------------------------------------- compressed OTLP bodies (guard/otlp.py) ----


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        (b"gzip", gzip.compress),
        (b"GZIP ", gzip.compress),
        (b"gzip", lambda d: gzip.compress(d[:5]) + gzip.compress(d[5:])),  # two members
        (b"deflate", zlib.compress),
        (b"deflate", _raw_deflate),
    ],
)
def test_otlp_bodies_inflate_as_mlflow_inflates_them(encoding, pack):
    plain = b"resource spans " * 1000
    assert otlp.inflate(pack(plain), encoding, len(plain)) == plain


def test_a_bomb_is_refused_as_soon_as_it_passes_the_limit():
    bomb = gzip.compress(b"\0" * (512 * MIB), compresslevel=9)  # about 500 KiB
    assert len(bomb) < MIB
    with pytest.raises(otlp.TooLarge):
        otlp.inflate(bomb, b"gzip", 8 * MIB)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        (b"gzip", b"not gzip"),
        (b"gzip", gzip.compress(b"x" * 100, mtime=0)[:-12]),
        (b"deflate", b"\xff"),
    ],
    # Named ids: a body in the id made each xdist worker collect a different test when the gzip
    # header's mtime ticked between their collections (CI failed on it).
    ids=["not-gzip", "truncated-gzip", "bad-deflate"],
)
def test_what_does_not_decode_is_left_to_mlflow(encoding, body):
    assert otlp.inflate(body, encoding, MIB) is None


def test_only_the_otlp_path_and_known_encodings_are_inflated():
    assert otlp.encoded("/v1/traces", b"gzip") and otlp.encoded("/v1/traces", b"deflate")
    assert not otlp.encoded("/v1/traces", b"zstd")  # MLflow answers 400 itself
    assert not otlp.encoded("/v1/traces", None)
    assert not otlp.encoded("/api/2.0/mlflow/runs/log-batch", b"gzip")


def test_mlflow_gets_the_plain_body_and_a_bomb_never_reaches_it(tmp_path):
    app = App()
    guard = _guard(tmp_path, app, auth=True, max_body_bytes=MIB)
    login = ("authorization", _basic("admin", "right"))
    plain = b"span" * 10000
    packed = gzip.compress(plain)
    scope = _scope(
        path="/v1/traces",
        headers=[login, ("content-encoding", "gzip"), ("content-length", str(len(packed)))],
    )
    status, _, _ = _serve(guard, scope, [packed[:100], packed[100:]])
    assert status == 200 and app.bodies == [plain]
    bomb = gzip.compress(b"\0" * (64 * MIB))
    scope = _scope(
        path="/v1/traces",
        headers=[login, ("content-encoding", "gzip"), ("content-length", str(len(bomb)))],
    )
    status, _, body = _serve(guard, scope, [bomb])
    assert status == 413 and app.calls == 1
    message = json.loads(body)["message"]
    assert "inflates past this server's limit of 1 MiB" in message
    assert "server.max_request_body_mib" in message
