"""Single sign-on's own logic with an ES256 key of our own in place of AWS's (tests/fake_alb.py):
its settings, every refusal of a token (and that none fetches a key it should not), the key
cache's bounds, the mapping of claims to an MLflow user and its admin flag, and the guard's
decisions. On the real server, both engines, and in a browser: tests/integration/test_sso.py,
test_sso_browser.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hashes import SHA256

from mlflow_launcher import settings
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.guard import limits
from mlflow_launcher.guard.asgi import Guard
from mlflow_launcher.guard.sign_in import SignInGate
from mlflow_launcher.guard.transfers import Slots
from mlflow_launcher.sso import keys as keys_module
from mlflow_launcher.sso import token as tokens
from mlflow_launcher.sso.gate import TokenGate
from mlflow_launcher.sso.keys import Keys, KeyUnavailable
from mlflow_launcher.sso.sign_in import VERIFIED, SingleSignOn, digest, identity
from mlflow_launcher.sso.token import Refused
from tests.fake_alb import ARN, CLIENT_ID, ISSUER, OTHER_ARN, Signer, b64, key_server

KEY_URL = "https://keys.test/"
SSO_ENV = {"MLFLOW_SSO_ALB_ARN": ARN, "MLFLOW_SSO_KEY_URL": KEY_URL}
CLAIMS = {"sub": "1234", "email": "ana@example.com", "groups": ["ml", "mlflow-admins"]}


# ---------------------------------------------------------------- settings -----------------


def test_off_unless_the_alb_arn_is_set_and_nothing_half_set():
    assert settings.load_sso({}) is None
    with pytest.raises(LauncherError) as error:
        settings.load_sso({"MLFLOW_SSO_ADMIN_GROUP": "admins", "MLFLOW_SSO_USERNAME_CLAIM": "upn"})
    assert "MLFLOW_SSO_USERNAME_CLAIM, MLFLOW_SSO_ADMIN_GROUP set but MLFLOW_SSO_ALB_ARN" in str(
        error.value
    )


def test_the_keys_come_from_aws_endpoint_for_the_albs_partition_and_region():
    config = settings.load_sso({"MLFLOW_SSO_ALB_ARN": ARN})
    assert config is not None and config.aws_keys
    assert config.key_url == "https://public-keys.auth.elb.eu-west-1.amazonaws.com/"
    assert (config.username_claim, config.groups_claim, config.admin_group) == (
        "email",
        "groups",
        None,
    )
    gov = ARN.replace("arn:aws:", "arn:aws-us-gov:").replace("eu-west-1", "us-gov-west-1")
    assert settings.load_sso({"MLFLOW_SSO_ALB_ARN": gov}).key_url == (
        "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1/"
    )
    china = ARN.replace("arn:aws:", "arn:aws-cn:").replace("eu-west-1", "cn-north-1")
    with pytest.raises(LauncherError, match="partition \\(aws-cn\\); set MLFLOW_SSO_KEY_URL"):
        settings.load_sso({"MLFLOW_SSO_ALB_ARN": china})
    given = settings.load_sso({"MLFLOW_SSO_ALB_ARN": china, "MLFLOW_SSO_KEY_URL": KEY_URL})
    assert given.key_url == KEY_URL and not given.aws_keys


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MLFLOW_SSO_ALB_ARN", ARN.replace("loadbalancer/app/", "loadbalancer/net/")),
        ("MLFLOW_SSO_ALB_ARN", "arn:aws:elasticloadbalancing:eu-west-1:1234:loadbalancer/app/a/1"),
        ("MLFLOW_SSO_KEY_URL", "https://keys.test"),  # the key ID would join the host
        ("MLFLOW_SSO_KEY_URL", "file:///etc/"),
        ("MLFLOW_SSO_TRUSTED_CIDRS", "10.0.0.0/24,10.0.1.5/24"),
        ("MLFLOW_SSO_USERNAME_CLAIM", "e mail"),
    ],
)
def test_a_bad_value_is_named(name, value):
    with pytest.raises(LauncherError, match=f"invalid environment: {name} must be"):
        settings.load_sso({**SSO_ENV, name: value})


def test_the_full_settings():
    config = settings.load_sso(
        {
            **SSO_ENV,
            "MLFLOW_SSO_USERNAME_CLAIM": "preferred_username",
            "MLFLOW_SSO_GROUPS_CLAIM": "cognito:groups",
            "MLFLOW_SSO_ADMIN_GROUP": "mlflow-admins",
            "MLFLOW_SSO_ISSUER": ISSUER,
            "MLFLOW_SSO_CLIENT_ID": CLIENT_ID,
            "MLFLOW_SSO_TRUSTED_CIDRS": "10.0.0.0/24, 10.0.1.0/24",
        }
    )
    assert [str(n) for n in config.trusted_networks] == ["10.0.0.0/24", "10.0.1.0/24"]
    assert (config.groups_claim, config.issuer, config.client_id) == (
        "cognito:groups",
        ISSUER,
        CLIENT_ID,
    )


# ---------------------------------------------------------------- tokens -------------------


class FakeKeys:
    """The key endpoint as a dictionary; records what was asked for."""

    def __init__(self, *signers: Signer) -> None:
        self.pems = {KEY_URL + s.kid: s.pem() for s in signers}
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        if url not in self.pems:
            raise KeyUnavailable("HTTP 404", unknown=True)
        return self.pems[url]


def _sso(signer: Signer, fetch=None, provision=None, clock=time.time, **env) -> SingleSignOn:
    config = settings.load_sso({**SSO_ENV, **env})
    fetch = fetch or FakeKeys(signer)
    return SingleSignOn(
        config,
        provision=provision or (lambda username, admin: None),
        reserved="admin",
        keys=Keys(config.key_url, fetch=fetch),
        clock=clock,
    )


def test_a_token_as_the_alb_makes_it_signs_its_user_in_padded_or_not():
    signer = Signer()
    fetch = FakeKeys(signer)
    sso = _sso(signer, fetch)
    assert "=" in signer.token(CLAIMS)  # the segments carry padding, as AWS warns
    assert sso.sign_in(signer.token(CLAIMS)) == "ana@example.com"
    assert sso.sign_in(signer.token(CLAIMS, padded=False)) == "ana@example.com"
    assert fetch.asked == [KEY_URL + signer.kid]  # fetched once, then kept


def _hs256(header: dict, claims: dict, secret: bytes) -> str:
    signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64(mac)}"


def _refusals(signer: Signer) -> dict[str, tuple[str, str]]:
    """Tokens that must sign no one in, by what is wrong with them: (token, the reason)."""
    forger = Signer(kid=signer.kid)  # another key claiming the ALB's key ID
    good = signer.token(CLAIMS)
    head, payload, signature = good.split(".")
    header = json.loads(base64.urlsafe_b64decode(head))
    none_header = b64(json.dumps({**header, "alg": "none"}).encode())
    admin_claims = b64(json.dumps({**CLAIMS, "email": "boss@example.com"}).encode())
    later = b64(json.dumps({**header, "exp": header["exp"] + 900_000}).encode())
    der = signer.key.sign(f"{head}.{payload}".encode(), ec.ECDSA(SHA256()))
    not_signed = "signature is not the load balancer's"
    unusable = "email claim is missing or not a usable MLflow username"
    return {
        "signed by another key": (forger.token(CLAIMS), not_signed),
        "signed by another ALB": (signer.token(CLAIMS, signer=OTHER_ARN), "another load bal"),
        "no signer": (signer.token(CLAIMS, signer=None), "another load balancer"),
        "expired": (signer.token(CLAIMS, lifetime=-(tokens.LEEWAY_SECONDS + 5)), "expired"),
        "no expiry": (signer.token(CLAIMS, exp=None), "no expiry"),
        "expiry not a number": (signer.token(CLAIMS, exp="soon"), "no expiry"),
        "alg none": (f"{none_header}.{payload}.AAAA", "algorithm is 'none'"),
        "alg none, no signature": (f"{none_header}.{payload}.", "not a JWT"),
        # The classic swap: HMAC keyed with the ALB's public key, which anyone may fetch.
        "alg HS256 keyed with the public key": (
            _hs256({**header, "alg": "HS256"}, CLAIMS, signer.pem()),
            "algorithm is 'HS256'",
        ),
        "alg ES384": (signer.token(CLAIMS, alg="ES384"), "algorithm is 'ES384'"),
        "no alg": (signer.token(CLAIMS, alg=None), "algorithm is None"),
        "claims changed after signing": (f"{head}.{admin_claims}.{signature}", not_signed),
        "expiry changed after signing": (f"{later}.{payload}.{signature}", not_signed),
        "signature cut": (f"{head}.{payload}.{signature[:40]}", "not an ES256 one"),
        "DER signature": (f"{head}.{payload}.{b64(der)}", "not an ES256 one"),
        "two segments": (f"{head}.{payload}", "not a JWT"),
        "four segments": (f"{good}.{signature}", "not a JWT"),
        "not base64": (f"{head}.{payload}.sig*nature", "not a JWT"),
        "header not JSON": (f"{b64(b'{not json')}.{payload}.{signature}", "header is not JSON"),
        "header a list": (f"{b64(b'[1]')}.{payload}.{signature}", "not a JSON object"),
        "header nested deep": (f"{b64(b'[' * 9000)}.{payload}.{signature}", "not JSON"),
        "too long": (signer.token({**CLAIMS, "pad": "x" * tokens.MAX_TOKEN_CHARS}), "longer"),
        "wrong issuer": (signer.token(CLAIMS, iss="https://elsewhere.example"), "issuer"),
        "wrong client": (signer.token(CLAIMS, client="another-app"), "another client"),
        "payload expired": (signer.token({**CLAIMS, "exp": int(time.time()) - 60}), "expired"),
        "payload expiry not a number": (signer.token({**CLAIMS, "exp": "soon"}), "expired"),
        "payload of another issuer": (
            signer.token({**CLAIMS, "iss": "https://elsewhere.example"}),
            "another issuer",
        ),
        "no username claim": (signer.token({"sub": "1234"}), unusable),
        "username not text": (signer.token({**CLAIMS, "email": ["ana@example.com"]}), unusable),
        "username padded": (signer.token({**CLAIMS, "email": " ana@example.com"}), unusable),
        "username with a newline": (signer.token({**CLAIMS, "email": "ana\n@x"}), unusable),
        "username over 255 characters": (signer.token({**CLAIMS, "email": "a" * 256}), unusable),
        "e-mail not verified": (
            signer.token({**CLAIMS, "email_verified": False}),
            "not verified this e-mail address",
        ),
        "e-mail not verified (text)": (
            signer.token({**CLAIMS, "email_verified": "false"}),
            "not verified this e-mail address",
        ),
        "MLflow's own admin": (signer.token({**CLAIMS, "email": "admin"}), "password only"),
    }


def test_every_forged_expired_or_unusable_token_is_refused_with_401():
    signer = Signer()
    provisioned = []
    sso = _sso(
        signer,
        provision=lambda u, a: provisioned.append(u),
        MLFLOW_SSO_ISSUER=ISSUER,
        MLFLOW_SSO_CLIENT_ID=CLIENT_ID,
    )
    accepted, wrong = {}, {}
    for what, (token, reason) in _refusals(signer).items():
        try:
            accepted[what] = sso.sign_in(token)
        except Refused as refusal:
            if refusal.status != 401 or reason not in refusal.reason:
                wrong[what] = (refusal.status, refusal.reason)
    assert accepted == {}
    assert wrong == {}  # each refused for its own reason
    assert provisioned == []  # no user made or changed


def test_a_token_is_refused_before_its_key_is_fetched_unless_its_header_passes():
    """Only a header naming ES256, this ALB, a future expiry and a plain key ID gets a fetch:
    a forger who does not know the ALB's ARN makes the server fetch nothing."""
    signer = Signer()
    fetch = FakeKeys(signer)
    sso = _sso(signer, fetch)
    for kid in ("../../evil", "a/b", "x?y=1", "k%2e", "", "k" * 65, "kid@evil.example", 7):
        with pytest.raises(Refused, match="key ID"):
            sso.sign_in(signer.token(CLAIMS, kid=kid))
    for what in ("signed by another ALB", "expired", "alg none", "alg ES384", "too long"):
        with pytest.raises(Refused):
            sso.sign_in(_refusals(signer)[what][0])
    assert fetch.asked == []


