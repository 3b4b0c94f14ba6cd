"""Files the launcher writes for MLflow into the pod's scratch space."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> Path:
    """`text` into `path`, readable by this user only from the moment it exists (created with
    mode 0600, not chmod'ed after): the pod's scratch space is shared by its containers."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
