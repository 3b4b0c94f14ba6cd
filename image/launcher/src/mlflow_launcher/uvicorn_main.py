"""`python -m mlflow_launcher.uvicorn_main ARGS`: uvicorn's command line (ARGS as `python -m
uvicorn` takes them) that ends with status 0 when SIGTERM stopped it, as `mlflow server` did.

With one worker, uvicorn serves in its own process and, after its graceful shutdown, raises the
signal it stopped for once more (uvicorn 0.54, server.py `capture_signals`), so the process
ends killed by SIGTERM: status 143 under tini, which the kubelet records as an error. When
uvicorn was MLflow's CLI's child, the CLI ended with 0. uvicorn raises it with the handler it
found restored, which is this one: it ends the process with 0. With more workers uvicorn's
supervisor ends with 0 by itself; a SIGTERM before uvicorn is up ends it with 0 as well, as
it ended the CLI.
"""

from __future__ import annotations

import signal
from types import FrameType

from uvicorn.main import main


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stopped)
    main(prog_name="uvicorn")
