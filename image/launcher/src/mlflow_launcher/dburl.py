"""SQLAlchemy URLs with TLS verification and timeouts built in.

The URL is the only thing ``mlflow server`` receives about the database (it makes its own
engine from it), so the TLS settings and the timeouts live in the URL query rather than in
``connect_args``. ``URL.create`` takes the password verbatim: no hand quoting, any character works.

Timeouts, so that a connection whose packets are dropped (a failover, a lost route: no reset
comes back) fails a request within a bound instead of holding a server worker forever:
- connect: every connection attempt (libmariadb's and libpq's ``connect_timeout``);
- network silence, PostgreSQL: TCP keepalives from half that silence on, and
  ``tcp_user_timeout`` (the kernel drops a connection whose data or keepalive probes go unanswered
  that long). A live server answers keepalives while it works, so a long statement is not cut;
- statement, where the caller gives one: PostgreSQL's ``statement_timeout`` (the server cancels
  the statement); on MySQL libmariadb's ``read_timeout``/``write_timeout``, the only bound the
  client library has on a silent connection, so it also bounds a legitimate statement. Schema
  migrations get none: cutting an ALTER half way through on MySQL leaves a schema that no MLflow
  version runs.

MySQL's driver is mysqlclient (the C driver on libmariadb), as in the seed's recipe: in six
bench/drivers.py runs (bench/README.md, "The switch to mysqlclient") the pod on it spent a
median 0.93x PyMySQL's server CPU per tracking run and 0.90x per search.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from mlflow_launcher.secret import Credentials
from mlflow_launcher.settings import DbEnvironment

DRIVERS = {"mysql": "mysql+mysqldb", "postgres": "postgresql+psycopg2"}


def tls_query(engine: str, ca_bundle: str) -> dict[str, str]:
    """Driver options that verify the server certificate and its host name against the bundle."""
    if engine == "mysql":
        # mysqlclient on libmariadb (which has no MYSQL_OPT_SSL_MODE) turns VERIFY_IDENTITY into
        # MYSQL_OPT_SSL_ENFORCE (no plain-text fallback) and MYSQL_OPT_SSL_VERIFY_SERVER_CERT
        # (the chain against the CA and the host name): mysqlclient 2.3's _mysql.c.
        # local_infile off: the server may never ask this client for one of its files
        # (LOAD DATA LOCAL), whatever libmariadb's default.
        return {"ssl_ca": ca_bundle, "ssl_mode": "VERIFY_IDENTITY", "local_infile": "0"}
    return {"sslmode": "verify-full", "sslrootcert": ca_bundle}


def timeout_query(
    engine: str, *, connect: int, network: int, statement: int | None = None
) -> dict[str, str]:
    """Driver options bounding the connect, a silent network (PostgreSQL) and, if given, each
    statement (seconds)."""
    if engine == "mysql":
        query = {"connect_timeout": str(connect)}
        if statement is not None:
            query |= {"read_timeout": str(statement), "write_timeout": str(statement)}
        return query
    query = {
        "connect_timeout": str(connect),
        "keepalives": "1",
        "keepalives_idle": str(max(1, network // 2)),
        "keepalives_interval": str(max(1, network // 4)),
        "keepalives_count": "3",
        "tcp_user_timeout": str(network * 1000),
    }
    if statement is not None:
        query["options"] = f"-c statement_timeout={statement * 1000}"
    return query


def build_url(db: DbEnvironment, credentials: Credentials, *, statement: int | None = None) -> URL:
    """The store's URL; `statement` bounds each statement (seconds), None for migrations."""
    timeouts = timeout_query(
        db.engine,
        connect=db.connect_timeout_seconds,
        network=db.network_timeout_seconds,
        statement=statement,
    )
    return URL.create(
        DRIVERS[db.engine],
        username=credentials.username,
        password=credentials.password,
        host=db.host,
        port=db.port,
        # None: no database at all (the master login's MySQL session, dblogin).
        database=db.name or None,
        query=tls_query(db.engine, db.ca_bundle) | timeouts,
    )


def uri_for_mlflow(url: URL) -> str:
    """The string form ``mlflow server`` parses back to the same URL (password percent-encoded)."""
    return url.render_as_string(hide_password=False)
