"""The monitoring settings in one typed model (the config file's `monitoring` section and
MlflowMonitoring's props), and the alarm topic they name."""

from __future__ import annotations

from typing import Annotated

from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct
from pydantic import Field, StringConstraints

from ..k8s_charts.model import Props
from ..k8s_charts.rules import PARTITION_PATTERN, REGION_PATTERN, Rule, set_while_off

# An SNS standard topic (CloudWatch alarm actions cannot publish to FIFO topics).
SnsTopicArn = Annotated[
    str,
    StringConstraints(
        pattern=rf"^{PARTITION_PATTERN}:sns:{REGION_PATTERN}:\d{{12}}:[A-Za-z0-9_-]{{1,256}}$"
    ),
]
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class MonitoringProps(Props):
    """CloudWatch alarms and a dashboard: what should page a platform team. The config file's
    `monitoring` section; MlflowMonitoring's props and `alarm_topic`'s."""

    enabled: bool = Field(
        True,
        description=(
            "Alarms on the database's CPU, connections, free storage and replica lag and on the "
            "load balancers' targets, and a dashboard with them."
        ),
    )
    alarm_email: EmailAddress | None = Field(
        None,
        description=(
            "Send alarms and recoveries to this address through a new SNS topic (AWS e-mails a "
            "confirmation link first). Default: none, the alarms show in the console only."
        ),
    )
    alarm_topic_arn: SnsTopicArn | None = Field(
        None, description="Or to this existing SNS standard topic (e.g. your pager's)."
    )
    max_database_connections: int | None = Field(
        None,
        ge=1,
        description=(
            "The database's max_connections, for the connections alarm. Default: estimated "
            "from database.instance_type (t, m and r classes); required for other classes and "
            "for an existing instance (database.existing)."
        ),
    )

    RULES = (
        Rule(
            "alarm_topic_arn",
            ("alarm_email", "alarm_topic_arn"),
            lambda m: (
                "and alarm_email are both set: choose one"
                if m.alarm_email and m.alarm_topic_arn
                else None
            ),
        ),
        set_while_off(
            ("alarm_email", "alarm_topic_arn"),
            "an alarm destination is set: there are no alarms to send",
        ),
    )


def alarm_topic(scope: Construct, props: MonitoringProps) -> sns.ITopic | None:
    """The topic `props` sends alarms to, as child "AlarmTopic" of `scope`: the existing one
    of `alarm_topic_arn`, or a new one e-mailing `alarm_email`; None without either."""
    if props.alarm_topic_arn:
        return sns.Topic.from_topic_arn(scope, "AlarmTopic", props.alarm_topic_arn)
    if not props.alarm_email:
        return None
    # No KMS key: the messages are CloudWatch alarm notices (alarm name, metric,
    # threshold), no MLflow data, and a key would need a policy admitting CloudWatch.
    topic = sns.Topic(scope, "AlarmTopic", display_name="MLflow alarms", enforce_ssl=True)
    topic.add_subscription(subscriptions.EmailSubscription(props.alarm_email))
    return topic
