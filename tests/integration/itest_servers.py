"""Real servers on loopback for the integration tests: MariaDB, PostgreSQL (both requiring TLS
with a test CA) and moto's server (S3 + Secrets Manager). Each runs in its own temporary
directory and is stopped at the end of the session.

Admin work goes through the servers' own CLI clients over their Unix sockets, so the tests need
no database driver besides the ones the launcher brings in .venv-image.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The RDS for MySQL master user's privileges as the RDS User Guide lists them ("Master user
# account privileges"), all with GRANT OPTION: no SUPER, so binary logging restricts triggers,
# and no READ_ONLY ADMIN, so a replica's read_only binds it.
RDS_MASTER_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, "
    "SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, "
    "REPLICATION CLIENT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, "
    "EVENT, TRIGGER"
)
MARIADB_BIN = ("mariadb-install-db", "mariadbd", "mariadb")
PG_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
REGION = "eu-west-1"  # any region: moto serves them all
PORT_80 = pytest.mark.xdist_group("port-80")
"""For the modules that serve on port 80 (as behind a load balancer's listener): under
pytest-xdist they run on one worker, one after the other, never two at once."""
INSTALL_HINT = "run scripts/install-test-servers.sh (as root) to install it"


def require_binary(name: str) -> str:
    """A missing server binary is a test failure with a clear message, never a skip."""
    path = shutil.which(name) or (str(PG_BIN_DIR / name) if (PG_BIN_DIR / name).exists() else None)
    if path is None:
        pytest.fail(f"{name} not found: {INSTALL_HINT}", pytrace=False)
    return path


# Below Linux's ephemeral range (ip_local_port_range, 32768-60999 by default): the kernel never
# hands these to outgoing connections, so a port found free stays free for the server started
# on it, however many client connections the tests open meanwhile (they once took one: "Address
# already in use").
_SERVER_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def _worker_ports() -> range:
    """This xdist worker's share of _SERVER_PORTS. A port is found free seconds before its server
    binds it (a launcher starts first), and a server of another worker once took the same port
    meanwhile: the test then talked to that server (a 401 from the wrong deployment)."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() and count > 1 else 0
    share = len(_SERVER_PORTS) // max(1, count)
    start = _SERVER_PORTS.start + index * share
    return range(start, start + share)


def free_port() -> int:
    """A port no socket uses now, on every address (servers here listen on 0.0.0.0), and not
    handed out before in this process while others remain: two ports found for one test are
    bound only later, so each must be another."""
    ports = _worker_ports()
    if len(_handed_out) >= len(ports) // 2:
        _handed_out.clear()
    for _ in range(200):
        port = secrets.choice(ports)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise AssertionError(f"no free port in {ports} after 200 tries")


def wait_for_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return result


# ---------------------------------------------------------------- TLS test CA ---------------


@dataclass(frozen=True)
class TestCa:
    ca: Path  # the bundle the launcher gets as MLFLOW_DB_CA_BUNDLE
    server_cert: Path  # for 127.0.0.1 / localhost, signed by ca
    server_key: Path
    wrong_ca: Path  # an unrelated CA: verification against it must fail

    def issue(self, name: str, directory: Path, *, by_wrong_ca: bool = False) -> tuple[Path, Path]:
        """A server certificate for DNS name `name` (and its key), signed by `ca`, or by
        `wrong_ca` (as a certificate from a CA the client does not trust)."""
        ca = self.wrong_ca if by_wrong_ca else self.ca
        return _issue(directory, f"{name}-{ca.stem}", ca, f"DNS:{name}", name)


def _issue(directory: Path, stem: str, ca_pem: Path, alt_names: str, cn: str) -> tuple[Path, Path]:
    """A serverAuth certificate for `alt_names` (and its key) in `directory`, signed by the CA
    whose key lies beside `ca_pem` (the same name, ending in .key)."""
    openssl = require_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, cert = (directory / f"{stem}.{ext}" for ext in ("key", "csr", "pem"))
    ext = directory / f"{stem}.ext"
    ext.write_text(
        f"subjectAltName={alt_names}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _run(
        [
            openssl,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ]
    )
    _run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_pem),
            "-CAkey",
            str(ca_pem.with_suffix(".key")),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(ext),
            "-out",
            str(cert),
        ]
    )
    return cert, key


