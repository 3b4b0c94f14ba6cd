"""The deploy check (`mlflow-launcher verify`) against real servers: the chart's default pod
(synthesized ConfigMap, migrate then serve) on MariaDB and moto's S3, checked by the
synthesized Job's container under the in-cluster Service name and an NLB's name, after it has
seen the synthesized Deployment rolled out (a local fake of the Kubernetes API serves it).

Each case breaks one real thing (a Host or an origin missing from the server's settings, the
database gone, the bucket gone, authentication without a login, nothing listening, another
template rolled out) and asserts the exit code, the one-line reason in the log and the same
reason in the FAILURE signal CloudFormation would get, with the Job's logs command. What passes
by itself (a database failover, a load balancer without targets yet) is waited out: the check
succeeds once it is over.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import itest_launcher as launcher
import itest_template as template
import pytest
from itest_browser import NLB_HOST, send
from itest_chart import container_env, pod, substitute_endpoints
from itest_servers import PORT_80, REGION
from itest_verify import (
    ADMIN_SECRET_ENV,
    INTERNAL_URL,
    LOCAL_IMAGE,
    NLB_URL,
    PRESIGNED_PATH,
    PRESIGNED_QUERY,
    Database,
    Relay,
    RunningVerify,
    SignalReceiver,
    Verdict,
    admin_secret,
    assert_failed,
    assert_no_secrets,
    basic_auth_server,
    kubernetes_api,
    local_auth,
    new_database,
    rolled_out,
    run_verify,
    signal_receiver,
    tls_terminator,
    verify_env,
    verify_job,
)

from config import load_settings
from tests.conftest import synthesize
from tests.fake_kubernetes import FakeKubernetes, State, fake_kubernetes

pytestmark = [pytest.mark.integration, PORT_80]

# Each server on port 80 of its own loopback address, so that Host and Origin carry no port.
MAIN, HOSTS_WITHOUT_LB, NO_ORIGINS, BASIC_AUTH, LATE, TLS, NOBODY = (
    f"127.0.0.{n}" for n in (1, 2, 3, 4, 5, 6, 9)
)
ROLLOUT = "deployment mlflow/mlflow"
LOGS_COMMAND = re.compile(r"kubectl -n mlflow logs job/mlflow-verify-[0-9a-f]{12}")
STEPS = (
    "/health answering",
    "Host accepted on the API",
    "browser-style write accepted",
    "creating an experiment",
    "creating a run",
    "logging params, metrics and a tag",
    "uploading an artifact through the server",
    "downloading the artifact",
    "searching runs by metric",
    "ending the run",
)
API_CHECK = "GET /api/2.0/mlflow/experiments/search?max_results=1"


@dataclass
class Deployment:
    chart: object
    database: Database
    bucket: str
    relay: Relay
    server_env: dict[str, str]
    """The server container's environment, the database reached through `relay`."""
    admin: dict
    """The admin login's secret in moto (the server's, with authentication on, and the Job's)."""
    logs_command: str
    moto: object
    kubernetes: FakeKubernetes
    """The API server the Job asks about the rollout: it serves the Deployment rolled out."""
    local: Callable[[object, dict], dict[str, str]]
    """A synthesized chart's container's environment, made local as `server_env` is."""

    def job_env(self, receiver: SignalReceiver, **env: str) -> dict[str, str]:
        return verify_env(self.chart, receiver.url, self.admin["arn"], self.kubernetes) | env

    def verify(self, receiver: SignalReceiver, home: Path, address: str, **env: str) -> Verdict:
        """The Job's `verify` (its environment changed by `env`), its names at `address`."""
        return run_verify(self.job_env(receiver, **env), receiver, home, address, self.moto.env())

    def start_verify(
        self, receiver: SignalReceiver, home: Path, address: str, **env: str
    ) -> RunningVerify:
        """The same, in the background."""
        job_env = self.job_env(receiver, **env)
        return RunningVerify(job_env, receiver, home, address, self.moto.env())


