"""An opt-in Prometheus Operator ServiceMonitor for the server pods' `metrics` container.

The pods carry the annotation convention (`prometheus.io/*`) either way. A Prometheus the
operator runs finds its targets through ServiceMonitors instead: they select Services by label
and name a Service port, and Prometheus scrapes the addresses behind it (the pods, one target
each, as with the annotations). So, when asked: a headless Service for the metrics port and a
ServiceMonitor that selects it alone.

The schema is the operator's CRD (monitoring.coreos.com_servicemonitors.yaml, v1); the
compliance tests validate the manifest against it.
"""

from __future__ import annotations

import cdk8s
from constructs import Construct

from .launcher_contract import launcher
from .workload import SCRAPE_TIMEOUT_SECONDS, ServiceMonitorProps

API_VERSION = "monitoring.coreos.com/v1"
PORT_NAME = "metrics"
"""The metrics Service's port name, which the ServiceMonitor's endpoint names."""
COMPONENT = "metrics"
"""app.kubernetes.io/component of the metrics Service: the ServiceMonitor selects by it, so it
never picks the server's own Services (same name and instance labels, another port)."""


def metrics_service_labels(selector: dict[str, str]) -> dict[str, str]:
    """The labels the metrics Service carries and the ServiceMonitor selects."""
    return {**selector, "app.kubernetes.io/component": COMPONENT}


def add_service_monitor(
    scope: Construct,
    *,
    name: str,
    selector: dict[str, str],
    settings: ServiceMonitorProps,
) -> cdk8s.ApiObject:
    """The ServiceMonitor `name`, scraping the Service labelled `metrics_service_labels` on its
    `metrics` port. Its job label is the instance's name (`up{job="mlflow"}`), as in the
    operations guide's scrape config for the annotations."""
    monitor = cdk8s.ApiObject(
        scope,
        "ServiceMonitor",
        api_version=API_VERSION,
        kind="ServiceMonitor",
        metadata=cdk8s.ApiObjectMetadata(name=name, labels=dict(settings.labels)),
    )
    monitor.add_json_patch(
        cdk8s.JsonPatch.add(
            "/spec",
            {
                "selector": {"matchLabels": metrics_service_labels(selector)},
                "jobLabel": "app.kubernetes.io/instance",
                "endpoints": [
                    {
                        "port": PORT_NAME,
                        "path": launcher.METRICS_PATH,
                        "scheme": "http",
                        "interval": f"{settings.interval_seconds}s",
                        "scrapeTimeout": f"{SCRAPE_TIMEOUT_SECONDS}s",
                    }
                ],
            },
        )
    )
    return monitor
