"""bench/drivers.py's experiment only, never in the image: the launcher's MySQL URL made for
mysqlclient (`mysql+mysqldb`), TLS still verified, so the pod can run on either driver.

Python imports `sitecustomize` at start from PYTHONPATH, before the launcher's code runs;
drivers.py puts this folder there, beside .venv-mysqlclient, for its `ours-mysqlclient` pod
only. libmariadb's ssl_mode VERIFY_IDENTITY (mysqlclient maps it to
MYSQL_OPT_SSL_VERIFY_SERVER_CERT) checks the chain against the CA and the host name; the
launcher's Ssl_cipher check (wait.probe) is unchanged. mysqlclient sends a str password's UTF-8
bytes itself, so PyMySQL's latin-1 spelling is dropped.
"""

from mlflow_launcher import dburl

_pymysql_tls = dburl.tls_query
_pymysql_password = dburl.driver_password


def _tls_query(engine: str, ca_bundle: str) -> dict[str, str]:
    if engine == "mysql":
        return {"ssl_ca": ca_bundle, "ssl_mode": "VERIFY_IDENTITY"}
    return _pymysql_tls(engine, ca_bundle)


def _driver_password(engine: str, password: str) -> str:
    return password if engine == "mysql" else _pymysql_password(engine, password)


dburl.DRIVERS["mysql"] = "mysql+mysqldb"
dburl.tls_query = _tls_query
dburl.driver_password = _driver_password