def test_a_leeway_of_a_few_seconds_for_clocks():
    signer = Signer()
    sso = _sso(signer)
    assert sso.sign_in(signer.token(CLAIMS, lifetime=-(tokens.LEEWAY_SECONDS - 3)))


# ---------------------------------------------------------------- keys ---------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_id_aws_does_not_know_is_refused_and_not_asked_for_again_for_a_while():
    signer, stranger = Signer(), Signer()
    fetch, clock = FakeKeys(signer), Clock()
    keys = Keys(KEY_URL, fetch=fetch, clock=clock)
    for _ in range(3):
        with pytest.raises(Refused, match="not signed by AWS") as refusal:
            keys.get(stranger.kid)
        assert refusal.value.status == 401
    assert fetch.asked == [KEY_URL + stranger.kid]
    clock.now += keys_module.UNKNOWN_KEY_SECONDS + 1
    with pytest.raises(Refused):
        keys.get(stranger.kid)
    assert len(fetch.asked) == 2


def test_an_endpoint_that_fails_is_503_and_tried_again_after_a_pause():
    signer, clock, calls = Signer(), Clock(), []

    def flaky(url: str) -> bytes:
        calls.append(url)
        if len(calls) == 1:
            raise KeyUnavailable("timed out")
        return signer.pem()

    keys = Keys(KEY_URL, fetch=flaky, clock=clock)
    with pytest.raises(Refused, match="cannot fetch") as refusal:
        keys.get(signer.kid)
    assert (refusal.value.status, refusal.value.retry_after) == (503, keys_module.RETRY_SECONDS)
    with pytest.raises(Refused):
        keys.get(signer.kid)
    assert len(calls) == 1
    clock.now += keys_module.RETRY_SECONDS
    assert keys.get(signer.kid) is not None


