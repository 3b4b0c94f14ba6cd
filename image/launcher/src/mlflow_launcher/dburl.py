"""SQLAlchemy URLs with TLS verification built in.

The URL is the only thing ``mlflow server`` receives about the database (it makes its own
engine from it), so the TLS settings live in the URL query rather than in ``connect_args``.
``URL.create`` takes the password verbatim: no hand quoting, any character works.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from mlflow_launcher.secret import Credentials
from mlflow_launcher.settings import DbSettings

DRIVERS = {"mysql": "mysql+pymysql", "postgres": "postgresql+psycopg2"}


def tls_query(engine: str, ca_bundle: str) -> dict[str, str]:
    """Driver options that verify the server certificate and its host name against the bundle."""
    if engine == "mysql":
        # PyMySQL: CA given + check_hostname -> CERT_REQUIRED and host name check
        # (MySQL's ssl-mode=VERIFY_IDENTITY).
        return {"ssl_ca": ca_bundle, "ssl_check_hostname": "true"}
    return {"sslmode": "verify-full", "sslrootcert": ca_bundle}


def driver_password(engine: str, password: str) -> str:
    """The password as the driver must receive it to send the server its UTF-8 bytes.

    PyMySQL encodes a str password as latin-1 (an error beyond U+00FF, wrong bytes above
    U+007F), while MySQL/MariaDB hash the UTF-8 bytes. Handing PyMySQL the UTF-8 bytes spelled
    as latin-1 characters makes it send exactly those bytes; ASCII passwords are unchanged.
    """
    if engine == "mysql":
        return password.encode("utf-8").decode("latin-1")
    return password


def build_url(db: DbSettings, credentials: Credentials) -> URL:
    return URL.create(
        DRIVERS[db.engine],
        username=credentials.username,
        password=driver_password(db.engine, credentials.password),
        host=db.host,
        port=db.port,
        database=db.name,
        query=tls_query(db.engine, db.ca_bundle),
    )


def uri_for_mlflow(url: URL) -> str:
    """The string form ``mlflow server`` parses back to the same URL (password percent-encoded)."""
    return url.render_as_string(hide_password=False)
