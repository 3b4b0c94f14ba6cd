"""The real MLflow client, run with .venv-image's python (where mlflow lives) by the tests.

    python mlflow_client_script.py write <tracking-uri> <host-header> <workdir>
    python mlflow_client_script.py read  <tracking-uri> <host-header> <run-id> <workdir>

Prints one JSON line. The Host header stands in for the name a Kubernetes Service or the load
balancer presents (both on default ports, so without ":port"); the server's --allowed-hosts
must accept it.
"""

import json
import sys
from pathlib import Path

import requests

MODEL_NAME = "wiring-model"
ARTIFACTS = {"a.txt": "alpha artifact\n", "sub/b.txt": "beta artifact ü\n"}
PARAMS = {"alpha": "0.5", "optimizer": "adam"}
METRICS = [0.9, 0.5, 0.25]


def _send_host(tracking_uri: str, host: str) -> None:
    """Requests to the tracking server carry `host`, as they would through its DNS name; other
    requests (presigned S3 URLs the server hands out) keep their own Host, as a client's do."""
    original = requests.Session.request

    def request(self, method, url, *args, headers=None, **kwargs):
        if str(url).startswith(tracking_uri):
            headers = {**(headers or {}), "Host": host}
        return original(self, method, url, *args, headers=headers, **kwargs)

    requests.Session.request = request


def write(client, workdir: Path) -> dict:
    import mlflow

    experiment_id = client.create_experiment("wiring")
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    for key, value in PARAMS.items():
        client.log_param(run_id, key, value)
    for step, value in enumerate(METRICS):
        client.log_metric(run_id, "loss", value, step=step)
    source = workdir / "out"
    for rel, text in ARTIFACTS.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(text, encoding="utf-8")
    client.log_artifacts(run_id, str(source), artifact_path="outputs")
    model_dir = workdir / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    client.log_artifacts(run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run_id)
    client.create_registered_model(MODEL_NAME)
    version = client.create_model_version(
        MODEL_NAME, source=f"{run.info.artifact_uri}/model", run_id=run_id
    )
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "version": version.version,
        "artifact_uri": client.get_run(run_id).info.artifact_uri,
        "mlflow": mlflow.__version__,
    }


def read(client, run_id: str, workdir: Path) -> dict:
    run = client.get_run(run_id)
    history = client.get_metric_history(run_id, "loss")
    local = Path(client.download_artifacts(run_id, "outputs", str(workdir)))
    files = {
        str(p.relative_to(local)): p.read_text(encoding="utf-8")
        for p in sorted(local.rglob("*"))
        if p.is_file()
    }
    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    return {
        "params": run.data.params,
        "metrics": [m.value for m in sorted(history, key=lambda m: m.step)],
        "status": run.info.status,
        "artifacts": files,
        "versions": [{"version": v.version, "run_id": v.run_id} for v in versions],
        "expected": {"params": PARAMS, "metrics": METRICS, "artifacts": ARTIFACTS},
    }


def main() -> None:
    mode, uri, host = sys.argv[1:4]
    _send_host(uri, host)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if mode == "write":
        report = write(client, Path(sys.argv[4]))
    else:
        report = read(client, sys.argv[4], Path(sys.argv[5]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
