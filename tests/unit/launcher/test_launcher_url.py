"""URLs: any password survives the trip to `mlflow server` (string URI -> make_url), and TLS
verification is part of the URL itself, since mlflow builds its own engine from it."""

import pytest
from mlflow_launcher.dburl import build_url, uri_for_mlflow
from mlflow_launcher.secret import Credentials
from mlflow_launcher.settings import DbSettings
from sqlalchemy.engine import make_url

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


def _db(engine: str) -> DbSettings:
    return DbSettings(
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
    if engine == "mysql":
        # PyMySQL sends str.encode("latin-1"): that must be the password's UTF-8 bytes.
        assert parsed.password.encode("latin-1") == password.encode("utf-8")
    else:
        assert parsed.password == password
    assert parsed.username == "mlflow_user"
    assert parsed.host == "db.example.internal"
    assert parsed.database == "mlflow"


def test_mysql_url_verifies_certificate_and_host_name():
    url = make_url(uri_for_mlflow(build_url(_db("mysql"), Credentials("u", "p"))))
    assert url.drivername == "mysql+pymysql"
    assert url.query == {
        "ssl_ca": "/etc/ssl/certs/rds-global-bundle.pem",
        "ssl_check_hostname": "true",
    }
    # What SQLAlchemy hands PyMySQL: a CA (-> CERT_REQUIRED) and a host name check.
    _, kwargs = url.get_dialect()().create_connect_args(url)
    assert kwargs["ssl"] == {"ca": "/etc/ssl/certs/rds-global-bundle.pem", "check_hostname": True}


def test_postgres_url_uses_verify_full():
    url = make_url(uri_for_mlflow(build_url(_db("postgres"), Credentials("u", "p"))))
    assert url.drivername == "postgresql+psycopg2"
    assert url.query == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/certs/rds-global-bundle.pem",
    }


def test_rendered_url_hides_password_by_default():
    """str(url) is what gets logged by accident; SQLAlchemy masks it, and we rely on that."""
    url = build_url(_db("mysql"), Credentials("u", "s3cr3t-value"))
    assert "s3cr3t-value" not in str(url)
    assert "s3cr3t-value" not in repr(Credentials("u", "s3cr3t-value"))
