"""bench/artifacts.py runs end to end: a small artifact in every mode, through the session's
stand-ins. Only that it measures is checked (no timing): speeds, checksums, memory figures."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_measure_artifacts_reports_every_mode(postgres, moto, test_ca, tmp_path):
    from bench.artifacts import Stack, measure_artifacts

    report = measure_artifacts(
        size_mib=32,
        repeats=1,
        stack=Stack(ca=test_ca, db=postgres, moto=moto),
        workdir=tmp_path,
        warmup=False,
    )

    modes = report["modes"]
    assert set(modes) == {"direct", "presigned", "proxied"}
    for name, mode in modes.items():
        assert mode["up_mib_s"] > 0 and mode["down_mib_s"] > 0, (name, mode)
        assert mode["sha256_ok"], name
        [run] = mode["runs"]
        assert run["sha256"] == report["sha256"], name
        for direction in ("up", "down"):
            server = run["server"][direction]
            assert server["samples"] >= 1 and server["pss_before_mib"] > 0, (name, server)
            assert isinstance(server["pss_growth_mib"], float), (name, server)
        assert modes[name]["ratio_up"] is not None, name
    # Each mode took its own path through the server.
    assert modes["direct"]["paths"] == dict.fromkeys(modes["direct"]["paths"], 0)
    presigned, proxied = modes["presigned"]["paths"], modes["proxied"]["paths"]
    assert presigned["mpu"] == 2 and presigned["presigned"] == 1, presigned
    assert presigned["proxied_put"] == presigned["proxied_get"] == 0, presigned
    assert proxied["proxied_put"] == 1 and proxied["proxied_get"] >= 1, proxied
    assert proxied["mpu"] == proxied["presigned"] == 0, proxied