def test_fetches_are_bounded_per_minute_and_keys_kept_are_bounded():
    signers = [Signer() for _ in range(keys_module.FETCHES_PER_MINUTE + 1)]
    clock = Clock()
    keys = Keys(KEY_URL, fetch=FakeKeys(*signers), clock=clock)
    for s in signers[:-1]:
        keys.get(s.kid)
    with pytest.raises(Refused, match="as many load balancer keys this minute") as refusal:
        keys.get(signers[-1].kid)
    assert refusal.value.status == 503
    clock.now += 60
    keys.get(signers[-1].kid)
    many = [Signer() for _ in range(keys_module.KEYS_KEPT + 2)]
    keys = Keys(KEY_URL, fetch=FakeKeys(*many), clock=clock)
    for i, s in enumerate(many):
        clock.now += 60 * (i % keys_module.FETCHES_PER_MINUTE == 0)
        keys.get(s.kid)
    assert len(keys._keys) == keys_module.KEYS_KEPT


@pytest.mark.parametrize(
    "answer",
    [
        b"not a key",
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    ],
)
def test_an_answer_that_is_not_a_p256_key_is_503(answer):
    keys = Keys(KEY_URL, fetch=lambda url: answer)
    with pytest.raises(Refused, match="cannot fetch") as refusal:
        keys.get(Signer().kid)
    assert refusal.value.status == 503


