"""The synthesized pod, read as Kubernetes would run it, with only AWS endpoints made local.

Integration tests start the launcher from these environments, so what they exercise is the
chart's own ConfigMap and container args, not a hand-written copy of them.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from itest_servers import REGION, free_port

PLACEHOLDER = re.compile(r"\$\{[^}]+\}")
# CloudFormation pseudo parameters as a deployment in REGION (partition aws) resolves them.
PSEUDO_PARAMETERS = {
    "${Ref:AWS::Region}": REGION,
    "${Ref:AWS::URLSuffix}": "amazonaws.com",
    "${Ref:AWS::Partition}": "aws",
}
# The DNS names the load balancers get (read back at deploy time: MlflowTrackingServer's
# `<Kind>LoadBalancerHost` values), in the format AWS gives NLBs, `<name>-<id>.elb.<region>.
# amazonaws.com` (Elastic Load Balancing docs), the name as the AWS Load Balancer Controller
# makes it (k8s-<namespace>-<service>-<hash>), in REGION.
LOAD_BALANCER_HOSTS = {
    "internal": "k8s-mlflow-mlflowin-4f8a2b1c9d-0123456789abcdef.elb.eu-west-1.amazonaws.com",
    "external": "k8s-mlflow-mlflowex-7e6d5c4b3a-89abcdef01234567.elb.eu-west-1.amazonaws.com",
}
_LOAD_BALANCER_NAME = re.compile(
    r"\$\{GetAtt:TrackingServer(Internal|External)LoadBalancerHost[0-9A-F]{8}\.Value\}"
)
# The basic-auth secrets' ARNs in the ConfigMap (k8s_charts/auth.py `auth_environment`)
# whenever authentication is on.
AUTH_SECRET_IDS = (
    "MLFLOW_AUTH_ADMIN_SECRET_ID",
    "MLFLOW_AUTH_FLASK_SECRET_ID",
    "MLFLOW_AUTH_KEK_SECRET_ID",
)
AUTH_PREFIX = "MLFLOW_AUTH_"


def pod(synth) -> tuple[dict, list[dict]]:
    """The server Deployment and the containers the launcher runs MLflow in, in the order a
    deploy runs them: the migration Job's (`migrate`, with the Job's own environment), then
    the server (its init container: `wait_container`; the `metrics` container:
    `metrics_container`)."""
    deployment = _server_deployment(synth)
    spec = deployment["spec"]["template"]["spec"]
    servers = [c for c in spec["containers"] if c["name"] == "server"]
    assert len(servers) == 1, "expected one container named server"
    return deployment, [migration_container(synth), *servers]


def migration_container(synth) -> dict:
    jobs = [
        job
        for job in synth.objects("Job")
        if [c["args"] for c in job["spec"]["template"]["spec"]["containers"]] == [["migrate"]]
    ]
    assert len(jobs) == 1, "expected one migration Job"
    return jobs[0]["spec"]["template"]["spec"]["containers"][0]


def wait_container(synth) -> dict:
    """The server pod's init container (`wait-schema`)."""
    [init] = _server_deployment(synth)["spec"]["template"]["spec"]["initContainers"]
    return init


def metrics_container(synth) -> dict:
    spec = _server_deployment(synth)["spec"]["template"]["spec"]
    [container] = [c for c in spec["containers"] if c["name"] == "metrics"]
    return container


def _server_deployment(synth) -> dict:
    deployments = [
        d
        for d in synth.objects("Deployment")
        if d["metadata"]["name"] == "mlflow"  # not the job runner's
    ]
    assert len(deployments) == 1, "expected the server's Deployment"
    return deployments[0]


def runner_container(synth) -> dict:
    """The job runner's container (Deployment mlflow-jobs, with jobs.enabled)."""
    runner = synth.object("Deployment", "mlflow-jobs")
    [container] = runner["spec"]["template"]["spec"]["containers"]
    return container


def container_env(synth, container: dict) -> dict[str, str]:
    """What Kubernetes would put in the container's environment (envFrom, then env)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"unexpected env source {source}"
        env.update(synth.object("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        assert "value" in item, f"env {item['name']} comes from elsewhere: {item}"
        env[item["name"]] = item["value"]
    return env


def resolve_pseudo_parameters(value: str) -> str:
    """The pseudo parameters, and the load balancers' DNS names read back at deploy time."""
    for placeholder, resolved in PSEUDO_PARAMETERS.items():
        value = value.replace(placeholder, resolved)
    return _LOAD_BALANCER_NAME.sub(lambda m: LOAD_BALANCER_HOSTS[m[1].lower()], value)


def rds_instance(moto, instance_id: str, tags: Mapping[str, str] | None = None) -> str:
    """An RDS instance in moto's RDS, for `migrate`'s snapshot before an upgrade (what the
    ConfigMap's MLFLOW_DB_INSTANCE_ID names on AWS), copying its `tags` to its snapshots as
    the data stack's does. Returns its ID."""
    moto.client("rds").create_db_instance(
        DBInstanceIdentifier=instance_id,
        DBInstanceClass="db.t4g.medium",
        Engine="mysql",
        AllocatedStorage=20,
        MasterUsername="mlflow",
        MasterUserPassword="not-the-database-password",
        CopyTagsToSnapshot=True,
        Tags=[{"Key": key, "Value": value} for key, value in (tags or {}).items()],
    )
    return instance_id