@pytest.fixture(scope="module")
def deployment(synth, mariadb, moto, test_ca, tmp_path_factory) -> Iterator[Deployment]:
    chart = synth("default")
    _, (init, main) = pod(chart)
    database, bucket = new_database(mariadb, moto), moto.create_bucket()
    admin = admin_secret(moto, f"admin-{secrets.token_urlsafe(18)}")
    relay = Relay(mariadb.port).start()
    home = tmp_path_factory.mktemp("verify-pod")
    auth = local_auth(container_env(chart, main), database, moto, admin)

    def local(chart, container: dict) -> dict[str, str]:
        env = container_env(chart, container)
        env |= {key: value for key, value in auth.items() if key in env}
        env = substitute_endpoints(env, database, moto, test_ca.ca, bucket)
        env |= {"MLFLOW_DB_NAME": database.name, "MLFLOW_DB_PORT": str(relay.port)}
        env["MLFLOW_PORT"] = "80"
        return launcher.container_env(env, home)

    template.migrate(mariadb, init["args"], local(chart, init))
    [container] = verify_job(chart)["spec"]["template"]["spec"]["containers"]
    logs_command = container_env(chart, container)["MLFLOW_VERIFY_LOGS_COMMAND"]
    assert LOGS_COMMAND.fullmatch(logs_command), logs_command
    with kubernetes_api(chart, tmp_path_factory.mktemp("kubernetes")) as api:
        yield Deployment(
            chart,
            database,
            bucket,
            relay,
            local(chart, main),
            admin,
            logs_command,
            moto,
            api,
            local,
        )
    relay.cut()


@contextmanager
def serving(env: dict[str, str], address: str, log: Path) -> Iterator[launcher.Server]:
    server = launcher.Server({**env, "MLFLOW_HOST": address}, log)
    server.base_url = f"http://{address}:80"
    try:
        server.wait_healthy(timeout=120)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def main_server(deployment, tmp_path_factory) -> Iterator[launcher.Server]:
    with serving(deployment.server_env, MAIN, tmp_path_factory.mktemp("main") / "log") as s:
        # In use, as a server is by the time its database fails: MLflow opens its store on the
        # first signed-in API request, and a cold worker would retry an unreachable database
        # for minutes (or, on a read-only one, fail to write its Default experiment).
        _wait_for_the_database(s, deployment)
        yield s


@pytest.fixture
def receiver() -> Iterator[SignalReceiver]:
    with signal_receiver() as r:
        yield r


def _as_admin(deployment: Deployment, path: str, body: dict) -> tuple[int, str]:
    """(status, body) of a POST to the main server's REST API as the admin."""
    token = f"{deployment.admin['username']}:{deployment.admin['password']}"
    auth = f"Basic {base64.b64encode(token.encode()).decode()}"
    return send(80, "POST", path, "127.0.0.1", body, Authorization=auth)


def _api(deployment: Deployment, path: str, body: dict) -> dict:
    """The main server's REST API, as the admin."""
    status, text = _as_admin(deployment, path, body)
    assert status == 200, text
    return json.loads(text)


def verify_experiments(deployment: Deployment) -> dict[str, dict]:
    """Every experiment a verify made, deleted ones too, by id."""
    found = _api(
        deployment,
        "/api/2.0/mlflow/experiments/search",
        {"view_type": "ALL", "filter": "name LIKE 'mlflow-on-eks-verify-%'", "max_results": 1000},
    )
    return {e["experiment_id"]: e for e in found.get("experiments", [])}


def run_stages(deployment: Deployment, experiment_id: str) -> list[str]:
    found = _api(
        deployment,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment_id], "run_view_type": "ALL"},
    )
    return [r["info"]["lifecycle_stage"] for r in found.get("runs", [])]


def outcomes(*parts: str) -> re.Pattern:
    """The signal's Data: each target with its outcome, "ok (<seconds>)" written as "ok"."""
    text = "; ".join(re.escape(p).replace(r"\ ok", r" ok \(\d+\.\d s\)") for p in parts)
    return re.compile(text)


