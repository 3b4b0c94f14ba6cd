"""Trace archival's config file: written from the contract's variables, read by MLflow's own
loader (in .venv-image) exactly as `mlflow server` reads it; a bad or half setting stops the
pod with a message naming the variable."""

import json
import stat
import subprocess
from pathlib import Path

import pytest

from mlflow_launcher import contract, trace_archival
from mlflow_launcher.errors import LauncherError

IMAGE_PYTHON = Path(__file__).resolve().parents[3] / ".venv-image" / "bin" / "python"
RETENTION = contract.TRACE_ARCHIVAL_RETENTION.name
LOCATION = contract.TRACE_ARCHIVAL_LOCATION.name
INTERVAL = contract.TRACE_ARCHIVAL_INTERVAL_SECONDS.name


def _mlflow_reads(path: Path) -> dict:
    """What MLflow's loader makes of the file (mlflow/tracing/trace_archival_config.py)."""
    code = (
        "import dataclasses, json, sys\n"
        "from mlflow.tracing.trace_archival_config import load_trace_archival_server_config\n"
        "print(json.dumps(dataclasses.asdict(load_trace_archival_server_config(sys.argv[1]))))\n"
    )
    done = subprocess.run(
        [str(IMAGE_PYTHON), "-c", code, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_off_without_a_retention():
    assert trace_archival.load({}) is None


def test_the_file_is_mlflows_own_format(tmp_path):
    archival = trace_archival.load(
        {RETENTION: "30d", LOCATION: "s3://team-ml-artifacts/artifacts/trace-archive"}
    )
    assert archival is not None
    path = trace_archival.write_config(tmp_path, archival)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    read = _mlflow_reads(path)
    assert read["enabled"] is True
    assert read["retention"] == "30d"
    assert read["location"] == "s3://team-ml-artifacts/artifacts/trace-archive"
    assert read["interval_seconds"] == 300  # MLflow's default, stated
    assert trace_archival.server_env(path) == {"MLFLOW_TRACE_ARCHIVAL_CONFIG": str(path)}


def test_every_retention_the_contract_admits_mlflow_admits_too(tmp_path):
    """The contract's pattern against MLflow's regex, on the edges of both."""
    admitted = ["1m", "90m", "12h", "30d", "999999d"]
    refused = ["0d", "30", "d", "30s", "1.5d", "30 d", "-1d", "1w", "1000000d"]
    for value in admitted:
        archival = trace_archival.load({RETENTION: value, LOCATION: "s3://bucket/prefix"})
        assert archival is not None
        assert _mlflow_reads(trace_archival.write_config(tmp_path, archival))["retention"] == value
    for value in refused:
        with pytest.raises(LauncherError, match=RETENTION):
            trace_archival.load({RETENTION: value, LOCATION: "s3://bucket/prefix"})


def test_a_retention_without_a_place_is_refused():
    with pytest.raises(LauncherError, match=f"{RETENTION} is set but {LOCATION} is not"):
        trace_archival.load({RETENTION: "30d"})


@pytest.mark.parametrize("value", ["59", "86401", "5m"])
def test_an_interval_mlflow_would_not_keep_is_refused(value):
    with pytest.raises(LauncherError, match=INTERVAL):
        trace_archival.load({RETENTION: "30d", LOCATION: "s3://bucket/p", INTERVAL: value})


def test_the_file_and_its_option_are_the_launchers():
    assert contract.extra_arg_problem("--trace-archival-config=/tmp/x.yaml")
    assert contract.extra_env_name_problem("MLFLOW_TRACE_ARCHIVAL_CONFIG")