def test_fetch_pem_over_http_with_its_size_bounded(monkeypatch):
    signer = Signer()
    with key_server(signer) as server:
        assert keys_module.fetch_pem(server.url + signer.kid) == signer.pem()
        with pytest.raises(KeyUnavailable) as missing:
            keys_module.fetch_pem(server.url + "no-such-key")
        assert missing.value.unknown
        monkeypatch.setattr(keys_module, "MAX_KEY_BYTES", 100)
        with pytest.raises(KeyUnavailable, match="over 100 bytes"):
            keys_module.fetch_pem(server.url + signer.kid)
    with pytest.raises(KeyUnavailable) as down:
        keys_module.fetch_pem(server.url + signer.kid)  # nothing listens any more
    assert not down.value.unknown


# ---------------------------------------------------------------- users --------------------


@pytest.mark.parametrize(
    ("groups", "admin"),
    [
        (["ml", "mlflow-admins"], True),
        ("mlflow-admins", True),
        (["ml"], False),
        (None, False),
        ({"mlflow-admins": 1}, False),
    ],
)
def test_admin_is_membership_of_the_configured_group(groups, admin):
    config = settings.load_sso({**SSO_ENV, "MLFLOW_SSO_ADMIN_GROUP": "mlflow-admins"})
    claims = {**CLAIMS, "groups": groups} if groups is not None else {"email": "ana@x"}
    assert identity(claims, config).admin is admin


def test_without_an_admin_group_the_idp_decides_no_admin_flag():
    assert identity(CLAIMS, settings.load_sso(SSO_ENV)).admin is None