# ---------------------------------------------------------------- it works -------------------


def test_a_healthy_deployment_verifies_under_both_names(
    deployment, main_server, moto, receiver, tmp_path
):
    before = verify_experiments(deployment)
    verdict = deployment.verify(receiver, tmp_path, MAIN)
    assert verdict.returncode == 0, verdict.output
    for target in (INTERNAL_URL, NLB_URL):
        for step in STEPS:
            line = rf"verify {re.escape(target)}: {re.escape(step)} ok \(\d+\.\d\d s\)\n"
            assert re.search(line, verdict.output), (target, step, verdict.output)
    assert f"verify ok: MLflow works under {INTERNAL_URL}, {NLB_URL} (" in verdict.output

    # One signal, on the wire as `curl -T file URL` sends it.
    [request] = verdict.requests
    assert (request.method, request.path) == ("PUT", f"{PRESIGNED_PATH}?{PRESIGNED_QUERY}")
    assert "content-type" not in {name.lower() for name in request.headers}
    [signal] = verdict.signals
    assert set(signal) == {"Status", "Reason", "UniqueId", "Data"}
    assert (signal["Status"], signal["UniqueId"]) == ("SUCCESS", "mlflow-verify")
    assert signal["Reason"] == f"MLflow works under {INTERNAL_URL}, {NLB_URL}"
    assert outcomes(f"{ROLLOUT} ok", f"{INTERNAL_URL} ok", f"{NLB_URL} ok").fullmatch(
        signal["Data"]
    ), signal
    assert f"verify: {ROLLOUT} rolled out" in verdict.output
    # It asked the API as the pod's ServiceAccount, over TLS against the cluster CA.
    assert {auth for _, _, auth in deployment.kubernetes.requests} == {
        f"Bearer {deployment.kubernetes.token}"
    }
    assert deployment.kubernetes.token not in verdict.output

    # What the check made is gone: its experiments and runs deleted, their artifacts too.
    made = {k: v for k, v in verify_experiments(deployment).items() if k not in before}
    assert len(made) == 2, made
    objects = moto.objects(deployment.bucket)
    for experiment_id, experiment in made.items():
        assert experiment["lifecycle_stage"] == "deleted", experiment
        assert run_stages(deployment, experiment_id) == ["deleted"]
        left = [key for key in objects if key.startswith(f"artifacts/{experiment_id}/")]
        assert not left, f"artifacts left behind: {left}"
    assert_no_secrets(verdict, deployment.database.password, deployment.admin["password"])


# ---------------------------------------------------------------- the server's settings ------


def test_a_load_balancer_name_missing_from_the_allowed_hosts(deployment, receiver, tmp_path):
    hosts = deployment.server_env["MLFLOW_ALLOWED_HOSTS"].split(",")
    kept = [h for h in hosts if ".elb." not in h]
    assert len(kept) == len(hosts) - 1, hosts
    env = {**deployment.server_env, "MLFLOW_ALLOWED_HOSTS": ",".join(kept)}
    with serving(env, HOSTS_WITHOUT_LB, tmp_path / "server.log"):
        verdict = deployment.verify(receiver, tmp_path, HOSTS_WITHOUT_LB)
    assert_failed(
        verdict,
        f"{NLB_URL}: MLflow refuses Host '{NLB_HOST}' (403): it is missing from the server's "
        "allowed hosts (MLFLOW_ALLOWED_HOSTS, config server.allowed_hosts)",
        deployment.logs_command,
    )
    # The in-cluster name was checked in full first.
    assert f"verify {INTERNAL_URL}: ending the run ok" in verdict.output
    data = verdict.signals[0]["Data"]
    assert outcomes(f"{ROLLOUT} ok", f"{INTERNAL_URL} ok", f"{NLB_URL} failed").fullmatch(data)
    assert_no_secrets(verdict, deployment.database.password, deployment.admin["password"])


