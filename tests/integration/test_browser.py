"""The MLflow UI in a real browser (headless Chromium), reached under an NLB's DNS name.

MLflow refuses Host headers it does not list (403) and state-changing /api and /ajax-api calls
whose Origin it does not list. A browser sends Origin on every POST, same-origin too, and the UI
lists runs by POST, so the chart must list the load balancer's name as a host AND as an origin.
The server here is the chart's default pod (synthesized ConfigMap, migrate then serve) on
127.0.0.1:80, so the browser's Host and Origin carry no port, as behind the NLB.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import itest_launcher as launcher
import itest_template as template
import pytest
from itest_browser import (
    ATTACKER_HOST,
    NLB_HOST,
    NLB_URL,
    OTHER_NLB_HOST,
    Shots,
    browser_fetch,
    chromium,
    create_experiment_in_ui,
    experiment_by_name,
    foreign_site,
    require_browser,
    send,
)
from itest_chart import container_env, pod, substitute_endpoints
from itest_servers import PORT_80

pytestmark = [pytest.mark.integration, PORT_80]

PORT = 80  # no ":port" in Host/Origin, as behind the load balancer's listener on 80
CREATE = "/ajax-api/2.0/mlflow/experiments/create"
CREATE_REFUSED = f'"POST {CREATE} HTTP/1.1" 403'
OTHER_NLB_ADDRESS = "127.0.0.2"  # another listener on port 80 than the server's 127.0.0.1

BLOCKED_TEXT = '//*[normalize-space()="Cross-origin request blocked"]'


@pytest.fixture
def pod_env(synth, mariadb, new_database, moto, test_ca, tmp_path):
    """The default config's server environment on 127.0.0.1:80, its database migrated by the
    chart's init container (once: restarts with other settings reuse it)."""
    require_browser()  # fail before the migration and the servers, with the install hint
    chart = synth("default")
    _, (init, main) = pod(chart)
    # A database of its own (test_chart_wiring uses the chart's name on the shared server).
    target = new_database(mariadb)
    bucket = moto.create_bucket()

    def local(env: dict[str, str]) -> dict[str, str]:
        env = substitute_endpoints(env, target, moto, test_ca.ca, bucket)
        # The listen address (loopback, port 80: root here) and the fresh database's name.
        env |= {"MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(PORT)}
        env["MLFLOW_DB_NAME"] = target.name
        return launcher.container_env(env, tmp_path / "home")

    template.migrate(mariadb, init["args"], local(container_env(chart, init)))
    return local(container_env(chart, main))


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[launcher.Server]:
    server = launcher.Server(env, log)
    try:
        server.wait_healthy(timeout=120)
        assert server.base_url == f"http://127.0.0.1:{PORT}"
        yield server
    finally:
        server.stop()


def _seed_run(server: launcher.Server, env: dict[str, str], workdir: Path) -> dict:
    """A run logged by the real MLflow client, sending the NLB's name as Host."""
    written = launcher.mlflow_client(
        {**env, "MLFLOW_TRACKING_URI": server.base_url},
        "write",
        server.base_url,
        NLB_HOST,
        str(workdir),
    )
    status, body = send(
        PORT, "GET", f"/api/2.0/mlflow/runs/get?run_id={written['run_id']}", NLB_HOST
    )
    assert status == 200, body
    return {**written, "run_name": json.loads(body)["run"]["info"]["run_name"]}


def _log_once(server: launcher.Server, start: int, text: str, timeout: float = 10) -> str:
    """The server's log from `start` on, once `text` is in it (the access log line is written
    around the time the response goes out, so it may trail the browser by a moment)."""
    deadline = time.monotonic() + timeout
    while text not in (log := server.logs()[start:]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return log


def _refusals(server: launcher.Server) -> str:
    """The server's refusals (Host or Origin not listed), for failure messages."""
    lines = [line for line in server.logs().splitlines() if '" 403' in line or "WARNING" in line]
    return "server refusals and warnings:\n" + "\n".join(lines[-20:])


def test_ui_under_the_load_balancer_name(pod_env, tmp_path):
    from selenium.webdriver.common.by import By

    assert "MLFLOW_CORS_ALLOWED_ORIGINS" in pod_env, "the chart sets no CORS origins"
    with (
        serving(pod_env, tmp_path / "server.log") as server,
        chromium(
            tmp_path / "profile",
            [NLB_HOST, ATTACKER_HOST],
            elsewhere={OTHER_NLB_HOST: OTHER_NLB_ADDRESS},
        ) as driver,
    ):
        shots = Shots(driver, tmp_path, lambda: _refusals(server))
        seeded = _seed_run(server, pod_env, tmp_path / "client")
        ui_log_start = len(server.logs())

        # ---- reads: the runs table is filled by POST ajax-api/2.0/mlflow/runs/search ----
        driver.get(f"{NLB_URL}/#/experiments/{seeded['experiment_id']}/runs")
        run_link = f'[role="gridcell"] a[href$="/runs/{seeded["run_id"]}"]'
        link = shots.wait(
            lambda d: next(
                (e for e in d.find_elements(By.CSS_SELECTOR, run_link) if e.text.strip()), None
            ),
            f"run {seeded['run_name']} in the runs table",
        )
        shot = shots.take("runs-table")
        assert link.text.strip() == seeded["run_name"], f"screenshot {shot}"

        # ---- an artifact shown in the run's page: the UI fetches it from /get-artifact,
        # which the launcher streams from S3 (s3_download.py) ----
        driver.get(
            f"{NLB_URL}/#/experiments/{seeded['experiment_id']}/runs/{seeded['run_id']}"
            "/artifacts/outputs/a.txt"
        )
        shots.wait(
            lambda d: "alpha artifact" in d.find_element(By.TAG_NAME, "body").text,
            "the artifact's text in the run's Artifacts tab",
        )
        shots.take("artifact-shown")
        shown = _log_once(server, ui_log_start, "GET /get-artifact?")
        fetched = [
            line for line in shown.splitlines() if "GET /get-artifact?path=outputs%2Fa.txt" in line
        ]
        assert fetched and all(line.endswith('HTTP/1.1" 200 OK') for line in fetched), shown[-2000:]

        # ---- writes: the Create experiment modal ----
        create_experiment_in_ui(shots, NLB_URL, "created-in-browser")
        created = shots.wait(
            lambda _: experiment_by_name(PORT, "created-in-browser"), "experiment in the API"
        )
        shots.wait(
            lambda d: f"/experiments/{created['experiment_id']}" in d.current_url,
            "the UI opening the new experiment",
        )
        shot = shots.take("experiment-created")
        assert created["lifecycle_stage"] == "active", f"screenshot {shot}"

        # Every call the UI made under the NLB name was accepted (none refused for Host/Origin).
        ui_log = _log_once(server, ui_log_start, f'"POST {CREATE} HTTP/1.1" 200')
        assert f'"POST {CREATE} HTTP/1.1" 200' in ui_log
        assert '"POST /ajax-api/2.0/mlflow/runs/search HTTP/1.1" 200' in ui_log
        refused = [line for line in ui_log.splitlines() if '" 403' in line]
        assert not refused, f"UI requests refused: {refused}; screenshots {shots.taken}"

        # ---- a page of another site cannot write ----
        with foreign_site() as foreign:
            _foreign_page_cannot_write(driver, server, shots, foreign, "foreign")
        # ---- nor one behind another load balancer of the region (any account can make one,
        # and the region's every NLB name was once allowed): port 80, as behind its listener.
        with foreign_site(OTHER_NLB_HOST, (OTHER_NLB_ADDRESS, 80)) as foreign:
            assert foreign == f"http://{OTHER_NLB_HOST}"
            _foreign_page_cannot_write(driver, server, shots, foreign, "other-nlb")

    # ---- would this catch a chart without the NLB origin? The same UI write must fail ----
    without_origins = {k: v for k, v in pod_env.items() if k != "MLFLOW_CORS_ALLOWED_ORIGINS"}
    with (
        serving(without_origins, tmp_path / "server-without-origins.log") as server,
        chromium(tmp_path / "profile-2", [NLB_HOST]) as driver,
    ):
        shots = Shots(driver, tmp_path, lambda: _refusals(server))
        log_start = len(server.logs())
        create_experiment_in_ui(shots, NLB_URL, "created-without-origins")
        shots.wait(
            lambda d: d.find_elements(By.XPATH, f'//div[@role="dialog"]{BLOCKED_TEXT}'),
            "the modal showing MLflow's refusal",
        )
        shot = shots.take("create-refused")
        refusal_log = _log_once(server, log_start, CREATE_REFUSED)
        # The browser sent its page's own origin on this same-origin POST; MLflow refused it.
        assert f"Blocked cross-origin request from {NLB_URL}\n" in refusal_log, shot
        assert CREATE_REFUSED in refusal_log, f"screenshot {shot}"
        assert experiment_by_name(PORT, "created-without-origins") is None, f"screenshot {shot}"


def _foreign_page_cannot_write(driver, server, shots: Shots, foreign: str, tag: str) -> None:
    """From a page of `foreign`, a script's JSON POST and a simple POST to the NLB name: the
    browser and the server refuse both, and nothing is created."""
    driver.get(f"{foreign}/")
    log_start = len(server.logs())
    # What a script would send: JSON, so the browser asks first (preflight OPTIONS).
    preflighted = browser_fetch(
        driver,
        f"{NLB_URL}{CREATE}",
        method="POST",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"name": f"from-{tag}-json"}),
    )
    # A "simple" request goes out without asking; only the server can stop it.
    simple = browser_fetch(
        driver,
        f"{NLB_URL}{CREATE}",
        method="POST",
        headers={"Content-Type": "text/plain"},
        body=json.dumps({"name": f"from-{tag}-simple"}),
    )
    shot = shots.take(f"{tag}-page-fetches")
    foreign_log = _log_once(server, log_start, CREATE_REFUSED)
    assert "error" in preflighted and "error" in simple, (preflighted, simple, shot)
    # The JSON POST never left the browser: the server refused the preflight (the origin is
    # not listed). The simple POST was sent, and the server refused it: one 403, ours.
    assert f'"OPTIONS {CREATE} HTTP/1.1" 400' in foreign_log, foreign_log
    assert foreign_log.count(CREATE_REFUSED) == 1, foreign_log
    assert f"Blocked cross-origin request from {foreign}\n" in foreign_log, foreign_log
    for name in (f"from-{tag}-json", f"from-{tag}-simple"):
        assert experiment_by_name(PORT, name) is None, f"{name} was created"
    # The server refuses that origin itself, also where no browser enforces CORS.
    status, body = send(PORT, "POST", CREATE, NLB_HOST, {"name": "replayed"}, Origin=foreign)
    assert (status, body) == (403, "Cross-origin request blocked")
    assert experiment_by_name(PORT, "replayed") is None
