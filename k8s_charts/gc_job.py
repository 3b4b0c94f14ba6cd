"""The garbage-collection CronJob: `mlflow-launcher gc`, which runs MLflow's `mlflow gc`.

MLflow marks deleted runs and experiments, and keeps their rows and artifacts until `mlflow gc`
removes them. The job runs the server's image with the server's settings and identity (the
database secret, the bucket through IRSA) and deletes artifacts through the in-cluster Service.
"""

from __future__ import annotations

import cdk8s
import cdk8s_plus_27 as kplus
from constructs import Construct
from pydantic import Field

from .contract import CONTAINER_PORT, GC_TIMEOUT_SECONDS, gc_environment
from .hardening import (
    POD_SECURITY,
    Placement,
    container_resources,
    harden,
    launcher_container,
)
from .model import Props
from .policy import dns, egress, egress_only, tcp
from .rules import CronSchedule, GcDuration

GC_RETRIES = 1
"""The Job's backoffLimit: a run that failed (the database restarting, say) gets one more try."""
GC_POD_START_SECONDS = 300
"""Room for each try's pod to be scheduled and pulled, and for the Job controller's retry delay."""
GC_DEADLINE_SECONDS = (GC_RETRIES + 1) * (GC_TIMEOUT_SECONDS + GC_POD_START_SECONDS)
"""The Job's activeDeadlineSeconds (1 h 50 min), for every try together: above each try's own
limit, so a try ends with the launcher's message first; this catches what the launcher cannot
(a pod that never starts). Without it a hung run would hold the CronJob forever: with
concurrencyPolicy Forbid every later run is skipped while one is active, silently."""


class GcProps(Props):
    """Permanent removal of what users deleted (MLflow only marks deleted runs): the config
    file's `gc` section, and MlflowTrackingServer's `gc`."""

    enabled: bool = Field(
        False,
        description=(
            "A CronJob runs `mlflow gc`: runs and experiments deleted longer ago than "
            "older_than go for good, with their artifacts. Off: deleted stays restorable."
        ),
    )
    schedule: CronSchedule = Field("17 3 * * *", description="Five-field cron expression (UTC).")
    older_than: GcDuration = Field(
        "30d",
        description="How long deleted things stay restorable (#d#h#m#s, e.g. 30d or 1d12h).",
    )


def add_gc_job(
    scope: Construct,
    *,
    gc: GcProps,
    image: str,
    instance: str,
    namespace: str,
    config_map: kplus.ConfigMap,
    service_account: kplus.IServiceAccount,
    server_labels: dict[str, str],
    db_port: int,
    placement: Placement,
) -> kplus.CronJob:
    """The CronJob, and a NetworkPolicy: DNS, the database, HTTPS (AWS APIs), the server."""
    minute, hour, day, month, week_day = gc.schedule.split()
    labels = {
        "app.kubernetes.io/name": "mlflow-gc",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": "gc",
    }
    tmp = kplus.Volume.from_empty_dir(
        scope, "GcTmpVolume", "tmp", size_limit=cdk8s.Size.gibibytes(1)
    )
    job = kplus.CronJob(
        scope,
        "Gc",
        metadata=cdk8s.ApiObjectMetadata(name=f"{instance}-gc"),
        schedule=cdk8s.Cron.schedule(
            minute=minute, hour=hour, day=day, month=month, week_day=week_day
        ),
        # One at a time: two would delete the same runs' artifacts under each other.
        concurrency_policy=kplus.ConcurrencyPolicy.FORBID,
        # cdk8s-plus defaults to 10 s: a controller busy or restarting at 03:17 would skip the
        # day. Within an hour it still runs.
        starting_deadline=cdk8s.Duration.hours(1),
        successful_jobs_retained=1,
        failed_jobs_retained=3,
        backoff_limit=GC_RETRIES,
        active_deadline=cdk8s.Duration.seconds(GC_DEADLINE_SECONDS),
        select=False,
        pod_metadata=cdk8s.ApiObjectMetadata(labels=labels),
        restart_policy=kplus.RestartPolicy.NEVER,
        service_account=service_account,
        automount_service_account_token=False,
        security_context=POD_SECURITY,
        volumes=[tmp],
        containers=[
            launcher_container(
                name="gc",
                image=image,
                config_map=config_map,
                environment=gc_environment(
                    older_than=gc.older_than,
                    tracking_uri=f"http://{instance}.{namespace}.svc.cluster.local",
                ),
                tmp=tmp,
                # MLflow and its store in-process, a page of deleted runs at a time.
                resources=container_resources(cpu_millis=100, memory_mib=512),
            )
        ],
    )
    harden(
        job,
        placement=placement,
        pod_spec="/spec/jobTemplate/spec/template/spec",
    )
    egress_only(
        scope,
        "GcNetworkPolicy",
        name=f"{instance}-gc",
        pods={k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")},
        rules=[
            dns(),
            egress(tcp(db_port, 443)),
            egress(tcp(CONTAINER_PORT), to_pods=server_labels),
        ],
    )
    return job
