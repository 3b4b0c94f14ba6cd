"""Run the launcher as the container does: image/Dockerfile's ENTRYPOINT + the chart's args,
with the venv installed from image/requirements.txt (.venv-image) first on PATH, as /opt/venv
is in the image."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "image" / "Dockerfile"
CLIENT_SCRIPT = Path(__file__).with_name("mlflow_client_script.py")
CLIENT_ZYGOTE = Path(__file__).with_name("mlflow_client_zygote.py")
_RUNTIME_PYTHON_ENV = frozenset({"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
"""PYTHON* variables a forked client honours as a new Python would: buffering and .pyc
writing change no result. Any other (PYTHONPATH, PYTHONHOME, ...) acts at start-up only."""
IMPORT_TIME_ENV = frozenset({"MLFLOW_CONFIGURE_LOGGING", "prometheus_multiproc_dir"})
"""What MLflow reads as it is imported, and a zygote's child cannot apply after: whether it
configures its loggers at all (their level it does again: mlflow_client_zygote.py), and
`mlflow.server`'s Prometheus exporter."""
POD_TMP_PATHS = ("MLFLOW_EXPOSE_PROMETHEUS",)
"""ConfigMap keys holding a path under the pod's /tmp."""


def image_venv() -> Path:
    venv = Path(os.environ.get("MLFLOW_IMAGE_VENV") or REPO / ".venv-image")
    for tool in ("python", "mlflow-launcher", "mlflow"):
        if not (venv / "bin" / tool).exists():
            pytest.fail(
                f"{venv}/bin/{tool} missing: build the image venv with `make .venv-image/.stamp` "
                "(installs image/requirements.txt with --require-hashes and image/launcher)",
                pytrace=False,
            )
    return venv