def make_test_ca(directory: Path) -> TestCa:
    openssl = require_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def ca(name: str) -> tuple[Path, Path]:
        key, pem = directory / f"{name}.key", directory / f"{name}.pem"
        _run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                f"/CN=MLflow test {name}",
                "-keyout",
                str(key),
                "-out",
                str(pem),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]
        )
        return key, pem

    _, ca_pem = ca("ca")
    _, wrong_pem = ca("wrong-ca")
    cert, key = _issue(directory, "server", ca_pem, "IP:127.0.0.1,DNS:localhost", "localhost")
    return TestCa(ca=ca_pem, server_cert=cert, server_key=key, wrong_ca=wrong_pem)


# ---------------------------------------------------------------- databases ------------------


def sql_literal(value: str, *, backslash_escapes: bool) -> str:
    """A single-quoted SQL string literal (MariaDB treats backslash as an escape, PostgreSQL's
    standard_conforming_strings does not)."""
    if backslash_escapes:
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


class MariaDb:
    """Debian's MariaDB 10.11 (stands in for RDS MySQL 8), TLS required on TCP."""

    engine = "mysql"

    def __init__(self, base: Path, ca: TestCa) -> None:
        self.base, self.ca = base, ca
        self.port = free_port()
        self.datadir, self.socket = base / "data", base / "mysqld.sock"
        # Each server's own temporary directory: a mariadbd that starts deletes every "#sql*"
        # file in its tmpdir as a leftover of a crash (sql_base.cc, mysql_rm_tmp_tables), so
        # with the default /tmp one worker's server start deleted another worker's
        # mariadb-install-db temporary tables mid-bootstrap ("Unknown table
        # 'mysql.tmp_user_sys'", CI at d4558a0).
        self.tmpdir = base / "tmp"
        self.proc: subprocess.Popen | None = None
        for name in MARIADB_BIN:
            require_binary(name)

    def install(self) -> None:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=root",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                # Passed on to the bootstrap mariadbd.
                f"--tmpdir={self.tmpdir}",
            ]
        )

    def start(self) -> None:
        log = (self.base / "mariadbd.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={self.datadir}",
                f"--tmpdir={self.tmpdir}",
                f"--socket={self.socket}",
                f"--pid-file={self.base / 'mariadbd.pid'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                *self._replication_args(),
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=32M",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
                *self._tls_args(),
                # Per-session status (Ssl_cipher) for the server-side TLS checks.
                "--performance-schema=ON",
                "--max-connections=300",
            ],
            stdout=log,
            stderr=log,
        )
        wait_for_port(self.port, 60, "mariadbd")
        # mariadb-install-db as root creates anonymous users that shadow 'user'@'%'.
        self.admin("DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;")

    def _replication_args(self) -> list[str]:
        # A standalone server needs no binary log; itest_replication's primary and replica
        # override this.
        return ["--skip-log-bin"]

    def _tls_args(self) -> list[str]:
        return [
            f"--ssl-ca={self.ca.ca}",
            f"--ssl-cert={self.ca.server_cert}",
            f"--ssl-key={self.ca.server_key}",
            "--require-secure-transport=ON",
        ]

    def session_ciphers(self, user: str) -> dict[str, str]:
        """The server's view of `user`'s open sessions: connection id -> TLS cipher ('' if
        the session is plain text)."""
        rows = self.query(
            "mysql",
            "SELECT t.PROCESSLIST_ID, s.VARIABLE_VALUE FROM performance_schema.threads t "  # noqa: S608
            "JOIN performance_schema.status_by_thread s USING (THREAD_ID) "
            f"WHERE t.PROCESSLIST_USER = {sql_literal(user, backslash_escapes=True)} "
            "AND s.VARIABLE_NAME = 'Ssl_cipher'",
        )
        return {row[0]: (row[1] if len(row) > 1 else "") for row in rows}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)

    def admin(self, sql: str, database: str | None = None) -> str:
        cmd = [
            "mariadb",
            "--no-defaults",
            f"--socket={self.socket}",
            "-uroot",
            "-N",
            "-B",
            "--default-character-set=utf8mb4",
        ]
        return _run([*cmd, *([database] if database else [])], input=sql).stdout

    def create_login(self, user: str, password: str) -> None:
        """A login with what RDS's master user has (it makes the server's login in the
        migration Job), and no database."""
        literal = sql_literal(password, backslash_escapes=True)
        self.admin(
            f"CREATE USER '{user}'@'%' IDENTIFIED BY {literal};"
            f"GRANT {RDS_MASTER_PRIVILEGES} ON *.* TO '{user}'@'%' WITH GRANT OPTION;"
        )

    def create_database(self, name: str, user: str, password: str) -> None:
        """A database and a login with what RDS's master user has."""
        self.admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4;")
        self.create_login(user, password)

    def query(self, database: str, sql: str) -> list[list[str]]:
        return [line.split("\t") for line in self.admin(sql, database).splitlines()]

    def dump(self, database: str) -> str:
        """`database`'s tables and rows as SQL, for any MariaDB (no grants: tables have no
        owner here)."""
        cmd = [require_binary("mariadb-dump"), "--no-defaults", f"--socket={self.socket}"]
        flags = ["-uroot", "--skip-comments", "--single-transaction"]
        return _run([*cmd, *flags, "--default-character-set=utf8mb4", database]).stdout

    def tcp_login(
        self,
        user: str,
        password: str,
        *,
        tls: bool,
        sql: str = "SELECT 1",
        database: str | None = None,
    ) -> subprocess.CompletedProcess:
        """A login over TCP with the CLI client, with verified TLS or without TLS, running
        `sql` (tab-separated rows on stdout)."""
        tls_args = (
            ["--ssl", f"--ssl-ca={self.ca.ca}", "--ssl-verify-server-cert"]
            if tls
            else ["--skip-ssl"]
        )
        return subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                "-h127.0.0.1",
                f"-P{self.port}",
                f"-u{user}",
                f"-p{password}",
                *tls_args,
                "--batch",
                "--skip-column-names",
                "-e",
                sql,
                *([database] if database else []),
            ],
            capture_output=True,
            text=True,
            check=False,
        )


