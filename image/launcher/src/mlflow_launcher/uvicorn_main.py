"""`python -m mlflow_launcher.uvicorn_main ARGS`: uvicorn's command line (ARGS as `python -m
uvicorn` takes them), with two changes: it ends with status 0 when SIGTERM stopped it, as
`mlflow server` did, and with several workers they are forked from a supervisor that has
imported MLflow's server once, instead of each starting a new Python that imports it again.

Exit status. With one worker, uvicorn serves in its own process and, after its graceful
shutdown, raises the signal it stopped for once more (uvicorn 0.54, server.py
`capture_signals`), so the process ends killed by SIGTERM: status 143 under tini, which the
kubelet records as an error. When uvicorn was MLflow's CLI's child, the CLI ended with 0.
uvicorn raises it with the handler it found restored, which is this one: it ends the process
with 0. With more workers uvicorn's supervisor ends with 0 by itself; a SIGTERM before uvicorn
is up ends it with 0 as well, as it ended the CLI.

Forked workers. uvicorn starts each worker with multiprocessing's `spawn` (uvicorn/_subprocess.py):
a new interpreter that imports MLflow's server, about 4 s of CPU and 190 MiB each. Here the
supervisor imports MLflow's server modules first (`PRELOAD`: modules only, which open no
connection and start no thread; the app, its stores and sign-in are still made by the factory in
each worker, after the fork) and uvicorn forks the workers from it: the import is paid once per
pod, and the workers share its pages until they write to them (`gc.freeze` keeps the collector
from writing to every object it would otherwise visit). A worker uvicorn restarts is forked the
same way.
"""

from __future__ import annotations

import gc
import importlib
import multiprocessing
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from uvicorn import _subprocess
from uvicorn.main import main
from uvicorn.supervisors.multiprocess import SIGNALS as SUPERVISOR_SIGNALS
from uvicorn.supervisors.multiprocess import Multiprocess

PRELOAD = ("mlflow.server.handlers", "mlflow.server.fastapi_app")
"""What each worker imports anyway; importing them builds MLflow's Flask and FastAPI apps as
module objects, and touches no store, database or network (its stores are made on first use,
and `mlflow.server.auth`, which makes its store on import and binds a function app.py patches
first, is left to the workers; tests/unit/launcher/test_launcher_uvicorn_main.py)."""


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def workers(argv: Sequence[str]) -> int:
    """The --workers count in uvicorn's `argv` (1 when absent, as uvicorn's default without
    WEB_CONCURRENCY, which the launcher never sets)."""
    for i, arg in enumerate(argv):
        if arg == "--workers" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--workers="):
            return int(arg.split("=", 1)[1])
    return 1


# A fork inherits the supervisor's handlers, which queue these signals for the supervisor's
# own loop (uvicorn/supervisors/multiprocess.py): a worker would ignore them. It gets what a
# spawned worker starts with instead, before uvicorn's server installs its own (SIGINT, SIGTERM).
_SPAWNED_HANDLERS = {
    number: signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
    for number in SUPERVISOR_SIGNALS
}


def _started_as_spawned(**kwargs: Any) -> None:
    for number, handler in _SPAWNED_HANDLERS.items():
        signal.signal(number, handler)
    _SUBPROCESS_STARTED(**kwargs)


_SUBPROCESS_STARTED = _subprocess.subprocess_started


def _terminate_all_after_closing(supervisor: Multiprocess) -> None:
    for listening in supervisor.sockets:
        listening.close()
    _TERMINATE_ALL(supervisor)


_TERMINATE_ALL = Multiprocess.terminate_all


def fork_workers_from_here() -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    gc.freeze()
    _subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]
    _subprocess.subprocess_started = _started_as_spawned
    # uvicorn's supervisor keeps its own copy of the listening socket until it exits, after its
    # workers: while they drain, the kernel still takes new connections into the backlog, which
    # no one accepts and which are reset at the end. Closed before the workers are told to stop,
    # a new connection is refused at once, as with one worker (test_drain).
    Multiprocess.terminate_all = _terminate_all_after_closing  # type: ignore[method-assign]


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stopped)
    if workers(sys.argv[1:]) > 1:
        fork_workers_from_here()
    main(prog_name="uvicorn")
