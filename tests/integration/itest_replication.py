"""A primary database with a real streaming read replica, per engine, as RDS runs a read
replica: the replica holds the primary's databases, users and passwords, requires TLS with the
same CA, and refuses the application's writes. Tests use it to prove reads go to the replica
(pause() the replica, write on the primary, and the write must not be visible through it).

The servers are itest_servers' MariaDb and Postgres with only what replication changes.
"""

from __future__ import annotations

import abc
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from itest_servers import PG_BIN_DIR, MariaDb, Postgres, TestCa, _run, require_binary, sql_literal

# ---------------------------------------------------------------- the servers ----------------


class MariaDbPrimary(MariaDb):
    def _replication_args(self) -> list[str]:
        # ROW format: the replica applies exactly the primary's rows, whatever the statement.
        return ["--server-id=1", "--log-bin=primary-bin", "--binlog-format=ROW"]


class MariaDbReplica(MariaDb):
    """Use only for reads (and admin reads): a write as root would bypass read_only and make the
    replica diverge from the primary."""

    def _replication_args(self) -> list[str]:
        # read_only refuses writes from users without READ_ONLY ADMIN (the application's),
        # while the replication SQL thread still applies the primary's changes.
        return [
            "--server-id=2",
            "--read-only=ON",
            "--skip-log-bin",
            "--relay-log=replica-relay-bin",
            "--skip-slave-start",
        ]


class PostgresPrimary(Postgres):
    def install(self) -> None:
        super().install()
        # pg_basebackup and the standby's WAL receiver connect as postgres over the Unix socket;
        # "all" in the base pg_hba does not cover replication connections.
        with (self.datadir / "pg_hba.conf").open("a") as hba:
            hba.write("local replication all trust\n")


class PostgresStandby(Postgres):
    """A hot standby cloned from a running primary (its install needs the primary started)."""

    def __init__(self, base: Path, ca: TestCa, primary: Postgres) -> None:
        super().__init__(base, ca)
        self.primary = primary
        require_binary("pg_basebackup")

    def install(self) -> None:
        # A clone, not initdb: it carries the primary's users, pg_hba and TLS settings (which
        # point at the primary's copies of the certificate files, readable by postgres). -R
        # writes standby.signal and the primary_conninfo to stream from.
        self.base.mkdir(parents=True, exist_ok=True)
        _run(["chown", "postgres:postgres", str(self.base)])
        self._as_postgres(
            [
                str(PG_BIN_DIR / "pg_basebackup"),
                *("-D", str(self.datadir), "-h", str(self.primary.base)),
                *("-p", str(self.primary.port), "-U", "postgres", "-R", "--checkpoint=fast"),
            ]
        )
        # Later lines win over the primary's port and socket directory in the copied file.
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nunix_socket_directories = '{self.base}'\nhot_standby = on\n"
            )


# ---------------------------------------------------------------- the pairs ------------------


