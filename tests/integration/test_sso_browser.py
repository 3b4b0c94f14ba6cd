"""The MLflow UI in a real browser (headless Chromium) signed in by single sign-on: the browser
reaches the server under an ALB's DNS name through a stand-in for the ALB (tests/fake_alb.py)
that, as the ALB's OIDC action does for a signed-in browser, adds a freshly signed
x-amzn-oidc-data header to each request it forwards. The browser never sends a password: the
UI loads, and an experiment created in it belongs to the IdP user."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from itest_browser import Shots, chromium, create_experiment_in_ui, require_browser
from itest_servers import free_port
from itest_sso import sso_pod

from tests.fake_alb import alb

pytestmark = pytest.mark.integration

# An ALB's DNS name, `<name>-<id>.<region>.elb.amazonaws.com` (ALB and CLB names; NLBs put
# `elb` first), the name as the AWS Load Balancer Controller makes it for an Ingress.
ALB_HOST = "k8s-mlflow-mlflowss-4f8a2b1c9d-1234567890.eu-west-1.elb.amazonaws.com"
USER = "ivy@example.com"
NAME = "created-through-the-alb"


def test_the_ui_through_the_alb_is_the_idp_users(mariadb, synth, moto, test_ca, tmp_path):
    from selenium.webdriver.common.by import By

    require_browser()  # before the servers, with the install hint
    port = free_port()  # the stand-in ALB's, on loopback: no port 80 needed
    base = f"http://{ALB_HOST}:{port}"
    with (
        sso_pod(
            mariadb,
            synth,
            moto,
            test_ca,
            tmp_path / "pod",
            # What the chart lists for the ALB's name (here with the stand-in's port).
            MLFLOW_ALLOWED_HOSTS=f"{ALB_HOST}:{port},localhost,127.0.0.1:*",
            MLFLOW_CORS_ALLOWED_ORIGINS=base,
        ) as sso,
        alb(sso.port, lambda: sso.token(USER, "ml"), port=port),
        chromium(tmp_path / "profile", [ALB_HOST]) as driver,
    ):
        shots = Shots(driver, tmp_path, lambda: sso.server.logs()[-4000:])
        create_experiment_in_ui(shots, base, NAME)

        def created() -> str | None:
            answer = sso.send(
                "GET",
                f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={NAME}",
                login=sso.auth.admin_login(),
            )
            return (
                json.loads(answer.body)["experiment"]["experiment_id"]
                if answer.status == 200
                else None
            )

        experiment_id = shots.wait(lambda _: created(), "the experiment in the API")
        shots.wait(
            lambda d: f"/experiments/{experiment_id}" in d.current_url,
            "the UI opening the new experiment",
        )
        # The page reads the experiment back, as the user: its name shows.
        shots.wait(
            lambda d: d.find_elements(By.XPATH, f'//*[normalize-space()="{NAME}"]'),
            "the experiment's name on its page",
        )
        shot = shots.take("created-through-the-alb")
        # Made by the IdP user, who was made an MLflow user (no admin) on the first request.
        assert sso.users().get(USER) is False, shot
        query = urlencode(
            {"username": USER, "resource_type": "experiment", "resource_id": experiment_id}
        )
        permission = sso.send(
            "GET",
            f"/api/3.0/mlflow/users/permissions/get?{query}",
            login=sso.auth.admin_login(),
        )
        assert permission.status == 200, permission
        assert json.loads(permission.body)["permission"] == "MANAGE", permission.body
        # Every UI call went through signed in: no 401, no 403.
        refused = [
            line for line in sso.server.logs().splitlines() if '" 401' in line or '" 403' in line
        ]
        assert not refused, f"{refused}; screenshots {shots.taken}"
