"""bench/artifacts.py runs end to end: a small artifact in every mode, through the session's
database and the bench's own S3 stand-in. Only that it measures is checked (no timing): speeds,
checksums, memory figures."""

from __future__ import annotations

import pytest
from itest_servers import REGION

pytestmark = pytest.mark.integration


def test_measure_artifacts_reports_every_mode(postgres, test_ca, tmp_path):
    """Over the S3 stand-in `make bench` uses: moto over HTTPS, its certificate verified."""
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    from bench.artifacts import Stack, measure_artifacts, s3_stand_in

    with s3_stand_in(tmp_path, test_ca) as (s3, s3_pid):
        without_the_ca = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(botocore.exceptions.SSLError):
            without_the_ca.list_buckets()
        report = measure_artifacts(
            size_mib=32,
            repeats=1,
            stack=Stack(ca=test_ca, db=postgres, moto=s3, s3_pid=s3_pid),
            workdir=tmp_path,
            warmup=False,
        )

    assert report["s3_endpoint_scheme"] == "https"
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