def _poll(check: Callable[[], bool], timeout: float, failure: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(failure())
        time.sleep(0.1)


class ReplicatedDb(abc.ABC):
    """A primary (usable as the `mariadb`/`postgres` fixtures, e.g. with `new_database`) and a
    read replica (`.port`, `.query(database, sql)`, `.admin(sql)`, `.tcp_login(...)`)."""

    primary: MariaDb | Postgres
    replica: MariaDb | Postgres

    @property
    def engine(self) -> str:
        return self.primary.engine

    def start(self) -> None:
        # In this order: the PostgreSQL standby is cloned from the running primary.
        for server in (self.primary, self.replica):
            server.install()
            server.start()
        self._link()
        # A broken link (TLS, credentials) fails here, not as a later wait_caught_up timeout.
        _poll(self._streaming, 30, lambda: f"replica not streaming: {self._replica_state()}")

    def stop(self) -> None:
        # The replica first, so it does not retry a primary that is gone.
        self.replica.stop()
        self.primary.stop()

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Return once everything committed on the primary so far is visible on the replica."""
        target = self._primary_position()
        _poll(
            lambda: self._replica_reached(target),
            timeout,
            lambda: (
                f"replica not caught up in {timeout} s: primary at {target}, "
                f"replica at {self._replica_state()}"
            ),
        )

    @abc.abstractmethod
    def pause(self) -> None:
        """Stop applying the primary's changes; the replica stays readable."""

    @abc.abstractmethod
    def resume(self) -> None: ...

    @abc.abstractmethod
    def _link(self) -> None:
        """Point the started replica at the primary."""

    @abc.abstractmethod
    def _streaming(self) -> bool: ...

    @abc.abstractmethod
    def _primary_position(self) -> str: ...

    @abc.abstractmethod
    def _replica_reached(self, position: str) -> bool: ...

    @abc.abstractmethod
    def _replica_state(self) -> str:
        """The replica's position and link status, for error messages."""


class ReplicatedMariaDb(ReplicatedDb):
    def __init__(self, base: Path, ca: TestCa) -> None:
        self.primary = MariaDbPrimary(base / "primary", ca)
        self.replica = MariaDbReplica(base / "replica", ca)

    def _link(self) -> None:
        password = secrets.token_hex(16)
        self.primary.admin(
            f"CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '{password}';"
            "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
        )
        # Replicate from here on: each server's own bootstrap (anonymous users removed, the
        # replication user) stays local; replaying the primary's would fail on the replica,
        # whose anonymous users are already gone. From here, CREATE DATABASE/USER replicate.
        position = self._primary_position()
        ca = sql_literal(str(self.primary.ca.ca), backslash_escapes=True)
        # The primary requires secure transport, so the replica's own connection uses TLS too.
        self.replica.admin(
            f"SET GLOBAL gtid_slave_pos = '{position}';"
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.primary.port}, "
            f"MASTER_USER='repl', MASTER_PASSWORD='{password}', MASTER_SSL=1, "
            f"MASTER_SSL_CA={ca}, MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_USE_GTID=slave_pos;"
            "START SLAVE;"
        )

    def _status(self) -> dict[str, str]:
        # Not through admin(), which drops column names: SHOW SLAVE STATUS has no table to
        # select named columns from in 10.11, so read its vertical output.
        cmd = ["mariadb", "--no-defaults", f"--socket={self.replica.socket}", "-uroot", "-E"]
        lines = _run([*cmd, "-e", "SHOW SLAVE STATUS"]).stdout.splitlines()
        return dict(line.strip().partition(": ")[::2] for line in lines if ": " in line)

    def _streaming(self) -> bool:
        status = self._status()
        return status.get("Slave_IO_Running") == status.get("Slave_SQL_Running") == "Yes"

    def _primary_position(self) -> str:
        return self.primary.admin("SELECT @@gtid_binlog_pos").strip()

    def _replica_reached(self, position: str) -> bool:
        # 0: the replica has applied `position`; -1: not within the 0.2 s wait.
        return self.replica.admin(f"SELECT MASTER_GTID_WAIT('{position}', 0.2)").strip() == "0"

    def _replica_state(self) -> str:
        position = self.replica.admin("SELECT @@gtid_slave_pos").strip()
        status = self._status()
        keys = ("Slave_IO_Running", "Slave_SQL_Running", "Last_IO_Error", "Last_SQL_Error")
        return f"{position} (" + ", ".join(f"{key}={status.get(key)}" for key in keys) + ")"

    def pause(self) -> None:
        # The IO thread keeps fetching into the relay log; only applying stops.
        self.replica.admin("STOP SLAVE SQL_THREAD;")

    def resume(self) -> None:
        self.replica.admin("START SLAVE SQL_THREAD;")


class ReplicatedPostgres(ReplicatedDb):
    def __init__(self, base: Path, ca: TestCa) -> None:
        self.primary = PostgresPrimary(base / "primary", ca)
        self.replica = PostgresStandby(base / "replica", ca, self.primary)

    def _link(self) -> None:
        pass  # pg_basebackup -R already pointed the standby at the primary

    def _streaming(self) -> bool:
        return self.replica.admin("SELECT status FROM pg_stat_wal_receiver").strip() == "streaming"

    def _primary_position(self) -> str:
        return self.primary.admin("SELECT pg_current_wal_lsn()").strip()

    def _replica_reached(self, position: str) -> bool:
        sql = f"SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn"
        return self.replica.admin(sql).strip() == "t"

    def _replica_state(self) -> str:
        return self.replica.admin(
            "SELECT pg_last_wal_replay_lsn() || ', ' || pg_get_wal_replay_pause_state() || ', '"
            " || coalesce((SELECT status FROM pg_stat_wal_receiver), 'no WAL receiver')"
        ).strip()

    def pause(self) -> None:
        self.replica.admin("SELECT pg_wal_replay_pause()")
        # Only a request until the startup process acts on it (at once when idle, as here).
        state = "SELECT pg_get_wal_replay_pause_state()"
        _poll(
            lambda: self.replica.admin(state).strip() == "paused",
            10,
            lambda: f"replay not paused: {self._replica_state()}",
        )

    def resume(self) -> None:
        self.replica.admin("SELECT pg_wal_replay_resume()")


PAIRS: dict[str, type[ReplicatedDb]] = {"mysql": ReplicatedMariaDb, "postgres": ReplicatedPostgres}


@contextlib.contextmanager
def running_pair(engine: str, base: Path, ca: TestCa) -> Iterator[ReplicatedDb]:
    """The engine's pair under `base` (reachable by the postgres user), stopped on exit even if
    it failed half-way through starting."""
    pair = PAIRS[engine](base, ca)
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()