def test_no_cors_origins_breaks_the_ui(deployment, receiver, tmp_path):
    env = {**deployment.server_env, "MLFLOW_CORS_ALLOWED_ORIGINS": ""}
    with serving(env, NO_ORIGINS, tmp_path / "server.log"):
        verdict = deployment.verify(receiver, tmp_path, NO_ORIGINS)
    assert_failed(
        verdict,
        f"{INTERNAL_URL}: a browser page served from {INTERNAL_URL} could not write (the UI is "
        "broken under this name): MLflow's CORS origins (MLFLOW_CORS_ALLOWED_ORIGINS) do not "
        "list it",
        deployment.logs_command,
    )
    data = verdict.signals[0]["Data"]
    assert outcomes(f"{ROLLOUT} ok", f"{INTERNAL_URL} failed", f"{NLB_URL} not checked").fullmatch(
        data
    ), data
    assert_no_secrets(verdict, deployment.database.password, deployment.admin["password"])


# ---------------------------------------------------------------- what the server relies on --


def test_a_database_failover_is_waited_out(deployment, main_server, receiver, tmp_path):
    """The database goes away during the check (as for the minute or two of a Multi-AZ
    failover) and comes back: MLflow answers 503 meanwhile, and the check waits it out."""
    deployment.relay.cut()
    try:
        running = deployment.start_verify(receiver, tmp_path, MAIN)
        # The check has met the server's error and is retrying; then the database is back.
        running.wait_for(f"{API_CHECK}: HTTP 50", timeout=180)
        running.wait_for("retrying for up to", timeout=30)
    finally:
        deployment.relay.start()
    verdict = running.finish()
    assert verdict.returncode == 0, verdict.output
    assert [s["Status"] for s in verdict.signals] == ["SUCCESS"]
    assert_no_secrets(verdict, deployment.database.password, deployment.admin["password"])


def test_the_database_gone_for_good(deployment, main_server, receiver, tmp_path):
    """Past the target's deadline, the server's last answer is the reason, in its words."""
    deployment.relay.cut()
    try:
        verdict = deployment.verify(receiver, tmp_path, MAIN, MLFLOW_VERIFY_TIMEOUT_SECONDS="20")
    finally:
        deployment.relay.start()
        _wait_for_the_database(main_server, deployment)
    assert verdict.returncode == 3, verdict.output
    reason = verdict.reason_logged().removesuffix(f" (logs: {deployment.logs_command})")
    # The server's last answer, a 503 either way: MLflow's own when the request reached the
    # tracking store, or the guard's when the sign-in check met the database first (a login
    # checked in the last auth.sign_in_cache_seconds skips the database).
    assert re.fullmatch(
        re.escape(f"{INTERNAL_URL}: {API_CHECK} answered 503: TEMPORARILY_UNAVAILABLE: ")
        + r"(\(MySQLdb\.OperationalError\) \(200[23], \"Can't connect to .*"
        + r"|the sign-in check could not read the users' database; retry in a few seconds)"
        + r" \(still after 20 s\)",
        reason,
    ), reason
    assert verdict.output.count("retrying for up to") >= 1
    assert_failed(verdict, reason, deployment.logs_command)
    assert_no_secrets(verdict, deployment.database.password, deployment.admin["password"])


