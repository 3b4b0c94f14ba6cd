"""MLflow's workspaces are a one-way door: once something lives outside the `default`
workspace, a server started without them would hide it.

MLflow 3.17's own stores refuse to start in that state for experiments, registered models
(prompts are registered models) and webhooks, with a stack trace that names no way out; its
evaluation datasets, AI gateway objects, jobs and MCP servers it would simply no longer show.
`refuse_hidden` checks every table MLflow scopes by workspace before the server starts, and names
the command that moves everything back into `default`.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mlflow_launcher.errors import LauncherError

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "default"
SCOPED_TABLES = (
    "experiments",
    "registered_models",
    "evaluation_datasets",
    "webhooks",
    "secrets",
    "endpoints",
    "model_definitions",
    "budget_policies",
    "guardrails",
    "jobs",
    "mcp_servers",
)
"""The tables whose rows belong to a workspace (MLflow 3.17.2:
mlflow/store/workspace/sqlalchemy_store.py `_WORKSPACE_ROOT_MODELS`, which a test compares
with this list); their child tables follow them."""


def outside_default(engine: Engine) -> dict[str, str]:
    """Table -> one workspace other than `default` holding rows of it (an indexed lookup per
    table, at most one row each)."""
    found = {}
    with engine.connect() as conn:
        for table in SCOPED_TABLES:
            row = conn.execute(
                text(f"SELECT workspace FROM {table} WHERE workspace <> :d LIMIT 1"),  # noqa: S608 - our constants
                {"d": DEFAULT_WORKSPACE},
            ).first()
            if row is not None:
                found[table] = row[0]
    return found


def refuse_hidden(engine: Engine) -> None:
    """With workspaces off: refuse to start while anything lives outside `default`."""
    found = outside_default(engine)
    if not found:
        return
    where = ", ".join(f"{table} in workspace {workspace!r}" for table, workspace in found.items())
    raise LauncherError(
        f"workspaces are off (server.workspaces: false) but the database holds resources "
        f"outside the default workspace ({where}, for example): a server without workspaces "
        "would hide them. Either turn workspaces back on, or move everything into the default "
        "workspace first with `mlflow db migrate-to-default-workspace <database URI>` (it "
        "refuses when two workspaces hold resources of the same name; back up the database "
        'first; docs/operations.md, "Workspaces")'
    )
