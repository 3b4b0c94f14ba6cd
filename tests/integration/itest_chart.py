"""The synthesized pod, read as Kubernetes would run it, with only AWS endpoints made local.

Integration tests start the launcher from these environments, so what they exercise is the
chart's own ConfigMap and container args, not a hand-written copy of them.
"""

from __future__ import annotations

import re
from pathlib import Path

from itest_servers import REGION, free_port

PLACEHOLDER = re.compile(r"\$\{[^}]+\}")
# CloudFormation pseudo parameters as a deployment in REGION (partition aws) resolves them.
PSEUDO_PARAMETERS = {
    "${Ref:AWS::Region}": REGION,
    "${Ref:AWS::URLSuffix}": "amazonaws.com",
    "${Ref:AWS::Partition}": "aws",
}


def pod(synth) -> tuple[dict, list[dict]]:
    """The server Deployment and its containers (init containers first)."""
    deployments = [
        d
        for d in synth.objects("Deployment")
        if d["spec"]["template"]["spec"].get("initContainers")
    ]
    assert len(deployments) == 1, "expected one Deployment with an initContainer"
    spec = deployments[0]["spec"]["template"]["spec"]
    return deployments[0], [*spec["initContainers"], *spec["containers"]]


def container_env(synth, container: dict) -> dict[str, str]:
    """What Kubernetes would put in the container's environment (envFrom, then env)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"unexpected env source {source}"
        env.update(synth.object("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        assert "value" in item, f"env {item['name']} comes from elsewhere: {item}"
        env[item["name"]] = item["value"]
    return env


def resolve_pseudo_parameters(value: str) -> str:
    for placeholder, resolved in PSEUDO_PARAMETERS.items():
        value = value.replace(placeholder, resolved)
    return value


def substitute_endpoints(env: dict[str, str], target, moto, ca: Path, bucket: str) -> dict:
    """Only where the pod would reach AWS: DB endpoint, secret, bucket, region, CA, port."""
    local = {key: resolve_pseudo_parameters(value) for key, value in env.items()}
    local["MLFLOW_DB_HOST"] = "127.0.0.1"
    local["MLFLOW_DB_PORT"] = str(target.server.port)
    local["MLFLOW_DB_SECRET_ID"] = target.secret_arn
    local["MLFLOW_DB_CA_BUNDLE"] = str(ca)
    local["MLFLOW_ARTIFACTS_DESTINATION"] = PLACEHOLDER.sub(
        bucket, env["MLFLOW_ARTIFACTS_DESTINATION"]
    )
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        local[key] = REGION
    local["MLFLOW_PORT"] = str(free_port())
    local["MLFLOW_WORKERS"] = "1"  # the CI machine has 2 cores
    leftovers = {k: v for k, v in local.items() if PLACEHOLDER.search(v)}
    assert not leftovers, f"unsubstituted placeholders (new AWS references?): {leftovers}"
    return {**local, **moto.env()}
