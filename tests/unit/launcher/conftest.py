"""Unit tests import the launcher from its source tree (it is not installed in the dev venv;
its runtime, mlflow, lives in .venv-image). Only SQLAlchemy and boto3 are needed here (no
database driver: no unit test connects); the launcher imports mlflow lazily, inside the
functions that migrate."""

import sys
from pathlib import Path

LAUNCHER_SRC = Path(__file__).resolve().parents[3] / "image" / "launcher" / "src"
sys.path.insert(0, str(LAUNCHER_SRC))
