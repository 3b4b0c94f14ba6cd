"""MlflowMonitoring: CloudWatch alarms for what should page a platform team, and a dashboard.

The database's alarms use its metrics in AWS/RDS. The load balancers are made by the cluster's
load balancer controller, so CloudFormation never sees their ARNs; their metrics are found from
the DNS name the Service reports. Per the Elastic Load Balancing docs, an NLB's DNS name is
`<name>-<id>.elb.<region>.<suffix>` and its CloudWatch dimension `net/<name>/<id>`. The
controller names a Service's NLB `k8s-<namespace>-<service>-<hash>`, with hyphens stripped from
the namespace and Service name (aws-load-balancer-controller, buildLoadBalancerName), so the
name holds exactly three hyphens and the id follows the fourth. EKS Auto Mode's controller is
assumed to name them alike; a wrong guess shows on day one, as the "no healthy target" alarm
then finds no data and goes to ALARM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from constructs import Construct

from .database import STORAGE_AUTOSCALING_FACTOR, MlflowDatabase
from .load_balancer_dimension import LoadBalancerDimension
from .monitoring_props import MonitoringProps

CPU_PERCENT = 80
"""Sustained for 15 minutes: past this, queries queue and the UI slows for everyone."""
CONNECTIONS_SHARE = 0.75
"""Of the instance's max_connections: the last quarter is what new pods and workers need."""
FREE_STORAGE_SHARE = 0.10
"""Of the initial allocation: RDS storage autoscaling acts at this level (after 5 minutes, at
most every 6 hours, up to its maximum); 30 minutes there means it did not or cannot."""
STORAGE_RUNWAY_DAYS = 30
"""The growth alarm fires when the database grows fast enough to fill its storage ceiling
(autoscaling's maximum) in this many days: traces' span rows grow fastest of all."""
GROWTH_HOURS = 24
"""Growth sustained this long: a day of heavy ingest, not one large batch."""
REPLICA_LAG_SECONDS = 60
"""Reads a minute behind the writes: users see runs they just logged as missing."""

# RDS's default max_connections: DBInstanceClassMemory / 12582880 (MySQL) and
# LEAST(DBInstanceClassMemory / 9531392, 5000) (PostgreSQL); RDS User Guide, "Maximum number of
# database connections". The class's memory is estimated from its name (t/m families: 4 GiB for
# medium, doubling per size; r families twice that); RDS keeps some of it for itself, so this
# overestimates slightly, which the 75 % share absorbs.
_BYTES_PER_CONNECTION = {"mysql": 12582880, "postgres": 9531392}
_POSTGRES_MAX_CONNECTIONS = 5000
_SIZE_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16}
_FAMILY_FACTOR = {"t": 1, "m": 1, "r": 2}


def instance_memory_gib(instance_type: str) -> int | None:
    """The memory of an RDS instance class (`t4g.medium`, `db.` prefix or not) in GiB, for the
    t, m and r families; None for others."""
    family, _, size = instance_type.removeprefix("db.").partition(".")
    factor = _FAMILY_FACTOR.get(family[:1])
    multiple = re.fullmatch(r"(\d+)xlarge", size)
    base = _SIZE_GIB.get(size) or (16 * int(multiple[1]) if multiple else None)
    return base * factor if base and factor else None


def default_max_connections(engine: str, instance_type: str) -> int | None:
    """RDS's default max_connections for this engine and class, or None if the class is not
    one `instance_memory_gib` knows."""
    memory = instance_memory_gib(instance_type)
    if memory is None:
        return None
    connections = memory * 2**30 // _BYTES_PER_CONNECTION[engine]
    return min(connections, _POSTGRES_MAX_CONNECTIONS) if engine == "postgres" else connections


