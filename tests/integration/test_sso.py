"""Single sign-on on the real server, MariaDB and PostgreSQL: the chart's pod (two workers, as
it runs) with the MLFLOW_SSO_* settings, an ES256 key of our own standing in for the ALB's
(served over local HTTP as AWS serves the Region's keys), and tokens signed as the ALB signs
them. Default permission NO_PERMISSIONS, so that what a user may read shows.

A first sign-in makes the MLflow user, the IdP's admin group makes admins (and unmakes them),
users see only what is theirs or granted, Basic logins and the real MLflow client work as
before without the header, and forged, expired, replayed-from-elsewhere or other-ALB headers
get 401 and make no user. Under a flood of garbage and costly headers the pod keeps serving.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import itest_hostile as hostile
import itest_launcher as launcher
import pytest
from itest_sso import ADMIN_GROUP, OUTSIDE, SsoPod, sso_pod

from tests.fake_alb import HEADER, OTHER_ARN, Signer, b64

pytestmark = pytest.mark.integration

WORKERS = 2
SIGN_IN_CHECKS = 2
"""server.concurrent_sign_in_checks' default, per process."""
SCRYPT_MIB = 32
"""What one scrypt hash holds (werkzeug's, n=2**15, r=8)."""
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"
CREATE = "/api/2.0/mlflow/experiments/create"
GET = "/api/2.0/mlflow/experiments/get?experiment_id="
CURRENT_USER = "/api/2.0/mlflow/users/current"
GRANT = "/api/3.0/mlflow/users/permissions/grant"
SEGMENT_BYTES = 1448
"""TCP's payload per segment on a 1500-byte MTU path."""
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
RUNS_CREATE = "/api/2.0/mlflow/runs/create"


@pytest.fixture(scope="module")
def sso(db_server, synth, moto, test_ca, tmp_path_factory) -> Iterator[SsoPod]:
    with sso_pod(
        db_server,
        synth,
        moto,
        test_ca,
        tmp_path_factory.mktemp("sso"),
        MLFLOW_WORKERS=str(WORKERS),
        MLFLOW_AUTH_DEFAULT_PERMISSION="NO_PERMISSIONS",
    ) as running:
        yield running


def _create(sso: SsoPod, name: str, **who) -> str:
    answer = sso.send("POST", CREATE, body={"name": name}, **who)
    assert answer.status == 200, answer
    return json.loads(answer.body)["experiment_id"]


def _status(sso: SsoPod, method: str, path: str, **who) -> int | None:
    """The status, the same on each worker (each request a new connection: either may get
    it; four tries make it likely both did)."""
    statuses = {sso.send(method, path, **who).status for _ in range(4)}
    assert len(statuses) == 1, statuses
    return statuses.pop()


def test_the_first_sign_in_makes_the_user_with_the_default_permission(sso):
    assert "ana@example.com" not in sso.users()
    token = sso.token("ana@example.com", "ml")
    me = sso.send("GET", CURRENT_USER, token=token)
    assert me.status == 200, me
    assert json.loads(me.body)["user"]["username"] == "ana@example.com"
    assert sso.users()["ana@example.com"] is False
    # What it creates is its own (MLflow grants the creator MANAGE) ...
    mine = _create(sso, "ana-experiment", token=token)
    assert _status(sso, "GET", GET + mine, token=token) == 200
    # ... what others made it may not read: the default permission, NO_PERMISSIONS here.
    admins = _create(sso, "admins-experiment", login=sso.auth.admin_login())
    assert _status(sso, "GET", GET + admins, token=sso.token("ana@example.com")) == 403
    # Nor may another IdP user read ana's, until an admin grants it.
    bob = sso.token("bob@example.com")
    assert _status(sso, "GET", GET + mine, token=bob) == 403
    grant = sso.send(
        "POST",
        GRANT,
        body={
            "username": "bob@example.com",
            "resource_type": "experiment",
            "resource_id": mine,
            "permission": "READ",
        },
        login=sso.auth.admin_login(),
    )
    assert grant.status == 200, grant
    assert _status(sso, "GET", GET + mine, token=sso.token("bob@example.com")) == 200
    # The log says who was made, never a password.
    assert "created MLflow user 'ana@example.com' at its first sign-in" in sso.server.logs()


