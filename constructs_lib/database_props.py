"""The backend store's settings in one typed model: the config file's `database` section and
MlflowDatabase's `props` (and, for `snapshot_before_upgrade`, what the server's migration does
with it)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..k8s_charts.model import Props

Engine = Literal["mysql", "postgres"]

ENGINE_MAJOR_VERSIONS: dict[str, str] = {"mysql": "8.4", "postgres": "17"}
"""The engine's major version; RDS picks the minor and keeps it patched (the policy:
docs/operations.md, Database engine versions)."""


def _check_instance_type(value: str) -> str:
    if value.startswith("db."):
        raise ValueError(f"write the instance type without the 'db.' prefix: {value[3:]!r}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
        raise ValueError("expected an instance class and size such as 't4g.medium'")
    return value


InstanceType = Annotated[str, AfterValidator(_check_instance_type)]


class DatabaseProps(Props):
    """The RDS backend store."""

    engine: Engine = Field(
        "mysql",
        description=f"`mysql` (MySQL {ENGINE_MAJOR_VERSIONS['mysql']}) or `postgres` "
        f"(PostgreSQL {ENGINE_MAJOR_VERSIONS['postgres']}); RDS picks the minor version and "
        "upgrades it in the maintenance window (the DatabaseEngineVersion output shows it).",
    )
    instance_type: InstanceType = Field(
        "t4g.medium", description="RDS instance class without the `db.` prefix."
    )
    allocated_storage_gib: int = Field(
        20, ge=20, le=65536, description="Initial storage (GiB, 20-65536); autoscaling doubles it."
    )
    multi_az: bool = Field(False, description="Standby in a second AZ (recommended in production).")
    read_replica: bool = Field(
        False,
        description="An RDS read replica of the same class: MLflow's searches (the UI's lists) "
        "go there, its writes and other reads to the primary. Doubles the database cost.",
    )
    snapshot_before_upgrade: bool = Field(
        True,
        description="Before a migration changes the schema of existing data, the migrate step "
        "makes sure of a manual snapshot (one taken before the same upgrade, however old; else "
        "yours from the last hour; else one it takes and waits for, at most 5 of its own "
        "`mlflow-before-*` at a time) and does not migrate without one.",
    )
    backup_retention_days: int = Field(
        7, ge=1, le=35, description="Automated backups kept (1-35 days; 0 would disable them)."
    )
    removal_policy: Literal["snapshot", "destroy"] = Field(
        "snapshot",
        description="On stack deletion: keep a final snapshot (default), or `destroy`. This app "
        "also needs `-c allow_data_destroy=true` for `destroy` (otherwise a warning and a "
        "snapshot).",
    )