class Postgres:
    """Debian's PostgreSQL 15, TLS required on TCP (hostnossl rejected)."""

    engine = "postgres"

    def __init__(self, base: Path, ca: TestCa) -> None:
        # initdb/pg_ctl refuse root: the cluster belongs to the postgres user, in a directory it
        # can reach (pytest's tmp dirs are 0700 root).
        self.base, self.ca = base, ca
        self.port = free_port()
        self.datadir = base / "data"
        for name in ("initdb", "pg_ctl", "psql"):
            require_binary(name)
        try:
            self.uid = pwd.getpwnam("postgres").pw_uid
        except KeyError:
            pytest.fail(f"no 'postgres' system user: {INSTALL_HINT}", pytrace=False)

    def _as_postgres(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        return _run(["runuser", "-u", "postgres", "--", *cmd], **kwargs)

    def install(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        for name in ("ca.pem", "server.pem", "server.key"):
            src = {
                "ca.pem": self.ca.ca,
                "server.pem": self.ca.server_cert,
                "server.key": self.ca.server_key,
            }[name]
            shutil.copy(src, self.base / name)
        os.chmod(self.base / "server.key", 0o600)
        _run(["chown", "-R", "postgres:postgres", str(self.base)])
        self._as_postgres(
            [
                str(PG_BIN_DIR / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ]
        )
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.base}'\nssl = on\n"
                f"ssl_cert_file = '{self.base / 'server.pem'}'\n"
                f"ssl_key_file = '{self.base / 'server.key'}'\n"
                f"ssl_ca_file = '{self.base / 'ca.pem'}'\n"
                "max_connections = 300\nfsync = off\nfull_page_writes = off\n"
            )
        (self.datadir / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        )

    def start(self) -> None:
        self._as_postgres(
            [
                str(PG_BIN_DIR / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.base / "postgres.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN_DIR / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
        )

    def admin(self, sql: str, database: str = "postgres") -> str:
        return self._as_postgres(
            [
                "psql",
                "-h",
                str(self.base),
                "-p",
                str(self.port),
                "-d",
                database,
                "-U",
                "postgres",
                "-X",
                "-q",
                "-t",
                "-A",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
            ],
            input=sql,
        ).stdout

    def create_login(self, user: str, password: str) -> None:
        """A login with what RDS's master user has (CREATEROLE, CREATEDB), and no database."""
        literal = sql_literal(password, backslash_escapes=False)
        self.admin(f'CREATE USER "{user}" PASSWORD {literal} CREATEROLE CREATEDB;')

    def create_database(self, name: str, user: str, password: str) -> None:
        """A database and a login with what RDS's master user has."""
        self.create_login(user, password)
        self.admin(f'CREATE DATABASE "{name}" OWNER "{user}";')

    def query(self, database: str, sql: str) -> list[list[str]]:
        return [line.split("\t") for line in self.admin(sql, database).splitlines() if line]

    def owners(self, database: str) -> list[str]:
        """The roles that own the objects of `database`'s public schema."""
        sql = (
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        )
        return [row[0] for row in self.query(database, sql)]

    def dump(self, database: str) -> str:
        """`database`'s objects and rows as SQL, for any PostgreSQL: no owners and no grants,
        so whoever replays it owns what it makes."""
        cmd = [require_binary("pg_dump"), "-h", str(self.base), "-p", str(self.port)]
        flags = ["-U", "postgres", "--no-owner", "--no-privileges", "--no-comments"]
        return self._as_postgres([*cmd, *flags, database]).stdout

    def session_ciphers(self, user: str) -> dict[str, str]:
        """The server's view of `user`'s open sessions: backend pid -> TLS cipher ('' if the
        session is plain text)."""
        rows = self.query(
            "postgres",
            "SELECT a.pid, CASE WHEN s.ssl THEN s.cipher ELSE '' END FROM pg_stat_activity a "  # noqa: S608
            "JOIN pg_stat_ssl s USING (pid) "
            f"WHERE a.usename = {sql_literal(user, backslash_escapes=False)}",
        )
        return {row[0]: (row[1] if len(row) > 1 else "") for row in rows}

    def tcp_login(
        self,
        user: str,
        password: str,
        *,
        tls: bool,
        sql: str = "SELECT 1",
        database: str | None = None,
    ) -> subprocess.CompletedProcess:
        ssl = f"sslmode=verify-full sslrootcert={self.ca.ca}" if tls else "sslmode=disable"
        dbname = database or "postgres"
        return subprocess.run(
            [
                "psql",
                f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} {ssl}",
                "-AtF",
                "\t",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGPASSWORD": password},
        )


class PlainMariaDb(MariaDb):
    """A MariaDB that offers no TLS at all: a driver that falls back talks plain text to it,
    which the launcher must refuse (libmariadb under VERIFY_IDENTITY; Ssl_cipher behind it)."""

    def _tls_args(self) -> list[str]:
        return ["--skip-ssl"]


# ---------------------------------------------------------------- a database that comes up ---


class LateEndpoint:
    """A TCP endpoint that starts accepting only after ``delay`` seconds, then relays bytes to
    the real database: to the launcher it is a database that comes up while it retries. The
    relay is transparent, so TLS is still end to end between the launcher and the server."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.port, self.upstream_port, self.delay = free_port(), upstream_port, delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> LateEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _serve(self) -> None:
        if self._stop.wait(self.delay):
            return
        with socket.create_server(("127.0.0.1", self.port)) as listener:
            listener.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()


# ---------------------------------------------------------------- a network that goes silent -


class Relay:
    """A loopback TCP relay to a server (transparent: TLS stays end to end) whose traffic can be
    dropped without a trace, as a failover or a lost route does: no reset, no close, packets
    just vanish, both ways, for connections open and new. Only the relay's own port is touched
    (an nftables table of its own in the machine's firewall, root only), so the server stays
    reachable for everything else; `silenced()` drops, and lets traffic through again after."""

    def __init__(self, upstream_port: int) -> None:
        self.nft = require_binary("nft")
        self.port, self.upstream_port = free_port(), upstream_port
        self._table = f"mlflow_itest_relay_{self.port}"
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._resume()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()

    def close_open(self) -> None:
        """End every connection open through the relay, as the server's side going away does (a
        restart, a failover): TCP closes both ways, with no TLS close_notify. New ones pass."""
        open_now, self._sockets = self._sockets, []
        shut_down(open_now)

    @contextlib.contextmanager
    def silenced(self) -> Iterator[None]:
        """Every packet to or from the relay's port dropped for the duration of the block."""
        # On loopback both directions pass the input hook; the raw priority runs first.
        _run(
            [self.nft, "-f", "-"],
            input=f"table inet {self._table} {{\n"
            "  chain input {\n"
            "    type filter hook input priority raw\n"
            f"    tcp dport {self.port} drop\n"
            f"    tcp sport {self.port} drop\n"
            "  }\n"
            "}\n",
        )
        try:
            yield
        finally:
            self._resume()

    def _resume(self) -> None:
        subprocess.run(
            [self.nft, "delete", "table", "inet", self._table], capture_output=True, check=False
        )


def shut_down(sockets: list[socket.socket]) -> None:
    """End each connection both ways (TCP FIN, nothing of TLS's), as a peer going away does."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _pipe(src: socket.socket, dst: socket.socket, limit: int | None = None) -> None:
    """`src`'s bytes to `dst` until either side ends, then both ends shut down. With `limit`,
    shut down once that many bytes have passed: a peer failing halfway through a message."""
    passed = 0
    try:
        while data := src.recv(65536):
            if limit is not None and passed + len(data) > limit:
                dst.sendall(data[: limit - passed])
                break
            dst.sendall(data)
            passed += len(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
