"""A real browser for the integration tests: Debian's Chromium, driven by Selenium through
Debian's chromedriver, reaching the local MLflow server under a load balancer's DNS name.

Chromium's resolver maps the names the tests use to 127.0.0.1 and every other name to "not
found", so the browser sends exactly the Host and Origin it would send to an NLB, and nothing
else (no Google update or time pings) reaches the server or the network.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from itest_chart import LOAD_BALANCER_HOSTS

# The internal NLB's DNS name, as the deploy reads it back (itest_chart).
NLB_HOST = LOAD_BALANCER_HOSTS["internal"]
# Another NLB of the same region: any account's, e.g. one serving an attacker's page.
OTHER_NLB_HOST = "k8s-tenant-web-0a1b2c3d4e-fedcba9876543210.elb.eu-west-1.amazonaws.com"
NLB_URL = f"http://{NLB_HOST}"
ATTACKER_HOST = "attacker.example.com"

# Stable hooks of the MLflow 3.17 UI: its own test ids, element ids and the user-facing label.
CREATE_BUTTON = '[data-testid="create-experiment-button"]'
NAME_INPUT = '[role="dialog"] input#experimentName'
DIALOG_SUBMIT = '//div[@role="dialog"]//button[normalize-space()="Create"]'

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = (
    "run scripts/install-test-servers.sh (as root; installs Debian's chromium and "
    "chromium-driver) and `make .venv/bin/.stamp-dev` (selenium from requirements-dev.txt)"
)

# JS for execute_async_script: fetch, then report the status or the error the page would see,
# also written into the page so that screenshots show it.
FETCH_JS = """
const [url, init, done] = arguments;
const report = (outcome) => {
  const line = document.createElement("pre");
  line.style.whiteSpace = "pre-wrap";
  line.textContent = `page ${location.origin}: fetch ${url} ${JSON.stringify(init)}\n` +
    `  -> ${JSON.stringify(outcome)}`;
  document.body.append(line);
  done(outcome);
};
fetch(url, init).then(
  (r) => r.text().then((body) => report({status: r.status, body})),
  (e) => report({error: String(e)}),
);
"""


def require_browser() -> None:
    """A missing browser, driver or selenium is a failure with the install hint, never a skip."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            pytest.fail(f"{binary} not found: {INSTALL_HINT}", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail(f"selenium missing from the dev venv: {INSTALL_HINT}", pytrace=False)


@contextmanager
def chromium(
    profile: Path, hosts: list[str], elsewhere: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """Headless Chromium with a fresh profile; `hosts` resolve to 127.0.0.1, those in
    `elsewhere` to their (loopback) address, all else fails."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    addresses = {**dict.fromkeys(hosts, "127.0.0.1"), **(elsewhere or {})}
    rules = ", ".join([*(f"MAP {h} {a}" for h, a in addresses.items()), "MAP * ~NOTFOUND"])
    options = webdriver.ChromeOptions()
    # Both paths given: Selenium then never runs selenium-manager (which would download).
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root, where Chromium refuses its sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        # Without these Chromium calls Google services at start (and hits the server instead).
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--host-resolver-rules={rules}",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Shots:
    """Screenshots into the test's tmp_path; their paths go into assertion messages."""

    def __init__(self, driver: Any, directory: Path, diagnose: Callable[[], str]) -> None:
        """`diagnose` says what the server saw (e.g. its refusals), for failure messages."""
        self.driver, self.directory, self.diagnose = driver, directory, diagnose
        self.taken: list[Path] = []

    def take(self, name: str) -> Path:
        # Numbered across browsers in the same directory, so they sort in the order taken.
        path = self.directory / f"{len(list(self.directory.glob('*.png'))):02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.taken.append(path)
        return path

    def wait(self, condition: Callable[[Any], Any], what: str, timeout: float = 30) -> Any:
        """WebDriverWait for `condition`; on timeout a screenshot and a message naming it."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(condition)
        except TimeoutException:
            shot = self.take("timeout")
            raise AssertionError(
                f"{what}: not seen within {timeout} s at {self.driver.current_url}; "
                f"screenshot {shot}; {self.diagnose()}"
            ) from None


def create_experiment_in_ui(shots: Shots, base_url: str, name: str) -> None:
    """The experiments page's Create button, the modal's name field, the modal's Create."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    shots.driver.get(f"{base_url}/#/experiments")
    shots.wait(ec.element_to_be_clickable((By.CSS_SELECTOR, CREATE_BUTTON)), "Create").click()
    shots.wait(ec.visibility_of_element_located((By.CSS_SELECTOR, NAME_INPUT)), "name field")
    shots.driver.find_element(By.CSS_SELECTOR, NAME_INPUT).send_keys(name)
    shots.wait(ec.element_to_be_clickable((By.XPATH, DIALOG_SUBMIT)), "modal Create").click()


def browser_fetch(driver: Any, url: str, **init: Any) -> dict:
    """fetch() run by the current page: {"status", "body"} or {"error"} (e.g. a CORS error)."""
    return driver.execute_async_script(FETCH_JS, url, init)


def send(
    port: int, method: str, path: str, host: str, body: dict | None = None, **headers: str
) -> tuple[int, str]:
    """A request to the local server on `port` as a client of `host` would send it."""
    data = json.dumps(body).encode() if body is not None else None
    all_headers = {"Host": host, **headers}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def experiment_by_name(port: int, name: str) -> dict | None:
    """The experiment from the REST API (asked under the NLB's name), or None if absent."""
    status, body = send(
        port,
        "GET",
        f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={quote(name)}",
        NLB_HOST,
    )
    if status == 404 and "RESOURCE_DOES_NOT_EXIST" in body:
        return None
    assert status == 200, (status, body)
    return json.loads(body)["experiment"]


class _BlankPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = b"<!doctype html><title>elsewhere</title><p>a page of another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def foreign_site(
    host: str = ATTACKER_HOST, address: tuple[str, int] = ("127.0.0.1", 0)
) -> Iterator[str]:
    """A page on another origin (by default http://attacker.example.com:<port>/), served on
    loopback at `address`; its origin is returned (no port when it listens on 80)."""
    server = http.server.ThreadingHTTPServer(address, _BlankPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield f"http://{host}" if port == 80 else f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
