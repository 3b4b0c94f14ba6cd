"""Session fixtures: a test CA, MariaDB and PostgreSQL requiring TLS, and moto's server for S3
and Secrets Manager, each started once per session on 127.0.0.1 and stopped after."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import itest_template
import pytest
from itest_replication import ReplicatedDb, running_pair
from itest_servers import (
    REGION,
    MariaDb,
    PlainMariaDb,
    Postgres,
    TestCa,
    free_port,
    make_test_ca,
)

FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="session", autouse=True)
def templates_shared_by_workers(tmp_path_factory) -> None:
    """Under pytest-xdist, the run's directory above the workers' own (pytest removes it with
    the run's others) is where they share migrated stores (itest_template)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        itest_template.share_in(tmp_path_factory.getbasetemp().parent)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> TestCa:
    return make_test_ca(tmp_path_factory.mktemp("ca"))


def _serve(cls, test_ca: TestCa) -> Iterator:
    # Under /tmp directly: the postgres user must reach it (pytest's tmp root is 0700 root).
    base = Path(tempfile.mkdtemp(prefix=f"itest-{cls.engine}-", dir="/tmp"))
    base.chmod(0o755)
    server = cls(base / "server", test_ca)
    try:
        server.install()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb(test_ca) -> Iterator[MariaDb]:
    yield from _serve(MariaDb, test_ca)


@pytest.fixture(scope="session")
def plain_mariadb(test_ca) -> Iterator[PlainMariaDb]:
    """A MariaDB offering no TLS, for the launcher's plain-text refusal."""
    yield from _serve(PlainMariaDb, test_ca)


@pytest.fixture(scope="session")
def postgres(test_ca) -> Iterator[Postgres]:
    yield from _serve(Postgres, test_ca)


@pytest.fixture(scope="session", params=["mysql", "postgres"])
def db_server(request):
    """Each database engine in turn (the server itself is started once per session)."""
    return request.getfixturevalue("mariadb" if request.param == "mysql" else "postgres")


@pytest.fixture(scope="session", params=["mysql", "postgres"])
def replicated_db(request, test_ca) -> Iterator[ReplicatedDb]:
    """Each engine's primary with a streaming read replica, as RDS's: the replica has the
    primary's databases and users, and refuses their writes."""
    # Under /tmp directly, as _serve's, for the postgres user.
    base = Path(tempfile.mkdtemp(prefix=f"itest-repl-{request.param}-", dir="/tmp"))
    base.chmod(0o755)
    try:
        with running_pair(request.param, base, test_ca) as pair:
            yield pair
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Moto:
    endpoint: str
    # The CA that signed an https endpoint's certificate (bench/artifacts.py's S3 over TLS).
    ca_bundle: Path | None = None

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            verify=str(self.ca_bundle) if self.ca_bundle else None,
        )

    def create_bucket(self) -> str:
        name = f"mlflow-{secrets.token_hex(6)}"
        self.client("s3").create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        return name

    def create_secret(self, value: str) -> str:
        name = f"mlflow-db-{secrets.token_hex(6)}"
        return self.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]

    def objects(self, bucket: str) -> dict[str, bytes]:
        s3 = self.client("s3")
        listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {
            o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
        }

    def env(self) -> dict[str, str]:
        """How the launcher and the server reach moto: boto3's and MLflow's standard variables."""
        return {
            **FAKE_AWS,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.endpoint,
            "AWS_ENDPOINT_URL_RDS": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            **({"AWS_CA_BUNDLE": str(self.ca_bundle)} if self.ca_bundle else {}),
        }


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.fail("moto[server] missing from the dev venv (requirements-dev.txt)", pytrace=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield Moto(f"http://127.0.0.1:{port}")
    server.stop()


@dataclass
class Target:
    """A fresh database with its own user, and the Secrets Manager secret holding the login."""

    server: MariaDb | Postgres
    name: str
    user: str
    password: str
    secret_arn: str

    def contract_env(self, moto: Moto, ca_bundle: Path, bucket: str, **extra: str) -> dict:
        """The launcher's environment as the contract (k8s_charts/contract.py) defines it,
        with local endpoints. The chart-wiring test reads the synthesized ConfigMap instead."""
        return {
            "MLFLOW_DB_ENGINE": self.server.engine,
            "MLFLOW_DB_HOST": "127.0.0.1",
            "MLFLOW_DB_PORT": str(self.server.port),
            "MLFLOW_DB_NAME": self.name,
            "MLFLOW_DB_SECRET_ID": self.secret_arn,
            "MLFLOW_DB_CA_BUNDLE": str(ca_bundle),
            "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts",
            "MLFLOW_HOST": "127.0.0.1",
            "MLFLOW_PORT": str(free_port()),
            "MLFLOW_WORKERS": "1",
            "MLFLOW_ALLOWED_HOSTS": "localhost,127.0.0.1:*",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **moto.env(),
            **extra,
        }


@pytest.fixture
def new_database(moto):
    """Factory: new_database(server, password=None, secret_string=None, name=None,
    create=True) -> Target. With create=False, the login only: its database `name` does not
    exist yet (an existing instance MLflow has not used)."""

    def make(
        server,
        password: str | None = None,
        secret_string: str | None = None,
        name: str | None = None,
        create: bool = True,
    ) -> Target:
        suffix = secrets.token_hex(5)
        name, user = name or f"mlflow_{suffix}", f"user_{suffix}"
        password = password or f"pw-{secrets.token_urlsafe(12)}"
        if create:
            server.create_database(name, user, password)
        else:
            server.create_login(user, password)
        value = (
            secret_string
            if secret_string is not None
            else json.dumps(
                {
                    "username": user,
                    "password": password,
                    "engine": server.engine,
                    "host": "ignored.example",
                    "port": 1,
                    "dbname": "ignored",
                }
            )
        )
        return Target(server, name, user, password, moto.create_secret(value))

    return make