class MlflowMonitoring(Construct):
    """CloudWatch alarms and a dashboard for one MLflow deployment.

    Alarms: database CPU, connections, free storage (not for an existing instance, whose
    allocation is unknown here), the read replica's lag, and per load balancer, unhealthy
    targets and no healthy target. Each alarm (and its recovery) goes to
    `alarm_topic` when given.

    Attributes: `alarms` (by name), `dashboard`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        database: MlflowDatabase,
        load_balancer_hosts: Mapping[str, str],
        alarm_topic: sns.ITopic | None = None,
        props: MonitoringProps | None = None,
    ) -> None:
        """
        :param database: the backend store (and its read replica, if any); its class sizes
            the connections alarm, its initial storage the free storage alarm (an existing
            instance has neither here: `props.max_database_connections` is then needed).
        :param load_balancer_hosts: load balancer kind -> DNS name (MlflowTrackingServer's
            `load_balancer_hosts`).
        :param alarm_topic: where alarms and recoveries are sent. Default: none (the alarms
            show in the console only).
        :param props: the config file's `monitoring` section; its `max_database_connections`
            is needed when the database class is not a t, m or r class or its parameter group
            changes the default (`alarm_topic(scope, props)` makes the topic it names; its
            `enabled` is the app's switch for making this construct at all).
            Default: `MonitoringProps()`.
        """
        super().__init__(scope, id)
        props = props or MonitoringProps()
        max_database_connections = props.max_database_connections
        self._topic = alarm_topic
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        instance = database.instance
        limit = max_database_connections or (
            default_max_connections(database.engine, database.instance_type)
            if database.instance_type
            else None
        )
        if limit is None:
            raise ValueError(
                "max_database_connections: "
                + (
                    f"the instance class {database.instance_type!r} is not a t, m or r class"
                    if database.instance_type
                    else "the database is an existing instance of unknown class"
                )
                + ", so its max_connections cannot be estimated; give it"
            )
        storage = database.allocated_storage_gib
        self._alarm(
            "DatabaseCpu",
            instance.metric_cpu_utilization(period=Duration.minutes(5)),
            CPU_PERCENT,
            periods=3,
            what=f"database CPU at or above {CPU_PERCENT}% for 15 minutes",
        )
        self._alarm(
            "DatabaseConnections",
            instance.metric_database_connections(period=Duration.minutes(5), statistic="Maximum"),
            int(limit * CONNECTIONS_SHARE),
            periods=2,
            what=f"database connections at or above {CONNECTIONS_SHARE:.0%} of max_connections "
            f"({limit}) for 10 minutes",
        )
        # An existing instance's storage is its owner's to size and watch: its allocation is
        # not known here.
        if storage is not None:
            self._alarm(
                "DatabaseFreeStorage",
                instance.metric_free_storage_space(period=Duration.minutes(5), statistic="Minimum"),
                int(storage * FREE_STORAGE_SHARE * 2**30),
                periods=6,
                below=True,
                what=f"database free storage at or below {FREE_STORAGE_SHARE:.0%} of "
                f"{storage} GiB for 30 minutes (storage autoscaling did not help)",
            )
            ceiling = storage * STORAGE_AUTOSCALING_FACTOR
            self._alarm(
                "DatabaseStorageGrowth",
                _storage_growth(instance),
                round(ceiling / STORAGE_RUNWAY_DAYS, 3),
                periods=GROWTH_HOURS,
                what=f"database storage growing by {ceiling / STORAGE_RUNWAY_DAYS:.2f} GiB a day "
                f"or more for {GROWTH_HOURS} hours: at that rate its ceiling of {ceiling} GiB "
                f"(storage autoscaling's maximum) fills within {STORAGE_RUNWAY_DAYS} days",
            )
        if database.read_replica is not None:
            self._alarm(
                "ReplicaLag",
                _replica_lag(database.read_replica),
                REPLICA_LAG_SECONDS,
                periods=2,
                what=f"read replica {REPLICA_LAG_SECONDS} s or more behind for 10 minutes",
            )
        dimensions = {
            kind: LoadBalancerDimension(
                self, f"{kind.capitalize()}Dimension", dns_name=host
            ).dimension
            for kind, host in load_balancer_hosts.items()
        }
        for kind, dimension in dimensions.items():
            self._load_balancer_alarms(kind, dimension)
        self.dashboard = self._dashboard(database, dimensions)

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        *,
        periods: int,
        what: str,
        below: bool = False,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD
            if below
            else cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=missing,
            alarm_description=f"MLflow: {what}. Runbook: docs/operations.md, Alarms.",
        )
        if self._topic is not None:
            alarm.add_alarm_action(actions.SnsAction(self._topic))
            alarm.add_ok_action(actions.SnsAction(self._topic))
        self.alarms[name] = alarm

    def _load_balancer_alarms(self, kind: str, dimension: str) -> None:
        title = kind.capitalize()
        self._alarm(
            f"{title}LoadBalancerUnhealthyTargets",
            _nlb_query("MAX(UnHealthyHostCount)", dimension, f"{kind} unhealthy"),
            1,
            periods=5,
            what=f"the {kind} load balancer has failed health checks for 5 minutes (a pod "
            "serves errors or is not ready)",
        )
        # Missing data counts: a load balancer that reports nothing has no target to report.
        self._alarm(
            f"{title}LoadBalancerNoHealthyTarget",
            _nlb_query("SUM(HealthyHostCount)", dimension, f"{kind} healthy"),
            0,
            periods=2,
            below=True,
            missing=cloudwatch.TreatMissingData.BREACHING,
            what=f"the {kind} load balancer has had no healthy target for 2 minutes: MLflow "
            "is unreachable through it",
        )

    def _dashboard(
        self, database: MlflowDatabase, load_balancer_dimensions: Mapping[str, str]
    ) -> cloudwatch.Dashboard:
        instance = database.instance
        period = Duration.minutes(5)
        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="MLflow alarms", alarms=list(self.alarms.values()), width=24
            )
        )
        database_graphs = [
            ("Database CPU (%)", [instance.metric_cpu_utilization(period=period)]),
            ("Database connections", [instance.metric_database_connections(period=period)]),
            ("Database free storage (bytes)", [instance.metric_free_storage_space(period=period)]),
            ("Database storage growth (GiB/day)", [_storage_growth(instance)]),
            (
                "Database latency (s)",
                [instance.metric("ReadLatency", period=period), instance.metric("WriteLatency")],
            ),
        ]
        if database.read_replica is not None:
            database_graphs.append(("Read replica lag (s)", [_replica_lag(database.read_replica)]))
        lb_graphs = [
            (
                f"{kind.capitalize()} load balancer targets",
                [
                    _nlb_query("SUM(HealthyHostCount)", dimension, "healthy"),
                    _nlb_query("MAX(UnHealthyHostCount)", dimension, "unhealthy"),
                ],
            )
            for kind, dimension in load_balancer_dimensions.items()
        ]
        dashboard.add_widgets(
            *(
                cloudwatch.GraphWidget(title=title, left=metrics, width=8)
                for title, metrics in database_graphs + lb_graphs
            )
        )
        return dashboard


def _storage_growth(instance: rds.IDatabaseInstance) -> cloudwatch.MathExpression:
    """GiB a day the used storage grows: the hourly fall of FreeStorageSpace (CloudWatch metric
    math's RATE: the change between the last two points, per second). An hour in which storage
    autoscaling adds space counts as negative growth."""
    free = instance.metric_free_storage_space(period=Duration.hours(1), statistic="Minimum")
    return cloudwatch.MathExpression(
        expression=f"-RATE(free) * 86400 / {2**30}",
        using_metrics={"free": free},
        label="storage growth (GiB/day)",
        period=Duration.hours(1),
    )


def _replica_lag(replica: rds.DatabaseInstanceReadReplica) -> cloudwatch.Metric:
    return replica.metric("ReplicaLag", period=Duration.minutes(5), statistic="Maximum")


def _nlb_query(aggregate: str, dimension: str, label: str) -> cloudwatch.MathExpression:
    """A Metrics Insights query over the load balancer's target groups (whose names the
    controller chooses too): one series per load balancer."""
    # A CloudWatch Metrics Insights query, not SQL sent to a database; the values are ours.
    query = (
        f'SELECT {aggregate} FROM SCHEMA("AWS/NetworkELB", LoadBalancer, TargetGroup) '  # noqa: S608
        f"WHERE LoadBalancer = '{dimension}'"
    )
    return cloudwatch.MathExpression(
        expression=query,
        label=label,
        period=Duration.minutes(1),
        using_metrics={},
    )
