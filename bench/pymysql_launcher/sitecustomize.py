"""bench/drivers.py's comparison only, never in the image: the launcher's MySQL URL made for
PyMySQL (`mysql+pymysql`, the image's driver before mysqlclient), TLS still verified, so the
same pod runs on the driver it left.

Python imports `sitecustomize` at start from PYTHONPATH, before the launcher's code runs;
drivers.py puts this folder there, beside .venv-pymysql, for its `ours-pymysql` pod only.
PyMySQL given a CA and ssl_check_hostname checks the chain and the host name (MySQL's
VERIFY_IDENTITY); the launcher's Ssl_cipher check (wait.probe) is unchanged. PyMySQL encodes a
str password as latin-1, while the server hashes its UTF-8 bytes: the bytes are handed over
spelled as latin-1 characters, as the launcher did while it ran PyMySQL.
"""

from mlflow_launcher import dburl

_tls_query = dburl.tls_query
_build_url = dburl.build_url


def tls_query(engine: str, ca_bundle: str) -> dict[str, str]:
    if engine == "mysql":
        return {"ssl_ca": ca_bundle, "ssl_check_hostname": "true"}
    return _tls_query(engine, ca_bundle)


def build_url(db, credentials, *, statement=None):
    url = _build_url(db, credentials, statement=statement)
    if db.engine != "mysql":
        return url
    return url.set(password=credentials.password.encode("utf-8").decode("latin-1"))


dburl.DRIVERS["mysql"] = "mysql+pymysql"
dburl.tls_query = tls_query
dburl.build_url = build_url
