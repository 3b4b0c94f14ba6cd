"""`gc`'s settings and its time limit: the run ends with its own message at the limit, however
it is stuck. The real servers are in tests/integration/test_gc.py."""

import logging
import time

import pytest

from mlflow_launcher import gc
from mlflow_launcher.errors import LauncherError

ENV = {"MLFLOW_GC_OLDER_THAN": "30d", "MLFLOW_GC_TRACKING_URI": "http://mlflow.ns"}


def test_the_time_limit_is_read_with_the_other_settings():
    assert gc.load(ENV).timeout_seconds == gc.DEFAULT_TIMEOUT_SECONDS
    assert gc.load({**ENV, "MLFLOW_GC_TIMEOUT_SECONDS": " 90 "}).timeout_seconds == 90


@pytest.mark.parametrize("bad", ["0", "-5", "1.5", "an hour"])
def test_a_bad_time_limit_is_named(bad):
    with pytest.raises(LauncherError) as err:
        gc.load({**ENV, "MLFLOW_GC_TIMEOUT_SECONDS": bad})
    assert f"MLFLOW_GC_TIMEOUT_SECONDS must be a positive whole number of seconds, got {bad!r}" in (
        str(err.value)
    )


class Stopped(Exception):
    pass


def test_a_stuck_run_is_stopped_at_its_limit_with_a_message(caplog):
    codes = []

    def stop(code: int) -> None:  # the real one exits the process
        codes.append(code)
        raise Stopped

    started = time.monotonic()
    with pytest.raises(Stopped), gc.time_limit(0.3, started=started, stop=stop):
        time.sleep(30)  # a call that never returns by itself
    assert codes == [LauncherError.exit_code]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "gc stopped at its time limit, MLFLOW_GC_TIMEOUT_SECONDS=0.3 s" in record.getMessage()


def test_the_limit_counts_from_the_launchers_start_and_is_disarmed_after():
    codes = []
    with gc.time_limit(5, started=time.monotonic() - 4.9, stop=codes.append):
        time.sleep(0.5)  # the 0.1 s left run out in here
    assert codes == [LauncherError.exit_code]
    with gc.time_limit(0.2, started=time.monotonic(), stop=codes.append):
        pass
    time.sleep(0.4)
    assert codes == [LauncherError.exit_code]  # the finished block's alarm never fires


def test_with_workspaces_gc_cleans_every_workspace():
    """MLflow's gc cleans only `default` unless told --all-workspaces."""
    assert gc.load(ENV).workspaces is False
    assert gc.load({**ENV, "MLFLOW_ENABLE_WORKSPACES": "true"}).workspaces is True


def test_with_workspaces_mlflow_gc_is_told_all_workspaces(monkeypatch):
    import sys
    import types

    calls = []
    fake_cli = types.ModuleType("mlflow.cli")
    fake_cli.gc = types.SimpleNamespace(main=lambda **kwargs: calls.append(kwargs["args"]))
    fake_exceptions = types.ModuleType("mlflow.exceptions")
    fake_exceptions.MlflowException = type("MlflowException", (Exception,), {})
    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    monkeypatch.setitem(sys.modules, "mlflow.cli", fake_cli)
    monkeypatch.setitem(sys.modules, "mlflow.exceptions", fake_exceptions)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for flag, expected in (("false", False), ("true", True)):
        settings = gc.load({**ENV, "MLFLOW_ENABLE_WORKSPACES": flag})
        gc.run("mysql+mysqldb://u@db/mlflow", settings, None)
        assert ("--all-workspaces" in calls[-1]) is expected
