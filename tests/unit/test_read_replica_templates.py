"""The optional read replica: off by default; when on, a replica of the primary with its
security, whose endpoint reaches the launcher (which routes MLflow's reads there)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import Settings
from mlflow_on_eks.constructs_lib import DatabaseProps, MlflowDatabase, MlflowVpc
from tests.conftest import Synth, primary_database, resources_of
from tests.unit.test_constructs import bare_stack, template

SynthFn = Callable[[str], Synth]


def _instances(synth: Synth) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]:
    """(primary, replica) as (logical ID, resource)."""
    data = synth.templates["Data"]
    primary = primary_database(data)
    [replica] = [i for i in resources_of(data, "AWS::RDS::DBInstance").items() if i != primary]
    return primary, replica


def _config(synth: Synth) -> dict[str, str]:
    return synth.object("ConfigMap", "mlflow-config")["data"]


def test_off_by_default(each_config: Synth) -> None:
    assert Settings().database.read_replica is False
    if each_config.settings.database.read_replica:
        return
    instances = resources_of(each_config.templates["Data"], "AWS::RDS::DBInstance")
    # An existing instance has none here (and no replica: database.read_replica is refused).
    assert len(instances) == (0 if each_config.settings.database.existing.endpoint else 1)
    assert "MLFLOW_DB_READ_HOST" not in _config(each_config)
    assert "DatabaseReadEndpoint" not in each_config.templates["Mlflow"].get("Outputs", {})


def test_replicates_the_primary_with_its_tls_group_and_class(synth: SynthFn) -> None:
    s = synth("test-maximal")
    (primary_id, primary), (_, replica) = _instances(s)
    p, r = primary["Properties"], replica["Properties"]
    assert f'"Ref": "{primary_id}"' in json.dumps(r["SourceDBInstanceIdentifier"])
    # TLS required (the same parameter group), admitted by the same rule, same size.
    for key in ("DBParameterGroupName", "VPCSecurityGroups", "DBInstanceClass", "Port", "MultiAZ"):
        assert r[key] == p[key], key
    assert r["PubliclyAccessible"] is False
    assert r["EnableCloudwatchLogsExports"] == p["EnableCloudwatchLogsExports"]
    # Encryption and login come from the source; CloudFormation wants them unset here.
    assert "StorageEncrypted" not in r and "MasterUsername" not in r
    assert p["StorageEncrypted"] is True


def test_replica_holds_nothing_to_keep(synth: SynthFn) -> None:
    _, (_, replica) = _instances(synth("test-maximal"))
    assert replica["Properties"]["DeletionProtection"] is False
    assert replica["DeletionPolicy"] == "Delete"


def test_the_launcher_gets_the_replica_endpoint(synth: SynthFn) -> None:
    s = synth("test-maximal")
    _, (replica_id, _) = _instances(s)
    host = _config(s)["MLFLOW_DB_READ_HOST"]
    # The review manifest shows the cross-stack value the manifest imports at deploy time.
    assert replica_id in host and "EndpointAddress" in host
    assert "MLFLOW_DB_READ_PORT" not in _config(s)  # a replica listens on the primary's port
    output = s.templates["Mlflow"]["Outputs"]["DatabaseReadEndpoint"]
    assert replica_id in json.dumps(output["Value"])


def test_replica_alone_shares_the_security_group_and_isolated_subnets(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    vpc = MlflowVpc(stack, "Network").vpc
    database = MlflowDatabase(stack, "Database", vpc=vpc, props=DatabaseProps(read_replica=True))
    assert database.read_replica is not None
    resources = template(stack)
    groups = resources_of(resources, "AWS::RDS::DBSubnetGroup").values()
    assert len(groups) == 2
    for group in groups:
        refs = json.dumps(group["Properties"]["SubnetIds"])
        assert "Isolated" in refs and "Private" not in refs
    instances = list(resources_of(resources, "AWS::RDS::DBInstance").values())
    assert len({json.dumps(i["Properties"]["VPCSecurityGroups"]) for i in instances}) == 1