def entrypoint() -> list[str]:
    """The exec-form ENTRYPOINT of image/Dockerfile (the last one wins, as in Docker)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = re.findall(r"^\s*ENTRYPOINT\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    assert found, "image/Dockerfile has no exec-form ENTRYPOINT"
    return json.loads(found[-1])


def container_env(config: dict[str, str], home: Path) -> dict[str, str]:
    """The process environment: the ConfigMap's data plus what the image itself sets.

    `home` stands in for the pod's /tmp (an emptyDir: HOME and TMPDIR in the image), so a
    directory the chart puts there moves under it: servers side by side must not share it."""
    home.mkdir(parents=True, exist_ok=True)
    config = {
        key: str(home / value.removeprefix("/tmp/")) if key in POD_TMP_PATHS else value
        for key, value in config.items()
    }
    return {
        "PATH": f"{image_venv() / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home),
        "MPLCONFIGDIR": str(home / ".matplotlib"),
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        # Outside a PID namespace tini is not PID 1; as a subreaper it still reaps and forwards.
        "TINI_SUBREAPER": "1",
        **config,
    }


def run(
    args: list[str], env: dict[str, str], timeout: float = 300, *, wrapper: Sequence[str] = ()
) -> subprocess.CompletedProcess:
    """The image's ENTRYPOINT with `args`, run through `wrapper` (a command that execs the rest
    of its arguments, such as `unshare`) when one is given."""
    return subprocess.run(
        [*wrapper, *entrypoint(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def secret_forms(password: str) -> set[str]:
    """The password as it could leak: raw, in the latin-1 spelling of its UTF-8 bytes (a
    driver that decodes bytes the wrong way would log that), and URL-encoded. Short forms would
    match by chance, so tests use long passwords."""
    from sqlalchemy.engine import URL

    def in_a_url(value: str) -> str:  # SQLAlchemy's own percent-encoding (not urllib's)
        url = URL.create("x", username="u", password=value, host="h")
        return url.render_as_string(hide_password=False).split("u:", 1)[1].rsplit("@h", 1)[0]

    spelled = {password, password.encode("utf-8").decode("latin-1")}
    forms = {f for p in spelled for f in (p, quote(p, safe=""), quote_plus(p), in_a_url(p))}
    return {f for f in forms if len(f) >= 6}


def assert_no_secret(text: str, password: str, where: str) -> None:
    for form in secret_forms(password):
        assert form not in text, f"the password appears in {where}"


class Server:
    """A long-running launcher command (default: the container's `serve`), output in a file."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        command: list[str] | None = None,
        own_group: bool = False,
    ) -> None:
        """``own_group`` puts the command in a process group of its own, as a shell puts a
        foreground job, so a test can signal the group the way Ctrl-C in a terminal does."""
        self.env, self.log_path = env, log
        self.port = int(env["MLFLOW_PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            command or [*entrypoint(), "serve"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=own_group,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"/health not OK within {timeout} s:\n{self.logs()}")

    def get(self, path: str, host: str) -> tuple[int, str]:
        url = f"{self.base_url}{path}"
        request = urllib.request.Request(url, headers={"Host": host})  # noqa: S310 - http only
        try:
            with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def process_tree(self) -> list[int]:
        """The pids of the server and all its descendants."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        tree, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        return tree

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> float:
        """Signal the top process, wait for it and for every descendant to be gone; returns
        how long the shutdown took."""
        start = time.monotonic()
        tree = self.process_tree() if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"no exit within {timeout} s of signal {sig}") from None
        self._log.close()
        deadline = time.monotonic() + 10
        while (alive := [pid for pid in tree if running(pid)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive, f"processes outlived the server: {alive}"
        return time.monotonic() - start


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def image_python(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """The image's Python (.venv-image: MLflow, the launcher) with these arguments; it must
    exit 0. A program (`-c CODE` or a script, then its arguments) is forked by a zygote that
    imported MLflow once (mlflow_client_zygote.py: each import is 2-4 s of CPU); a new Python
    runs it when `env` sets what Python reads only as it starts, or for other arguments."""
    env = dict(os.environ) if env is None else env
    program = args[0] if args else ""
    startup = [k for k in env if k.startswith("PYTHON") and k not in _RUNTIME_PYTHON_ENV]
    forkable = program == "-c" or program.endswith(".py")
    if forkable and not startup and not IMPORT_TIME_ENV & set(env):
        code = args[1] if program == "-c" else None
        text = code if code is not None else Path(program).read_text()
        # A program that imports MLflow's server package (sign-in, its schemas) from the
        # zygote that has it too: it doubles the import.
        modules = ("mlflow", "mlflow.server") if "mlflow.server" in text else ("mlflow",)
        argv = ["-c", *args[2:]] if code is not None else list(args)
        result = _forked(argv, code, env, timeout, modules)
    else:
        result = subprocess.run(
            [str(image_venv() / "bin" / "python"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert result.returncode == 0, f"{args[:2]} failed:\n{result.stdout}\n{result.stderr}"
    return result


_ZYGOTES: dict[tuple[str, ...], tuple[subprocess.Popen, Path]] = {}
_ZYGOTE_LOCK = threading.Lock()
"""One request at a time (tests run programs from threads): the zygote runs them one after
the other anyway, each in a fraction of what a new Python took."""


def _zygote(modules: tuple[str, ...]) -> subprocess.Popen:
    """This test process's mlflow_client_zygote.py with `modules` imported, started on first use
    and kept until the process exits (its stdin closes)."""
    if modules in _ZYGOTES:
        proc, log = _ZYGOTES[modules]
        if proc.poll() is None:
            return proc
        pytest.fail(f"the client zygote exited ({proc.returncode}):\n{log.read_text()}")
    home = Path(tempfile.mkdtemp(prefix="mlflow-client-zygote-"))
    log = home / "zygote.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [str(image_venv() / "bin" / "python"), str(CLIENT_ZYGOTE), *modules],
            # A user's machine, as client_env's: the imports see nothing of a test's server.
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=home,
        )
    _ZYGOTES[modules] = (proc, log)
    return proc


def _forked(
    argv: list[str],
    code: str | None,
    env: dict[str, str],
    timeout: float,
    modules: tuple[str, ...],
) -> subprocess.CompletedProcess:
    """`argv` (and `code`, as `python -c`) run as a new image Python would, forked by the
    zygote after its imports; stdout and stderr as subprocess.run captures them."""
    with tempfile.TemporaryDirectory(prefix="mlflow-client-") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        request = {"argv": argv, "code": code, "env": env, "cwd": os.getcwd()}
        request |= {"timeout": timeout, "stdout": str(out), "stderr": str(err)}
        with _ZYGOTE_LOCK:
            proc = _zygote(modules)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            answer = proc.stdout.readline()
            if not answer:
                proc.wait(10)
                _zygote(modules)  # fails with the zygote's log
        returncode = json.loads(answer)["returncode"]
        stdout, stderr = out.read_text(), err.read_text()
    if returncode == -signal.SIGKILL:
        stderr += f"\n(killed after its timeout of {timeout} s)"
    return subprocess.CompletedProcess(argv, returncode, stdout, stderr)


def mlflow_client(
    env: dict[str, str], *args: str, code: str | None = None, timeout: float = 300
) -> dict:
    """Run the real MLflow client (it lives in .venv-image) and return its JSON report: the
    client script of these tests, or `code` given inline."""
    program = ["-c", code] if code is not None else [str(CLIENT_SCRIPT)]
    result = image_python(*program, *args, env=env, timeout=timeout)
    return json.loads(result.stdout.strip().splitlines()[-1])


def serve_as_pid_1(db, env: dict[str, str], log: Path) -> tuple[Server, int]:
    """Migrate (on `db`, a session server), then `serve` as PID 1 of a new PID namespace
    (`unshare --pid`, root), as a container runtime starts the ENTRYPOINT. Returns the server
    and the host pid of its tini."""
    import itest_template as template
    from itest_servers import require_binary

    assert os.geteuid() == 0, "unshare --pid needs root (CI runs as root)"
    env = {k: v for k, v in env.items() if k != "TINI_SUBREAPER"}  # tini really is PID 1
    template.migrate(db, ["migrate"], env)
    unshare = require_binary("unshare")
    command = [unshare, "--pid", "--fork", "--mount-proc", *entrypoint(), "serve"]
    server = Server(env, log, command=command)
    server.wait_healthy(timeout=120)
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    init = int(children[0])
    assert Path(f"/proc/{init}/cmdline").read_bytes().split(b"\0")[0] == b"tini"
    return server, init


_LOCK_HOLDER = """
# Holds the launcher's migration lock on its own session, with the launcher's own settings
# and TLS, until stdin closes; prints the session's id (MySQL connection id / PostgreSQL pid).
import os, sys
from sqlalchemy import text
from mlflow_launcher import dburl, schema, secret, settings, wait
db = settings.load_db(os.environ)
url = dburl.build_url(db, secret.fetch_credentials(db.secret_id, region=db.region))
with wait.make_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
    if conn.dialect.name == "mysql":
        got = conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": schema.LOCK_NAME}).scalar()
        session = conn.execute(text("SELECT CONNECTION_ID()")).scalar()
    else:
        got = conn.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": schema.PG_LOCK_KEY}
        ).scalar()
        session = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    assert got, "the lock is already taken"
    print(session, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def holding_migration_lock(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """Another real session holds the migration lock for the duration of the block; yields its
    session id and process. Afterwards the session has ended and the holder exited 0."""
    holder = subprocess.Popen(
        [str(image_venv() / "bin" / "python"), "-c", _LOCK_HOLDER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([holder.stdout], [], [], 120)
        session = holder.stdout.readline().strip() if ready else ""  # type: ignore[union-attr]
        assert session.isdigit(), f"the lock holder did not start: {holder.communicate()[1]}"
        yield session, holder
    finally:
        holder.stdin.close()  # type: ignore[union-attr]  # the session, and its lock, end
        try:
            holder.wait(30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
    assert holder.returncode == 0, holder.stderr.read()  # type: ignore[union-attr]
