"""The session's synthesized assemblies share their staged files (docs/testing.md, "How much
disk it takes"): a copy of the layers in each ran CI's disk out."""

from __future__ import annotations

import zipfile
from collections.abc import Callable

from tests.conftest import Synth


def test_two_configurations_hold_one_copy_of_each_staged_layer(
    synth: Callable[[str], Synth],
) -> None:
    default, postgres = synth("default").outdir, synth("postgres").outdir
    zips = sorted(p.name for p in default.glob("asset.*.zip"))
    assert len(zips) >= 2, f"expected the kubectl and AWS CLI layers, found {zips}"
    for name in zips:
        mine, theirs = (default / name).stat(), (postgres / name).stat()
        assert (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino), f"{name}: two copies"
        with zipfile.ZipFile(default / name) as layer:
            assert layer.testzip() is None, f"{name} no longer reads as its zip"