def test_the_idps_admin_group_makes_and_unmakes_admins(sso):
    admins = _create(sso, "made-by-the-admin", login=sso.auth.admin_login())
    boss = sso.token("boss@example.com", "ml", ADMIN_GROUP)
    assert _status(sso, "GET", GET + admins, token=boss) == 200
    assert sso.users()["boss@example.com"] is True
    # Removed from the group at the IdP: the next request's token says so, on every worker.
    demoted = sso.token("boss@example.com", "ml")
    assert _status(sso, "GET", GET + admins, token=demoted) == 403
    assert sso.users()["boss@example.com"] is False
    assert "is no longer an admin now" in sso.server.logs()


def test_sso_users_write_artifacts_through_the_native_routes(sso):
    """MLflow's FastAPI routes (proxied artifacts) take the header too; another user's are
    refused there as in the Flask ones. A download is answered by the launcher's streaming
    route (s3_download.py, the declared length), after MLflow's permission check."""
    token = sso.token("carla@example.com")
    mine = _create(sso, "carla-artifacts", token=token)
    path = f"{ARTIFACTS}/{mine}/notes/hello.txt"
    up = hostile.request(sso.port, "PUT", path, body=b"hello", headers={HEADER: token})
    assert up.status == 200, up
    down = sso.send("GET", path, token=sso.token("carla@example.com"))
    assert (down.status, down.body) == (200, "hello")
    assert down.headers["content-length"] == "5", down.headers
    assert _status(sso, "GET", path, token=sso.token("dan@example.com")) == 403
    # The UI's download (a Flask view, streamed from S3 by the launcher) after MLflow's check.
    run = sso.send("POST", RUNS_CREATE, body={"experiment_id": mine}, token=token)
    assert run.status == 200, run
    info = json.loads(run.body)["run"]["info"]
    root = info["artifact_uri"].split(":", 1)[1].lstrip("/")
    logged = hostile.request(
        sso.port, "PUT", f"{ARTIFACTS}/{root}/model.txt", body=b"weights", headers={HEADER: token}
    )
    assert logged.status == 200, logged
    ui = f"/get-artifact?path=model.txt&run_uuid={info['run_id']}"
    shown = sso.send("GET", ui, token=sso.token("carla@example.com"))
    assert (shown.status, shown.body) == (200, "weights"), shown
    assert _status(sso, "GET", ui, token=sso.token("dan@example.com")) == 403


def test_without_the_header_basic_auth_and_the_mlflow_client_work_unchanged(sso, tmp_path):
    assert sso.send("GET", SEARCH).status == 401  # anonymous: MLflow's Basic challenge
    assert sso.send("GET", SEARCH).headers["www-authenticate"] == 'Basic realm="mlflow"'
    assert sso.send("GET", SEARCH, login=sso.auth.admin_login()).status == 200
    wrong = sso.send("GET", SEARCH, login=(sso.auth.admin_username, "wrong"))
    assert wrong.status == 401
    # MLflow's own header on /gateway/ routes (native FastAPI) still carries a Basic login.
    gateway = sso.send(
        "GET",
        "/gateway/mlflow/v1/models",
        headers={"X-MLflow-Authorization": hostile.basic(*sso.auth.admin_login())},
    )
    assert gateway.status == 200, gateway
    # The real MLflow client, signed in as the admin, logs a run and an artifact.
    code = (
        "import json, sys, pathlib\n"
        "from mlflow import MlflowClient\n"
        "c = MlflowClient(sys.argv[1])\n"
        "e = c.create_experiment('client-through-the-internal-lb')\n"
        "run = c.create_run(e)\n"
        "c.log_param(run.info.run_id, 'p', 'v')\n"
        "f = pathlib.Path(sys.argv[2]) / 'a.txt'; f.write_text('artifact')\n"
        "c.log_artifact(run.info.run_id, str(f))\n"
        "out = c.download_artifacts(run.info.run_id, 'a.txt', sys.argv[2] + '/d')\n"
        "print(json.dumps([c.get_run(run.info.run_id).data.params, open(out).read()]))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_USERNAME": sso.auth.admin_username,
        "MLFLOW_TRACKING_PASSWORD": sso.auth.admin_password,
    }
    result = launcher.mlflow_client(env, sso.server.base_url, str(tmp_path), code=code)
    assert result == [{"p": "v"}, "artifact"]


