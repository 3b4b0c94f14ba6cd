"""MLflow's job runner: the one pod that runs GenAI jobs and the server's periodic tasks.

Scorer and judge runs, GenAI evaluation, issue detection, prompt optimization, online scoring
and trace archival are MLflow jobs (mlflow/server/jobs/, MLflow 3.17). MLflow's default engine
queues them in a SQLite file under each pod's /dev/shm and runs a runner in every server pod:
with several replicas a job is lost with its pod, a restarted pod re-queues every unfinished
job (the other pods' running ones too), and every pod runs the periodic tasks. Here instead:

- the API pods' workers record a job as a PENDING row of the backend's `jobs` table (MLflow's
  `executor` engine: submit_job stores the row and returns) and run nothing (MLFLOW_JOB_ROLE
  `submit`); any replica takes a job, and the row survives every pod;
- one runner pod (MLFLOW_JOB_ROLE `run`: `mlflow server` with execution on, which starts
  MLflow's executor runner) claims the rows, runs each job in a subprocess, and runs the
  periodic tasks. MLflow documents the executor engine for one runner without overlapping
  restarts (environment_variables.py, MLFLOW_SERVER_JOB_EXECUTION_ENGINE): hence one replica
  and the Recreate strategy. A runner that stops mid-job leaves the row RUNNING; the next one
  re-queues it at start (`_recover_orphaned_executor_jobs`).

The runner is not behind a Service or load balancer: nothing calls it but its own jobs (on
loopback). It has its own ServiceAccount (an IAM role of its own, WorkloadRoles.jobs) and
reaches DNS, the database and HTTPS: AWS APIs, and the LLM providers judges call.
"""

from __future__ import annotations

from typing import Annotated

import cdk8s
import cdk8s_plus_27 as kplus
from constructs import Construct
from pydantic import Field, StringConstraints

from .contract import CONTAINER_PORT, schema_wait_environment
from .hardening import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    TMP_PATH,
    Placement,
    container_resources,
    harden,
    launcher_container,
)
from .launcher_contract import launcher
from .model import Props
from .policy import dns, egress, egress_only, tcp
from .probes import answering_probe, startup_probe
from .rules import CpuQuantity, MemoryMib, Rule, cpu_millicores, set_while_off

TRACE_ARCHIVE_PREFIX = "trace-archive"
"""Under the artifact destination: the server's role may write there already, and no
experiment's artifacts can be called that (their folders are experiment IDs, or
`workspaces/<name>`)."""
# MLflow's own check of a retention (mlflow/utils/validation.py), bounded in length.
ArchivalAge = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,5}[mhd]$")]

RUNNER_MIB = 720
"""The runner pod without a job: its server, MLflow's runner and the periodic-task consumer
(704-714 MiB PSS measured by tests/integration/test_jobs.py, MLflow 3.17.2)."""
JOB_MIB = 180
"""Each job's own process (169-171 MiB measured there)."""
JUDGE_KINDS, ONLINE_KINDS, OPTIMIZE_JOBS = 3, 2, 2
"""MLflow's job kinds and how many of each run at once: scorer runs, evaluation and issue
detection at MLFLOW_SERVER_JUDGE_INVOKE_MAX_WORKERS each; online trace and session scoring at
MLFLOW_SERVER_ONLINE_SCORING_MAX_WORKERS each; prompt optimization at 2, fixed
(mlflow/genai/*/job.py)."""
MIN_RUNNER_MIB = RUNNER_MIB + (JUDGE_KINDS + ONLINE_KINDS + OPTIMIZE_JOBS) * JOB_MIB
"""One job of every kind at once."""