def _wait_for_the_database(
    server: launcher.Server, deployment: Deployment, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while (answer := server.get("/health", "127.0.0.1"))[0] != 200 or not _reads(deployment):
        assert time.monotonic() < deadline, f"the server did not recover: {answer}"
        time.sleep(0.5)


def _reads(deployment: Deployment) -> bool:
    """A signed-in search answered: the sign-in check and the tracking store both read the
    database (an anonymous request stops at the sign-in check, before MLflow opens the store)."""
    path = "/api/2.0/mlflow/experiments/search"
    return _as_admin(deployment, path, {"max_results": 1})[0] == 200


def test_the_database_refusing_writes(deployment, main_server, mariadb, receiver, tmp_path):
    """Reads work, writes fail (a read-only instance, a full disk): the first write is the
    experiment the MLflow client creates, and the reason, once the deadline has passed, names
    that step."""
    mariadb.admin("SET GLOBAL read_only = ON;")
    try:
        # MLflow answers 503 (a failover looks the same for a while): retried to the deadline.
        verdict = deployment.verify(receiver, tmp_path, MAIN, MLFLOW_VERIFY_TIMEOUT_SECONDS="20")
    finally:
        mariadb.admin("SET GLOBAL read_only = OFF;")
    assert_failed(
        verdict,
        f"{INTERNAL_URL}: creating an experiment failed: the server answered HTTP 503 on every "
        "try (its log says why)",
        deployment.logs_command,
    )
    assert "browser-style write accepted ok" in verdict.output


def test_the_bucket_gone(deployment, main_server, moto, receiver, tmp_path):
    s3 = moto.client("s3")
    for key in moto.objects(deployment.bucket):
        s3.delete_object(Bucket=deployment.bucket, Key=key)
    s3.delete_bucket(Bucket=deployment.bucket)
    before = verify_experiments(deployment)
    try:
        # The server's 500 might be a passing one (as during a failover): retried to the end.
        verdict = deployment.verify(receiver, tmp_path, MAIN, MLFLOW_VERIFY_TIMEOUT_SECONDS="20")
    finally:
        s3.create_bucket(
            Bucket=deployment.bucket,
            CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name},
        )
    assert_failed(
        verdict,
        f"{INTERNAL_URL}: uploading an artifact through the server failed: the server "
        "answered HTTP 500 on every try (its log says why)",
        deployment.logs_command,
    )
    # Cleaned up all the same.
    [made] = [e for k, e in verify_experiments(deployment).items() if k not in before]
    assert made["lifecycle_stage"] == "deleted"
    assert_no_secrets(verdict, deployment.database.password, deployment.admin["password"])


# ---------------------------------------------------------------- signing in -----------------


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[str]:
    """MLflow's basic-auth app; yields its admin password."""
    password = f"admin-{secrets.token_urlsafe(18)}"
    server = basic_auth_server(tmp_path_factory.mktemp("basic-auth"), BASIC_AUTH, password)
    try:
        server.wait_healthy(timeout=120)
        yield password
    finally:
        server.stop()


def test_authentication_without_a_login(deployment, auth_server, receiver, tmp_path):
    job_env = deployment.job_env(receiver)
    job_env.pop(ADMIN_SECRET_ENV, None)
    verdict = run_verify(job_env, receiver, tmp_path, BASIC_AUTH, deployment.moto.env())
    assert_failed(
        verdict,
        f"{INTERNAL_URL}: the server requires authentication (401) and no login was given "
        "(MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_AUTH_ADMIN_SECRET_ID)",
        deployment.logs_command,
    )


def test_signing_in_with_the_admin_secret(deployment, auth_server, moto, receiver, tmp_path):
    right = admin_secret(moto, auth_server)
    # The variables the chart sets with authentication on (whether or not the default has it).
    login = {ADMIN_SECRET_ENV: right["arn"], "AWS_REGION": REGION}
    verdict = deployment.verify(receiver, tmp_path, BASIC_AUTH, **login)
    assert verdict.returncode == 0, verdict.output
    assert [s["Status"] for s in verdict.signals] == ["SUCCESS"]
    assert_no_secrets(verdict, auth_server)

    wrong = admin_secret(moto, f"wrong-{secrets.token_urlsafe(18)}")
    login[ADMIN_SECRET_ENV] = wrong["arn"]
    verdict = deployment.verify(receiver, tmp_path, BASIC_AUTH, **login)
    assert_failed(
        verdict,
        f"{INTERNAL_URL}: the server requires authentication (401) and the admin login in "
        "MLFLOW_AUTH_ADMIN_SECRET_ID was refused",
        deployment.logs_command,
    )
    assert_no_secrets(verdict, auth_server, wrong["password"])


