"""URLs: any password survives the trip to `mlflow server` (string URI -> make_url), and TLS
verification is part of the URL itself, since mlflow builds its own engine from it."""

import pytest
from sqlalchemy.engine import make_url

from mlflow_launcher.dburl import build_url, uri_for_mlflow
from mlflow_launcher.secret import Credentials
from mlflow_launcher.settings import DbEnvironment

NASTY_PASSWORDS = [
    "p@ss",
    "a:b",
    "sl/ash",
    "q?x",
    "h#sh",
    "[br]ackets",
    "100%",
    "a&b+c=d",
    "quo'te\"s",
    "back\\slash",
    "with space",
    "ünïcødé-密码-🔑",
    "@:/?#[]%&+=' \"\\ all-together é",
    "%41%40",  # looks already encoded: must not be decoded twice
]


def _db(engine: str) -> DbEnvironment:
    return DbEnvironment(
        engine=engine,
        host="db.example.internal",
        port=3306 if engine == "mysql" else 5432,
        name="mlflow",
        secret_id="arn:aws:secretsmanager:eu-west-1:123456789012:secret:db",
        ca_bundle="/etc/ssl/certs/rds-global-bundle.pem",
        connect_attempts=3,
        backoff_max_seconds=1.0,
        region="eu-west-1",
    )


@pytest.mark.parametrize("engine", ["mysql", "postgres"])
@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_password_round_trips_through_the_uri_string(engine, password):
    url = build_url(_db(engine), Credentials("mlflow_user", password))
    parsed = make_url(uri_for_mlflow(url))
    # Both drivers send a str password's UTF-8 bytes (mysqlclient's "s" argument format, libpq).
    assert parsed.password == password
    assert parsed.username == "mlflow_user"
    assert parsed.host == "db.example.internal"
    assert parsed.database == "mlflow"


def test_mysql_url_verifies_certificate_and_host_name_and_refuses_local_files():
    url = make_url(uri_for_mlflow(build_url(_db("mysql"), Credentials("u", "p"))))
    assert url.drivername == "mysql+mysqldb"
    # What SQLAlchemy hands mysqlclient: the CA, VERIFY_IDENTITY (on libmariadb: TLS enforced,
    # chain and host name verified) and LOAD DATA LOCAL off.
    _, kwargs = url.get_dialect()().create_connect_args(url)
    assert kwargs["ssl"] == {"ca": "/etc/ssl/certs/rds-global-bundle.pem"}
    assert kwargs["ssl_mode"] == "VERIFY_IDENTITY"
    assert kwargs["local_infile"] is False


def test_postgres_url_uses_verify_full():
    url = make_url(uri_for_mlflow(build_url(_db("postgres"), Credentials("u", "p"))))
    assert url.drivername == "postgresql+psycopg2"
    assert {key: url.query[key] for key in ("sslmode", "sslrootcert")} == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/certs/rds-global-bundle.pem",
    }


def _driver_kwargs(engine: str, statement: int | None) -> dict:
    """What SQLAlchemy hands the driver for the URI string mlflow server gets."""
    url = make_url(
        uri_for_mlflow(build_url(_db(engine), Credentials("u", "p"), statement=statement))
    )
    return url.get_dialect()().create_connect_args(url)[1]


def test_mysql_connections_have_connect_and_statement_timeouts():
    kwargs = _driver_kwargs("mysql", statement=60)
    assert (kwargs["connect_timeout"], kwargs["read_timeout"], kwargs["write_timeout"]) == (
        5,
        60,
        60,
    )


def test_postgres_connections_drop_a_silent_peer_and_bound_statements():
    kwargs = _driver_kwargs("postgres", statement=60)
    assert kwargs["connect_timeout"] == "5"
    # libpq: keepalive probes after 5 s of silence, and the kernel gives the connection up once
    # data or probes stay unanswered 10 s (TCP_USER_TIMEOUT, in ms).
    assert (kwargs["keepalives"], kwargs["keepalives_idle"], kwargs["tcp_user_timeout"]) == (
        "1",
        "5",
        "10000",
    )
    assert kwargs["options"] == "-c statement_timeout=60000"


@pytest.mark.parametrize("engine", ["mysql", "postgres"])
def test_migrations_get_no_statement_bound_but_keep_the_network_ones(engine):
    kwargs = _driver_kwargs(engine, statement=None)
    assert not {"read_timeout", "write_timeout", "options"} & set(kwargs)
    assert "connect_timeout" in kwargs
    if engine == "postgres":
        assert kwargs["tcp_user_timeout"] == "10000"


def test_rendered_url_hides_password_by_default():
    """str(url) is what gets logged by accident; SQLAlchemy masks it, and we rely on that."""
    url = build_url(_db("mysql"), Credentials("u", "s3cr3t-value"))
    assert "s3cr3t-value" not in str(url)
    assert "s3cr3t-value" not in repr(Credentials("u", "s3cr3t-value"))