def test_first_sign_in_provisions_then_the_user_is_remembered_for_a_while():
    signer, clock, calls = Signer(), Clock(), []
    sso = _sso(
        signer,
        provision=lambda u, a: calls.append((u, a)),
        clock=clock,
        MLFLOW_SSO_ADMIN_GROUP="mlflow-admins",
    )
    token = signer.token(CLAIMS, exp=int(clock.now + 600))
    assert sso.remembered(token) is None
    assert sso.sign_in(token) == "ana@example.com"
    assert sso.remembered(token) == "ana@example.com"
    assert sso.sign_in(token) == "ana@example.com"
    assert calls == [("ana@example.com", True)]
    clock.now += 31  # the sign-in cache's time (MLFLOW_AUTH_CACHE_SECONDS' default)
    assert sso.remembered(token) is None
    sso.sign_in(token)
    # Removed from the group at the IdP: the next token says so, and MLflow is told at once.
    demoted = signer.token({**CLAIMS, "groups": ["ml"]}, exp=int(clock.now + 600))
    sso.sign_in(demoted)
    assert calls[1:] == [("ana@example.com", True), ("ana@example.com", False)]


def test_a_user_store_that_fails_is_503_and_not_remembered():
    signer = Signer()

    def down(username, admin):
        raise OSError("database unreachable")

    sso = _sso(signer, provision=down)
    with pytest.raises(Refused, match="users' database") as refusal:
        sso.sign_in(signer.token(CLAIMS))
    assert refusal.value.status == 503
    assert sso.remembered(signer.token(CLAIMS)) is None


def test_the_header_is_refused_from_outside_the_trusted_networks():
    signer = Signer()
    sso = _sso(signer, MLFLOW_SSO_TRUSTED_CIDRS="10.0.0.0/24,fd00::/64")
    assert sso.allowed_from("10.0.0.17") and sso.allowed_from("fd00::5")
    assert not sso.allowed_from("10.0.1.17")
    assert not sso.allowed_from(None) and not sso.allowed_from("garbage")
    with pytest.raises(Refused, match="outside the load balancer's networks"):
        sso.username_for(signer.token(CLAIMS), "10.9.9.9")
    assert sso.username_for(signer.token(CLAIMS), "10.0.0.4") == "ana@example.com"


def test_mlflow_side_takes_the_guards_answer_for_the_same_token_only():
    signer = Signer()
    fetch = FakeKeys(signer)
    sso = _sso(signer, fetch)
    token = signer.token(CLAIMS)
    VERIFIED.set((digest(token), "ana@example.com"))
    assert sso.username_for(token, None) == "ana@example.com"
    assert fetch.asked == []  # nothing verified again
    with pytest.raises(Refused):  # another token: verified again (and forged here)
        sso.username_for(Signer().token(CLAIMS), None)


# ---------------------------------------------------------------- the guard ----------------


class FakeApp:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls.append({"path": scope["path"], "body": len(body), "sso": VERIFIED.get()})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _request(guard, headers, body=b"", client="10.0.0.5"):
    scope = {
        "type": "http",
        "path": "/ajax-api/2.0/mlflow/runs/log-batch",
        "method": "POST",
        "headers": [(k.encode(), v.encode()) for k, v in headers]
        + [(b"content-length", str(len(body)).encode())],
        "client": (client, 40000),
    }
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def _guard(sso: SingleSignOn, tmp_path, checks: int = 2) -> tuple[Guard, FakeApp, list]:
    app, passwords = FakeApp(), []
    lim = limits.Limits(sign_in_checks=checks)

    def check(username, password):
        passwords.append(username)
        return False

    gate = SignInGate(lim, check=check, remembered=lambda u, p: False)
    guard = Guard(
        app,
        lim,
        sign_in=gate,
        unprotected=lambda path: path == "/health",
        slots=Slots(tmp_path / "slots", 1),
        sso=TokenGate(sso, checks),
    )
    return guard, app, passwords


def test_a_valid_token_is_a_login_for_the_body_limit(tmp_path):
    signer = Signer()
    guard, app, _ = _guard(_sso(signer), tmp_path)
    body = b"x" * (limits.ANONYMOUS_BODY_BYTES + 1)
    status, _, _ = _request(guard, [("x-amzn-oidc-data", signer.token(CLAIMS))], body)
    assert status == 200
    assert app.calls[0]["body"] == len(body)
    assert app.calls[0]["sso"][1] == "ana@example.com"
    # Without a login the same body is refused before MLflow reads it.
    status, _, _ = _request(guard, [], body)
    assert status == 401 and len(app.calls) == 1


