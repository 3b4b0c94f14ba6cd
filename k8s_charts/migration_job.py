"""The migration Job: `mlflow-launcher migrate` with the database's master login, once per
revision of what it migrates with (the image, the database and sign-in settings).

It alone may read the master login and take RDS snapshots (its own ServiceAccount and IAM
role); it makes the server's login and gives it MLflow's databases, then migrates both schemas
as that login under the schema lock. The server pods meanwhile wait in their init container
(`wait-schema`) with the server's login, which can change nothing else of the instance.

A Job's pod template cannot change, so each revision gets a Job of its own name; kubectl's
prune removes the previous one when the next manifest is applied.
"""

from __future__ import annotations

import cdk8s
import cdk8s_plus_27 as kplus
from constructs import Construct

from .contract import MIGRATION_JOB_CPU_MILLIS
from .hardening import (
    POD_SECURITY,
    Placement,
    container_resources,
    harden,
    launcher_container,
)
from .policy import dns, egress, egress_only, tcp

MIGRATION_RETRIES = 2
"""Another pod after a failed one (a database restarting, the lock held by a lost session):
`migrate` is idempotent and takes the schema lock, so a retry is safe."""
MIGRATION_DEADLINE_SECONDS = 3600
"""Every try together: each one waits at most for a snapshot (660 s), the lock (600 s) and the
migrations themselves; the server pods wait for the schemas longer than one try takes."""


def migration_labels(instance: str) -> dict[str, str]:
    """Not the server's selector labels: no Service, PDB or server policy selects it."""
    return {
        "app.kubernetes.io/name": "mlflow-migrate",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": "migrate",
    }


def add_migration_job(
    scope: Construct,
    *,
    name: str,
    image: str,
    instance: str,
    config_map: kplus.ConfigMap,
    service_account: kplus.IServiceAccount,
    environment: dict[str, str],
    db_port: int,
    placement: Placement,
) -> kplus.Job:
    """The Job, and its NetworkPolicy: DNS, the database, HTTPS (Secrets Manager, STS, the RDS
    API for snapshots); nothing inbound."""
    labels = migration_labels(instance)
    tmp = kplus.Volume.from_empty_dir(
        scope, "MigrationTmpVolume", "tmp", size_limit=cdk8s.Size.gibibytes(1)
    )
    job = kplus.Job(
        scope,
        "Migration",
        metadata=cdk8s.ApiObjectMetadata(name=name),
        backoff_limit=MIGRATION_RETRIES,
        active_deadline=cdk8s.Duration.seconds(MIGRATION_DEADLINE_SECONDS),
        # No ttlSecondsAfterFinished: the Job stays until the next revision's manifest
        # replaces it (the apply prunes it), so its log can always be read and a copy of it
        # run again after a password rotation (docs/operations.md, Who may do what).
        select=False,
        pod_metadata=cdk8s.ApiObjectMetadata(labels=labels),
        restart_policy=kplus.RestartPolicy.NEVER,
        service_account=service_account,
        automount_service_account_token=False,
        security_context=POD_SECURITY,
        volumes=[tmp],
        containers=[
            launcher_container(
                name="migrate",
                image=image,
                config_map=config_map,
                environment=environment,
                tmp=tmp,
                # MLflow's migrations in-process (Alembic, SQLAlchemy): about 250 MiB.
                resources=container_resources(cpu_millis=MIGRATION_JOB_CPU_MILLIS, memory_mib=512),
            )
        ],
    )
    harden(job, placement=placement)
    egress_only(
        scope,
        "MigrationNetworkPolicy",
        name=f"{instance}-migrate",
        pods={k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")},
        rules=[dns(), egress(tcp(db_port, 443))],
    )
    return job
