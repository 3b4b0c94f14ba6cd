"""Runs the tests' image-Python programs without paying for `import mlflow` each time.

    python mlflow_client_zygote.py MODULE...

Started once per test process by itest_launcher.image_python (the real MLflow client, schema
inspections, ...), with .venv-image's python: it imports MODULE... (MLflow: 2-4 s of CPU each
time a new Python does it), then for each request line on stdin forks a child that becomes
the process a new `python SCRIPT ARGS...` or `python -c CODE ARGS...` would be: the request's
environment (plus what the imports put in it, as in a new process), argv, working directory,
sys.path[0], stdin from /dev/null, stdout and stderr into the request's files. The child runs
the program and exits as Python does (SystemExit, threads joined, atexit handlers). The
parent answers one JSON line per request: the child's exit code (as subprocess reports it;
-9 when it outlived the request's timeout and was killed).

Every child starts from the state right after the imports, never from another child's, so
one run cannot leak into the next; only the import is shared.
"""

import gc
import importlib
import json
import os
import runpy
import select
import signal
import sys
import tempfile
import threading
import traceback


def _child(request: dict, imported_env: dict[str, str]) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    # Not the parent's stdin object, whose buffer may hold the next requests.
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's stdin until it exits)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(imported_env)
    tempfile.tempdir = None  # chosen afresh from this environment's TMPDIR, as in a new process
    # What MLflow set up on import from the environment then, again with this one: its
    # telemetry client (MLFLOW_DISABLE_TELEMETRY, a session id of its own) and its loggers'
    # level (MLFLOW_LOGGING_LEVEL; the tests never set MLFLOW_CONFIGURE_LOGGING for a zygote).
    telemetry = sys.modules.get("mlflow.telemetry.client")
    if telemetry is not None:
        telemetry.set_telemetry_client()
    logging_utils = sys.modules.get("mlflow.utils.logging_utils")
    if logging_utils is not None:
        logging_utils._configure_mlflow_loggers(root_module_name="mlflow")
    os.chdir(request["cwd"])
    argv, code = request["argv"], request.get("code")
    sys.argv = list(argv)
    sys.path[0] = "" if code is not None else os.path.dirname(os.path.abspath(argv[0]))
    try:
        if code is not None:
            # What `python -c` runs: the tests' own client programs.
            exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102
        else:
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    sys.exit(0)


def _wait(pid: int, timeout: float) -> int:
    pidfd = os.pidfd_open(pid)
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def main() -> None:
    before = dict(os.environ)
    for module in sys.argv[1:]:
        importlib.import_module(module)
    imported_env = {k: v for k, v in os.environ.items() if before.get(k) != v}
    # A fork copies only the thread calling it: a lock another thread held would stay held.
    assert threading.active_count() == 1, threading.enumerate()
    # Out of the collector's sight: otherwise each child's collections walk (and so copy) the
    # whole imported heap, which cost about as much CPU as the import saved.
    gc.freeze()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request, imported_env)  # exits: never returns here
        print(json.dumps({"returncode": _wait(pid, request["timeout"])}), flush=True)


if __name__ == "__main__":
    main()