def test_an_invalid_token_is_401_before_mlflow_reads_anything_and_asks_no_password(tmp_path):
    signer = Signer()
    guard, app, passwords = _guard(_sso(signer), tmp_path)
    basic = "Basic " + base64.b64encode(b"admin:guess").decode()
    for token in (Signer().token(CLAIMS), signer.token(CLAIMS, signer=OTHER_ARN), "garbage"):
        status, headers, body = _request(
            guard, [("x-amzn-oidc-data", token), ("authorization", basic)], b"{}"
        )
        assert status == 401, body
        assert b"www-authenticate" not in headers  # a browser behind the ALB would prompt
        assert json.loads(body)["error_code"] == "UNAUTHENTICATED"
        assert b"single sign-on refused" in body
    assert app.calls == [] and passwords == []  # the header decides; no password was checked


def test_two_headers_sign_no_one_in(tmp_path):
    signer = Signer()
    guard, app, _ = _guard(_sso(signer), tmp_path)
    token = signer.token(CLAIMS)
    status, _, _ = _request(guard, [("x-amzn-oidc-data", token), ("x-amzn-oidc-data", token)])
    assert status == 401 and app.calls == []


def test_a_token_from_outside_the_trusted_networks_is_401(tmp_path):
    signer = Signer()
    guard, app, _ = _guard(_sso(signer, MLFLOW_SSO_TRUSTED_CIDRS="10.0.0.0/28"), tmp_path)
    token = signer.token(CLAIMS)
    assert _request(guard, [("x-amzn-oidc-data", token)], client="10.0.0.99")[0] == 401
    assert app.calls == []
    assert _request(guard, [("x-amzn-oidc-data", token)], client="10.0.0.9")[0] == 200


def test_checks_beyond_the_slots_and_queue_are_503(monkeypatch):
    """Tokens no one verified yet go through `count` threads and a bounded queue, as
    passwords do; the rest are told to retry instead of piling up."""
    monkeypatch.setattr("mlflow_launcher.guard.sign_in.SIGN_IN_QUEUE", 1)
    monkeypatch.setattr("mlflow_launcher.guard.sign_in.SIGN_IN_WAIT_SECONDS", 0.2)
    signer = Signer()
    sso = _sso(signer)
    gate = TokenGate(sso, 1)

    async def scenario():
        started = []

        def slow(token):
            started.append(token)
            time.sleep(0.5)
            return "ana@example.com"

        monkeypatch.setattr(sso, "sign_in", slow)
        first = asyncio.create_task(gate.verify(signer.token(CLAIMS), None))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(gate.verify(signer.token(CLAIMS, lifetime=100), None))
        third = asyncio.create_task(gate.verify(signer.token(CLAIMS, lifetime=90), None))
        return await asyncio.gather(first, second, third)

    first, second, third = asyncio.run(scenario())
    assert first.username == "ana@example.com"
    assert {second.refusal.status, third.refusal.status} == {503}


# ---------------------------------------------------------------- serve --------------------


def test_with_single_sign_on_the_config_names_its_function_which_exists(tmp_path):
    import configparser
    import importlib

    from mlflow_launcher import auth, sso

    path = auth.write_config(
        tmp_path,
        database_uri="sqlite:///a.db",
        default_permission="READ",
        admin_username="admin",
        authorization_function=sso.AUTHORIZATION_FUNCTION,
    )
    config = configparser.ConfigParser()
    config.read(path)
    module, function = config["mlflow"]["authorization_function"].split(":")
    # As MLflow resolves it (mlflow.server.auth get_auth_func).
    assert callable(getattr(importlib.import_module(module), function))


def test_serve_refuses_single_sign_on_without_sign_in(monkeypatch, tmp_path, caplog):
    import logging

    from mlflow_launcher import cli

    ca = tmp_path / "ca.pem"
    ca.write_text("not read")
    env = {
        "MLFLOW_DB_ENGINE": "mysql",
        "MLFLOW_DB_HOST": "db.internal",
        "MLFLOW_DB_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        "MLFLOW_DB_CA_BUNDLE": str(ca),
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://b/a",
        "MLFLOW_ALLOWED_HOSTS": "mlflow.example.com",
        "MLFLOW_SSO_ALB_ARN": ARN,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli, "_credentials", lambda db: pytest.fail("no secret read first"))
    monkeypatch.setattr(cli, "_setup_logging", lambda: None)
    assert cli.main(["serve"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "invalid environment: MLFLOW_SSO_ALB_ARN is set but authentication is off: single "
        "sign-on makes MLflow users, which needs the MLFLOW_AUTH_* variables"
    ]