def _bad_tokens(sso: SsoPod) -> dict[str, str]:
    eve = {"sub": "eve", "email": "eve@example.com", "groups": [ADMIN_GROUP]}
    forger = Signer(kid=sso.signer.kid)
    good = sso.signer.token(eve)
    head, payload, _ = good.split(".")
    return {
        "signed by another key under the ALB's key ID": forger.token(eve),
        "signed by another key, its own key ID": Signer().token(eve),
        "signed by another ALB": sso.signer.token(eve, signer=OTHER_ARN),
        "expired": sso.signer.token(eve, lifetime=-60),
        "alg none": f"{b64(json.dumps({'alg': 'none', 'kid': sso.signer.kid}).encode())}"
        f".{payload}.AAAA",
        "another user's claims under a valid signature": f"{head}."
        f"{b64(json.dumps({**eve, 'email': 'ana@example.com'}).encode())}.{good.split('.')[2]}",
        "wrong issuer": sso.signer.token(eve, iss="https://elsewhere.example"),
    }


def test_forged_expired_and_other_albs_headers_get_401_and_make_no_user(sso):
    for what, token in _bad_tokens(sso).items():
        # With the admin's valid Basic login beside it: the header decides.
        answer = sso.send("GET", SEARCH, token=token, login=sso.auth.admin_login())
        assert answer.status == 401, (what, answer)
        assert "single sign-on refused" in answer.body, (what, answer.body)
        assert "www-authenticate" not in answer.headers, what
    assert "eve@example.com" not in sso.users()


def test_a_valid_header_from_outside_the_albs_networks_gets_401(sso):
    """A token captured on the way (ALB to pod is HTTP in the VPC) replayed from another host
    of the VPC, within its lifetime: refused, the sender is not the ALB."""
    token = sso.token("frank@example.com")
    replayed = sso.send("GET", SEARCH, token=token, source=OUTSIDE)
    assert replayed.status == 401, replayed
    assert "outside the load balancer's networks" in replayed.body
    assert "frank@example.com" not in sso.users()
    assert sso.send("GET", SEARCH, token=token).status == 200  # from the ALB's network


def test_garbage_and_costly_headers_leave_the_pod_serving(sso):
    """256 requests at once without a valid login: malformed tokens, tokens at the size limit,
    deeply nested JSON, forged signatures under the ALB's key ID (each costs a signature
    check), and unknown key IDs (each would cost a fetch). The pod answers each with 401 or
    503, keeps /health, stays within its memory limit, and asks the key endpoint a bounded
    number of times."""
    eve = {"sub": "eve", "email": "eve@example.com"}
    forger = Signer(kid=sso.signer.kid)
    payload = b64(json.dumps(eve).encode())
    kinds = [
        lambda i: "x" * 90_000,
        lambda i: f"{b64(b'[' * 11_000)}.{payload}.AAAA",
        lambda i: forger.token({**eve, "n": i}),
        lambda i: Signer().token({**eve, "n": i}),  # a new key ID each time
        lambda i: sso.signer.token({**eve, "pad": "y" * 11_000, "n": i}, lifetime=-60),
    ]
    asked_before = len(sso.keys.asked)
    body = b"z" * 60_000  # under the anonymous limit: MLflow would read it whole

    def attack(i: int) -> hostile.Answer:
        return hostile.request(
            sso.port,
            "POST",
            "/api/2.0/mlflow/runs/log-batch",
            body=body,
            headers={HEADER: kinds[i % len(kinds)](i)},
            source=f"127.0.0.{1 + i % 3}",  # within the trusted networks: every check runs
        )

    with hostile.Watch(sso.server.proc.pid, sso.port) as watch, ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(attack, range(256)))
    statuses = {a.status for a in answers}
    assert statuses <= {401, 503}, statuses
    assert not watch.failed_probes(), watch.health
    assert watch.peak < sso.memory_limit_mib, watch.peak
    fetches = len(sso.keys.asked) - asked_before
    assert fetches <= WORKERS * 10, fetches  # keys.FETCHES_PER_MINUTE per process
    assert "eve@example.com" not in sso.users()
    # A real user signs in at once afterwards.
    ok = sso.send("GET", SEARCH, token=sso.token("gina@example.com"))
    assert ok.status == 200, ok
    print(f"pod grew {watch.growth:.0f} MiB (peak {watch.peak:.0f}); key fetches {fetches}")


