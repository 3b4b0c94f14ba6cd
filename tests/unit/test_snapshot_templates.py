"""Before a schema upgrade, a snapshot: the launcher learns the instance from the ConfigMap and
the server role may list its snapshots and create the launcher's own, nothing more."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from config import Settings
from mlflow_on_eks.constructs_lib.workload_roles import SNAPSHOT_PREFIX
from tests.conftest import Synth, primary_database, resources_of

SynthFn = Callable[[str], Synth]


def _rds_statements(synth: Synth) -> list[dict[str, Any]]:
    policies = resources_of(synth.templates["Mlflow"], "AWS::IAM::Policy")
    return [
        statement
        # The DatabaseEngineVersion output's reader is not the migration's (test_stacks).
        for key, policy in policies.items()
        if not key.startswith("EngineVersion")
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("rds:") for a in _list(statement["Action"]))
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_on_by_default_with_the_primary_instance(synth: SynthFn) -> None:
    assert Settings().database.snapshot_before_upgrade is True
    s = synth("default")
    # The migration Job's, not the ConfigMap's: the server never snapshots.
    assert "MLFLOW_DB_INSTANCE_ID" not in s.object("ConfigMap", "mlflow-config")["data"]
    [job] = [j for j in s.objects("Job") if "-migrate-" in j["metadata"]["name"]]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    instance_id = {e["name"]: e["value"] for e in migrate["env"]}["MLFLOW_DB_INSTANCE_ID"]
    primary, _ = primary_database(s.templates["Data"])
    assert f"Ref{primary}" in instance_id  # the review form of the data stack's export


def test_the_role_creates_and_tags_only_its_own_snapshots_of_this_instance(
    synth: SynthFn,
) -> None:
    s = synth("default")
    statements = {tuple(sorted(_list(st["Action"]))): st for st in _rds_statements(s)}
    assert set(statements) == {
        ("rds:CreateDBSnapshot",),
        ("rds:AddTagsToResource",),
        ("rds:DescribeDBSnapshots",),
    }
    create = json.dumps(statements["rds:CreateDBSnapshot",]["Resource"])
    assert f":snapshot:{SNAPSHOT_PREFIX}*" in create
    assert ":db:" in create and ":snapshot:*" not in create
    # Tags (the instance's, copied, and the upgrade's) go on its own snapshots, never on the
    # instance or anyone else's snapshot.
    tag = _list(statements["rds:AddTagsToResource",]["Resource"])
    assert len(tag) == 1 and f":snapshot:{SNAPSHOT_PREFIX}*" in json.dumps(tag)
    describe = json.dumps(statements["rds:DescribeDBSnapshots",]["Resource"])
    assert ":db:" in describe and ":snapshot:*" in describe
    assert all(st["Effect"] == "Allow" for st in statements.values())


def test_off_leaves_neither_the_variable_nor_the_permission(synth: SynthFn) -> None:
    s = synth("test-minimal")
    assert "MLFLOW_DB_INSTANCE_ID" not in s.object("ConfigMap", "mlflow-config")["data"]
    assert _rds_statements(s) == []