@dataclass(frozen=True)
class ServerLogin:
    username: str
    password: str = field(repr=False)
    secret_arn: str


_SERVER_LOGINS: dict[str, ServerLogin] = {}
# Characters that break SQL quoting, a URL or an ini file: the migration Job must set this
# password (MySQL's IDENTIFIED BY, PostgreSQL's SCRAM verifier) and the server log in with it.
_SERVER_PASSWORD_CHARACTERS = "%'\\\":@/# ?&=+-pä"


def server_login(moto, target) -> ServerLogin:
    """The server's login for `target`'s database, one per target: what the data stack's
    ServerLogin secret holds (its user name, a generated password)."""
    if target.secret_arn not in _SERVER_LOGINS:
        username = f"{target.user}_srv"[:32]
        password = f"srv-{_SERVER_PASSWORD_CHARACTERS}-{secrets.token_urlsafe(12)}"
        arn = moto.create_secret(json.dumps({"username": username, "password": password}))
        _SERVER_LOGINS[target.secret_arn] = ServerLogin(username, password, arn)
    return _SERVER_LOGINS[target.secret_arn]


def substitute_endpoints(
    env: dict[str, str],
    target,
    moto,
    ca: Path,
    bucket: str,
    auth: Mapping[str, str] | None = None,
    read_port: int | None = None,
    instance_id: str = "itest-no-such-instance",
) -> dict:
    """Only where the pod would reach AWS: DB endpoint, secrets, bucket, region, CA, port.

    `read_port`: where the read replica listens on loopback, for a ConfigMap that names one
    (the replica of RDS listens on the primary's port; here both share 127.0.0.1).
    `instance_id`: the RDS instance in moto that `migrate` snapshots before an upgrade (only an
    upgrade asks RDS, so by default one that does not exist).

    `auth`: the basic-auth secrets' local ARNs (variable -> ARN: AUTH_SECRET_IDS) for a pod
    that runs with authentication,
    as the chart's default does. Without it, a ConfigMap whose auth secrets are still
    deploy-time references runs without authentication: every MLFLOW_AUTH_* variable dropped,
    as the chart does with `auth.enabled: false`. Values the caller already made local are
    kept."""
    local = {key: resolve_pseudo_parameters(value) for key, value in env.items()}
    if auth is not None:
        missing = [key for key in AUTH_SECRET_IDS if key not in local]
        assert not missing, f"this pod runs without authentication (no {missing})"
        local |= {key: arn for key, arn in auth.items() if key in local}
    elif any(PLACEHOLDER.search(local.get(key, "")) for key in AUTH_SECRET_IDS):
        local = {key: value for key, value in local.items() if not key.startswith(AUTH_PREFIX)}
    local["MLFLOW_DB_HOST"] = "127.0.0.1"
    local["MLFLOW_DB_PORT"] = str(target.server.port)
    # The server's own login, which the migration Job makes with the target's (RDS-master-like)
    # login; on AWS the data stack generates both secrets.
    local["MLFLOW_DB_SECRET_ID"] = server_login(moto, target).secret_arn
    if "MLFLOW_DB_ADMIN_SECRET_ID" in local:
        local["MLFLOW_DB_ADMIN_SECRET_ID"] = target.secret_arn
    if "MLFLOW_DB_INSTANCE_ID" in local:
        local["MLFLOW_DB_INSTANCE_ID"] = instance_id
    if "MLFLOW_DB_READ_HOST" in local:
        assert read_port is not None, "the ConfigMap names a read replica: pass read_port"
        local["MLFLOW_DB_READ_HOST"] = "127.0.0.1"
        local["MLFLOW_DB_READ_PORT"] = str(read_port)
    local["MLFLOW_DB_CA_BUNDLE"] = str(ca)
    local["MLFLOW_ARTIFACTS_DESTINATION"] = PLACEHOLDER.sub(
        bucket, env["MLFLOW_ARTIFACTS_DESTINATION"]
    )
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        local[key] = REGION
    local["MLFLOW_PORT"] = str(free_port())
    local["MLFLOW_WORKERS"] = "1"  # the CI machine has 2 cores
    leftovers = {k: v for k, v in local.items() if PLACEHOLDER.search(v)}
    assert not leftovers, f"unsubstituted placeholders (new AWS references?): {leftovers}"
    return {**local, **moto.env()}


def anonymous_server_env(
    server: Mapping[str, object], name: str, tmp_path: Path, db, new_database, moto, test_ca
) -> dict[str, str]:
    """The server container's environment from a chart synthesized with these `server`
    settings and sign-in off, endpoints made local, after the chart's migration Job has
    migrated a new database on `db` (a session server)."""
    import itest_launcher as launcher
    import itest_template as template

    from config import parse_settings
    from tests.conftest import synthesize

    settings = parse_settings(
        {
            "server": dict(server),
            "auth": {"enabled": False, "allow_anonymous_through": ["cluster", "internal"]},
        }
    )
    chart = synthesize(name, settings, tmp_path / "synth")
    _, (migrate, serve) = pod(chart)
    target = new_database(db)
    bucket = moto.create_bucket()

    def local(container: dict) -> dict[str, str]:
        env = substitute_endpoints(
            container_env(chart, container), target, moto, test_ca.ca, bucket
        )
        env["MLFLOW_DB_NAME"] = target.name
        return launcher.container_env(env, tmp_path / "home")

    template.migrate(db, migrate["args"], local(migrate))
    return local(serve)