def test_first_sign_ins_and_wrong_passwords_at_once_share_the_bound_on_hashing(sso):
    """A first sign-in hashes the new user's random password (scrypt, 32 MiB), as a password
    check does: 32 new IdP users and 32 wrong passwords at once, in both workers, hash within
    the same slots (server.concurrent_sign_in_checks per process), the memory the chart
    sizes for them."""

    def first(i: int) -> hostile.Answer:
        return sso.send("GET", SEARCH, token=sso.token(f"new-{i}@example.com"))

    def wrong(i: int) -> hostile.Answer:
        admin = sso.auth.admin_username
        return sso.send("GET", SEARCH, login=(admin, f"wrong-{i}"), source=f"127.0.6.{i + 1}")

    with hostile.Watch(sso.server.proc.pid, sso.port) as watch, ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda i: (first if i % 2 else wrong)(i // 2), range(64)))
    signed_in = [a for i, a in enumerate(answers) if i % 2]
    assert {a.status for a in signed_in} <= {200, 503}, signed_in
    assert {a.status for i, a in enumerate(answers) if not i % 2} <= {401, 503}
    made = [name for name in sso.users() if name.startswith("new-")]
    assert len(made) == sum(a.status == 200 for a in signed_in) > 0
    bound = WORKERS * SIGN_IN_CHECKS * SCRYPT_MIB
    assert watch.growth < bound + 48, f"grew {watch.growth:.0f} MiB; the checks' bound {bound}"
    assert not watch.failed_probes(), watch.health
    print(f"first sign-ins with wrong passwords: grew {watch.growth:.0f} MiB, bound {bound}")


def test_the_headers_an_alb_forwards_for_a_user_with_large_claims_are_accepted(sso):
    """Over uvicorn's default 16 KiB of headers: a token carrying many groups, the IdP's
    access token and the ALB's sharded session cookies, as the ALB forwards them."""
    groups = [f"group-{i:04d}-{'g' * 24}" for i in range(200)]
    token = sso.token("hana@example.com", *groups)
    headers = {
        "x-amzn-oidc-accesstoken": "a" * 6000,
        "x-amzn-oidc-identity": "sub-hana",
        "Cookie": "; ".join(f"AWSELBAuthSessionCookie-{i}={'c' * 4000}" for i in range(4)),
    }
    assert len(token) + sum(map(len, headers.values())) > 32 * 1024
    lines = [f"GET {SEARCH} HTTP/1.1", "Host: localhost", "Connection: close", f"{HEADER}: {token}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with hostile.connect(sso.port) as sock:
        # In segments, as they cross the VPC: uvicorn then holds an incomplete request, which
        # its default would cut at 16 KiB (a request read whole at once escapes that limit).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(request), SEGMENT_BYTES):
            sock.sendall(request[start : start + SEGMENT_BYTES])
            time.sleep(0.005)
        answer = hostile.read_response(sock)
    assert answer.status == 200, answer