# ---------------------------------------------------------------- nobody there ---------------


def test_nothing_listening(deployment, receiver, tmp_path):
    verdict = deployment.verify(receiver, tmp_path, NOBODY, MLFLOW_VERIFY_TIMEOUT_SECONDS="3")
    assert_failed(
        verdict,
        f"{INTERNAL_URL}: no answer within 3 s (last: Connection refused)",
        deployment.logs_command,
    )


# ---------------------------------------------------------------- still starting ------------


@contextmanager
def answering_503(address: str) -> Iterator[list[str]]:
    """What a load balancer answers while no target behind it is healthy: 503 to everything,
    on `address`:80, until the block ends; yields the paths asked."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
            self.send_response(503)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, 80), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_server_behind_503s_that_comes_up_is_waited_for(deployment, receiver, tmp_path):
    """503 from a load balancer without targets, then nothing listening while the server
    starts, then the server: the check retries through both and succeeds."""
    with answering_503(LATE) as asked:
        running = deployment.start_verify(receiver, tmp_path, LATE)
        running.wait_for("HTTP 503: <html><body><h1>503 Service Temporarily Unavailable", 120)
    assert asked and set(asked) == {"/health"}
    with serving(deployment.server_env, LATE, tmp_path / "server.log"):
        verdict = running.finish()
    assert verdict.returncode == 0, verdict.output
    assert [s["Status"] for s in verdict.signals] == ["SUCCESS"]


def test_a_deployment_on_another_template_fails_before_any_target(deployment, receiver, tmp_path):
    """The Job expects the image and config digest its own deploy applied; a Deployment that
    runs another (an operator's edit, a rollback) is reported at once, and nothing checked."""
    other = rolled_out(deployment.chart)
    template = other["spec"]["template"]
    template["metadata"]["annotations"]["mlflow-on-eks/config-digest"] = "0000000000000000"
    with fake_kubernetes([State(other)], tmp_path / "kubernetes") as api:
        env = verify_env(deployment.chart, receiver.url, deployment.admin["arn"], api)
        verdict = run_verify(env, receiver, tmp_path, NOBODY, deployment.moto.env())
    digest = env["MLFLOW_VERIFY_POD_ANNOTATION"].split("=", 1)[1]
    assert_failed(
        verdict,
        f"{ROLLOUT} runs a pod template this deploy did not apply (mlflow-on-eks/config-digest "
        f"0000000000000000, not {digest}): another deploy, a rollback or a manual change "
        "replaced it",
        deployment.logs_command,
    )
    assert verdict.signals[0]["Data"] == (
        f"{ROLLOUT} failed; {INTERNAL_URL} not checked; {NLB_URL} not checked"
    )
    assert LOCAL_IMAGE not in verdict.signals[0]["Reason"]  # the image was this deploy's


# ---------------------------------------------------------------- HTTPS at the load balancer -

# The certificate's name clients use (exposure.internal.hostname); DNS does not know it here,
# so only the Job's connect-to (the name -> the load balancer's DNS name) can reach anything.
TLS_HOST = "mlflow.internal.example.com"
TLS_URL = f"https://{TLS_HOST}"
CERTIFICATE_ARN = (
    "arn:aws:acm:eu-west-1:111122223333:certificate/6e5d4c3b-2a19-4807-8f6e-5d4c3b2a1908"
)


@dataclass
class TlsDeployment:
    """The default deployment with TLS on the internal load balancer, the test CA's root as
    the CAs the check trusts (as a certificate from AWS Private CA needs), its server up."""

    chart: object
    kubernetes: FakeKubernetes


@pytest.fixture(scope="module")
def tls_deployment(deployment, test_ca, tmp_path_factory) -> Iterator[TlsDeployment]:
    internal = {"certificate_arn": CERTIFICATE_ARN, "hostname": TLS_HOST}
    internal["ca_bundle"] = test_ca.ca.read_text()
    settings = load_settings(None)
    exposure = settings.exposure.replace(internal=internal)
    chart = synthesize(
        "tls",
        settings.model_copy(update={"exposure": exposure}),
        tmp_path_factory.mktemp("cdk-tls"),
    )
    _, (_, main) = pod(chart)
    with (
        serving(deployment.local(chart, main), TLS, tmp_path_factory.mktemp("tls") / "log"),
        kubernetes_api(chart, tmp_path_factory.mktemp("kubernetes-tls")) as api,
    ):
        yield TlsDeployment(chart, api)


def _verify_tls(
    deployment: Deployment, tls: TlsDeployment, receiver, home: Path
) -> tuple[Verdict, str]:
    """The TLS deployment's Job, its checked names at TLS; and its logs command."""
    env = verify_env(
        tls.chart, receiver.url, deployment.admin["arn"], tls.kubernetes, (INTERNAL_URL, TLS_URL)
    )
    verdict = run_verify(env, receiver, home, TLS, deployment.moto.env())
    return verdict, env["MLFLOW_VERIFY_LOGS_COMMAND"]


def test_https_at_the_load_balancer_under_the_certificates_name(
    deployment, tls_deployment, test_ca, receiver, tmp_path
):
    """The Job reaches the load balancer's TLS listener under the certificate's name (SNI,
    certificate check, Host, browser Origin `https://<name>`), verifies the certificate against
    the configured CA, and the whole session works through it: what a client of that name
    meets once DNS points it at the load balancer."""
    cert, key = test_ca.issue(TLS_HOST, tmp_path / "certs")
    with tls_terminator(TLS, cert, key):
        verdict, _ = _verify_tls(deployment, tls_deployment, receiver, tmp_path)
    assert verdict.returncode == 0, verdict.output
    for step in STEPS:
        line = rf"verify {re.escape(TLS_URL)}: {re.escape(step)} ok \(\d+\.\d\d s\)\n"
        assert re.search(line, verdict.output), (step, verdict.output)
    [signal] = verdict.signals
    assert (signal["Status"], signal["Reason"]) == (
        "SUCCESS",
        f"MLflow works under {INTERNAL_URL}, {TLS_URL}",
    )
    assert_no_secrets(verdict, deployment.database.password, deployment.admin["password"])


@pytest.mark.parametrize(
    ("name", "by_wrong_ca", "why"),
    [
        ("mlflow.example.org", False, "Hostname mismatch, certificate is not valid for"),
        (TLS_HOST, True, "unable to get local issuer certificate"),
    ],
    ids=["another-name", "another-ca"],
)
def test_a_certificate_that_does_not_verify_fails_at_once_saying_what_it_must_be(
    deployment, tls_deployment, test_ca, receiver, tmp_path, name, by_wrong_ca, why
):
    """A certificate for another name (the load balancer given another team's certificate),
    or from a CA the check does not trust (a private CA's certificate without its root in
    exposure.internal.ca_bundle): no retry, the reason names the certificate's two musts."""
    cert, key = test_ca.issue(name, tmp_path / "certs", by_wrong_ca=by_wrong_ca)
    with tls_terminator(TLS, cert, key):
        verdict, logs_command = _verify_tls(deployment, tls_deployment, receiver, tmp_path)
    reason = verdict.reason_logged().removesuffix(f" (logs: {logs_command})")
    assert reason.startswith(f"{TLS_URL}: TLS: "), reason
    assert why in reason, reason
    assert reason.endswith(
        f"(served at {NLB_HOST}); the certificate must cover {TLS_HOST} and chain to the CAs "
        "in MLFLOW_VERIFY_CA_BUNDLE"
    ), reason
    assert_failed(verdict, reason, logs_command)
    assert f"verify {TLS_URL}: GET /health" not in verdict.output  # not retried
    # The in-cluster name was checked in full first, over plain HTTP inside the cluster.
    assert f"verify {INTERNAL_URL}: ending the run ok" in verdict.output
