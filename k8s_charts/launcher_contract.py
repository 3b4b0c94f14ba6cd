"""The launcher's environment contract, loaded from the image's sources by their path.

Every variable the chart writes for the pods is declared once, in
image/launcher/src/mlflow_launcher/contract.py (name, type, default, bounds); the chart renders
its values through those declarations and the launcher parses them with the same, so the two
cannot disagree. The CDK app does not have the launcher installed (the image does), and the
module imports nothing but the standard library, so it is loaded here by path: the same path
in this repository and in the installed wheel (pyproject.toml ships the launcher's sources as
package data of `mlflow_on_eks.image`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

CONTRACT_PATH = (
    Path(__file__).resolve().parent.parent
    / "image"
    / "launcher"
    / "src"
    / "mlflow_launcher"
    / "contract.py"
)
_MODULE_NAME = "_mlflow_on_eks_launcher_contract"
"""Private: not `mlflow_launcher.contract`, which a process may also import (tests do)."""


def _load() -> ModuleType:
    module = sys.modules.get(_MODULE_NAME)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, CONTRACT_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"the launcher's contract is missing: {CONTRACT_PATH}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses look their module up in sys.modules.
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


launcher = _load()
"""The contract module: `launcher.DB_WAIT_SECONDS.render(...)`, `launcher.render({...})`."""


def bounds(variable: object) -> str:
    """A declared variable's bounds as the settings reference states them: `1-16`."""
    return f"{variable.low}-{variable.high}"  # type: ignore[attr-defined]