def jobs_per_kind(memory_mib: int) -> int:
    """How many jobs of each judge and online kind fit in the runner's memory at once, every
    kind busy (MLflow's own defaults, 10 and 5, would need over 6 GiB)."""
    spare = memory_mib - RUNNER_MIB - OPTIMIZE_JOBS * JOB_MIB
    return max(1, min(10, spare // ((JUDGE_KINDS + ONLINE_KINDS) * JOB_MIB)))


RUNNER_WORKERS = 1
"""The runner's server serves only its own jobs' calls (the AI gateway, for judges)."""
SCRATCH_GIB = 2
"""Job subprocesses' temporary files (evaluation results, prompt optimization's datasets)."""
SHUTDOWN_SECONDS = 30
"""On SIGTERM the runner marks the jobs it cannot finish for recovery (MLflow's runner joins
its workers for 5 s each); the next runner re-queues them."""


class JobsProps(Props):
    """MLflow's GenAI jobs: the config file's `jobs` section, and MlflowTrackingServer's `jobs`."""

    enabled: bool = Field(
        True,
        description=(
            "Run MLflow's jobs: scorer and judge runs, GenAI evaluation, issue detection, "
            "prompt optimization, online scoring and trace archival, in one job-runner pod. Off: "
            "those calls answer that job execution is not enabled, and online-scoring configs "
            "are saved but never run."
        ),
    )
    custom_scorers: bool = Field(
        False,
        description=(
            "Let jobs run `@scorer` functions, code a user sends with the request (MLflow "
            "refuses them unless this is on). The code runs in the job runner with its IAM role "
            "and network access: turn it on only if every user who may call the API may run "
            "code there."
        ),
    )
    trace_archival_after: ArchivalAge | None = Field(
        None,
        description=(
            "Move the span payloads (inputs, outputs, attributes) of traces older than this "
            "(e.g. 30d, 12h; unit m, h or d) out of the database to the artifact bucket "
            "(`trace-archive/` under the artifact prefix): "
            "MLflow's trace archival, run by the job runner every 5 minutes. Archived traces "
            "still open in the UI and the API, read back from S3. Default: none (spans stay in "
            "the database until their experiment is deleted and collected)."
        ),
    )
    cpu: CpuQuantity = Field("500m", description="The job runner's CPU request.")
    memory_mib: MemoryMib = Field(
        2048,
        description="The job runner's memory request and limit in MiB: its server, MLflow's "
        "runner and periodic-task processes (about 720 MiB), and 180 MiB for each job it runs "
        "at once. It sets how many jobs of each kind run at once: 1 at 2048, one more per "
        "900 MiB. At least 1980.",
    )

    RULES = (
        set_while_off(
            ("trace_archival_after", "custom_scorers"),
            "other jobs settings are set: the job runner runs them",
        ),
        Rule(
            "memory_mib",
            ("enabled", "memory_mib"),
            lambda j: (
                f"is {j.memory_mib}; the job runner needs at least {MIN_RUNNER_MIB} MiB: "
                f"{RUNNER_MIB} MiB for itself and {JOB_MIB} MiB for each of the "
                f"{JUDGE_KINDS + ONLINE_KINDS + OPTIMIZE_JOBS} jobs it may run at once (one of "
                "each kind)"
                if j.enabled and j.memory_mib < MIN_RUNNER_MIB
                else None
            ),
        ),
    )


def jobs_environment(jobs: JobsProps | None, artifacts_destination: str) -> dict[str, str]:
    """The API pods' part (in the ConfigMap): record jobs for the runner, or none at all; and
    trace archival, whose settings every pod reads (it answers reads of archived traces)."""
    if jobs is None or not jobs.enabled:
        return {}
    return launcher.render(
        {
            launcher.JOB_ROLE: "submit",
            # MLflow refuses custom scorers at submission (in the API pods) and the runner
            # deserializes them: both read it, so it is in the ConfigMap.
            launcher.ENABLE_CUSTOM_SCORERS: True if jobs.custom_scorers else None,
            launcher.TRACE_ARCHIVAL_RETENTION: jobs.trace_archival_after,
            launcher.TRACE_ARCHIVAL_LOCATION: (
                f"{artifacts_destination}/{TRACE_ARCHIVE_PREFIX}"
                if jobs.trace_archival_after
                else None
            ),
        }
    )


def add_job_runner(
    scope: Construct,
    *,
    jobs: JobsProps,
    image: str,
    instance: str,
    config_map: kplus.ConfigMap,
    service_account: kplus.IServiceAccount,
    migration_logs_command: str,
    db_port: int,
    placement: Placement,
) -> kplus.Deployment:
    """The runner's Deployment (one pod, Recreate) and its NetworkPolicy. Like a server pod,
    it starts once the migration Job (whose log `migration_logs_command` shows) has brought
    both schemas to head."""
    labels = {
        "app.kubernetes.io/name": "mlflow-jobs",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": "job-runner",
    }
    tmp = kplus.Volume.from_empty_dir(
        scope, "JobsTmpVolume", "tmp", size_limit=cdk8s.Size.gibibytes(SCRATCH_GIB)
    )
    cpu_millis = round(cpu_millicores(jobs.cpu))
    # Scratch plus room for logs.
    resources = container_resources(cpu_millis, jobs.memory_mib, ephemeral_gib=SCRATCH_GIB + 1)
    deployment = kplus.Deployment(
        scope,
        "JobRunner",
        metadata=cdk8s.ApiObjectMetadata(name=f"{instance}-jobs"),
        replicas=1,
        # Never two runners: the old pod is gone before the new one starts.
        strategy=kplus.DeploymentStrategy.recreate(),
        select=False,
        pod_metadata=cdk8s.ApiObjectMetadata(labels=labels),
        service_account=service_account,
        automount_service_account_token=False,
        security_context=POD_SECURITY,
        termination_grace_period=cdk8s.Duration.seconds(SHUTDOWN_SECONDS),
        volumes=[tmp],
        init_containers=[
            launcher_container(
                name="wait-schema",
                image=image,
                config_map=config_map,
                environment=schema_wait_environment(migration_logs_command),
                tmp=tmp,
                resources=resources,
            )
        ],
        containers=[
            kplus.ContainerProps(
                name="runner",
                image=image,
                image_pull_policy=kplus.ImagePullPolicy.IF_NOT_PRESENT,
                args=["serve"],
                env_from=[kplus.Env.from_config_map(config_map)],
                env_variables={
                    key: kplus.EnvValue.from_value(value)
                    for key, value in launcher.render(
                        {
                            launcher.JOB_ROLE: "run",
                            launcher.WORKERS: RUNNER_WORKERS,
                            launcher.JUDGE_INVOKE_MAX_WORKERS: jobs_per_kind(jobs.memory_mib),
                            launcher.ONLINE_SCORING_MAX_WORKERS: jobs_per_kind(jobs.memory_mib),
                        }
                    ).items()
                },
                security_context=CONTAINER_SECURITY,
                volume_mounts=[kplus.VolumeMount(path=TMP_PATH, volume=tmp)],
                resources=resources,
                # `ports`, not `port_number`: cdk8s-plus would add its own startup probe.
                ports=[kplus.ContainerPort(number=CONTAINER_PORT)],
                startup=startup_probe(workers=RUNNER_WORKERS, cpu_millis=cpu_millis),
                readiness=answering_probe(period_seconds=10),
                # mlflow server never watches the runner it starts: a dead one leaves /health
                # answering while jobs wait (mlflow_launcher/runner.py). A server that dies
                # takes its runner with it (MLflow's runner watches the server's process).
                liveness=kplus.Probe.from_command(
                    ["mlflow-launcher", "runner-alive"],
                    period_seconds=cdk8s.Duration.seconds(30),
                    timeout_seconds=cdk8s.Duration.seconds(10),
                    failure_threshold=3,
                ),
            )
        ],
    )
    deployment.select(kplus.LabelSelector.of(labels=labels))
    harden(deployment, placement=placement)
    # No ingress: nothing calls the runner (its jobs call its server on loopback, and the
    # kubelet's probes come from the node, which a NetworkPolicy does not restrict).
    egress_only(
        scope,
        "JobRunnerNetworkPolicy",
        name=f"{instance}-jobs",
        pods={k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")},
        rules=[dns(), egress(tcp(db_port, 443))],
    )
    return deployment
