"""Alarms and a dashboard: on by default, with thresholds from the deployment's own sizes, the
load balancers found by the DNS names their Services report, and notices where configured."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from config import Settings
from mlflow_on_eks.constructs_lib import DatabaseProps, MlflowDatabase, MlflowMonitoring
from mlflow_on_eks.constructs_lib.monitoring import default_max_connections, instance_memory_gib
from mlflow_on_eks.constructs_lib.monitoring_props import MonitoringProps, alarm_topic
from mlflow_on_eks.k8s_charts.rules import InvalidProps
from tests.conftest import Synth, primary_database, resources_of
from tests.unit.test_constructs import NETWORK, bare_stack, template

SynthFn = Callable[[str], Synth]

# An NLB DNS name in the format the Elastic Load Balancing docs give (`<name>-<id>.elb.<region>.
# amazonaws.com`) with the name the load balancer controller makes for Service mlflow-internal
# in namespace mlflow (k8s-<namespace[:8]>-<service[:8]>-<hash[:10]>, hyphens stripped).
NLB_HOST = "k8s-mlflow-mlflowin-4f8a2b1c9d-0123456789abcdef.elb.eu-west-1.amazonaws.com"
NLB_DIMENSION = "net/k8s-mlflow-mlflowin-4f8a2b1c9d/0123456789abcdef"
DEFAULT_ALARMS = {
    "DatabaseCpu",
    "DatabaseConnections",
    "DatabaseFreeStorage",
    "DatabaseStorageGrowth",
    "InternalLoadBalancerUnhealthyTargets",
    "InternalLoadBalancerNoHealthyTarget",
}


def _alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    """The server stack's alarms by construct id (MonitoringDatabaseCpuXXXXXXXX: DatabaseCpu)."""
    alarms = resources_of(synth.templates["Mlflow"], "AWS::CloudWatch::Alarm")
    named = {}
    for logical_id, alarm in alarms.items():
        stem = logical_id.removeprefix("Monitoring")[:-8]  # CDK's 8-character hash
        named[stem] = alarm["Properties"]
    return named


def _evaluate(value: Any, attributes: dict[str, str]) -> Any:
    """CloudFormation's Fn::Join/Select/Split as it evaluates them at deploy time, with
    Fn::GetAtt of the logical IDs in `attributes` replaced by those values."""
    if not isinstance(value, dict):
        return value
    [(function, args)] = value.items()
    if function == "Fn::GetAtt":
        [key] = [k for k in attributes if args[0].startswith(k)]
        return attributes[key]
    if function == "Fn::Join":
        return args[0].join(str(_evaluate(item, attributes)) for item in args[1])
    if function == "Fn::Split":
        return _evaluate(args[1], attributes).split(args[0])
    if function == "Fn::Select":
        return _evaluate(args[1], attributes)[int(args[0])]
    raise AssertionError(f"unexpected function {function}")


def test_on_by_default_for_the_database_and_each_load_balancer(synth: SynthFn) -> None:
    assert Settings().monitoring.enabled is True
    s = synth("default")
    alarms = _alarms(s)
    assert set(alarms) == DEFAULT_ALARMS
    assert all("AlarmActions" not in a and "OKActions" not in a for a in alarms.values())
    dashboards = resources_of(s.templates["Mlflow"], "AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1
    assert "DashboardName" in s.templates["Mlflow"]["Outputs"]


def test_database_alarms_watch_the_primary_with_its_own_sizes(synth: SynthFn) -> None:
    s = synth("default")
    alarms = _alarms(s)
    primary_id, _ = primary_database(s.templates["Data"])
    for name in ("DatabaseCpu", "DatabaseConnections", "DatabaseFreeStorage"):
        [dimension] = alarms[name]["Dimensions"]
        assert dimension["Name"] == "DBInstanceIdentifier"
        assert primary_id in json.dumps(dimension["Value"])
    assert (alarms["DatabaseCpu"]["Threshold"], alarms["DatabaseCpu"]["EvaluationPeriods"]) == (
        80,
        3,
    )
    # t4g.medium, MySQL: 4 GiB / 12582880 bytes per connection = 341; three quarters of it.
    assert alarms["DatabaseConnections"]["Threshold"] == 255
    # 10 % of the 20 GiB allocated, where RDS storage autoscaling acts.
    assert alarms["DatabaseFreeStorage"]["Threshold"] == 2 * 2**30
    assert alarms["DatabaseFreeStorage"]["ComparisonOperator"] == "LessThanOrEqualToThreshold"


def test_storage_growth_that_would_fill_the_ceiling_within_a_month_alarms(synth: SynthFn) -> None:
    """Span rows grow fastest: a day of growth that would fill the 40 GiB ceiling (twice the
    20 GiB allocated, RDS storage autoscaling's maximum) in 30 days alarms, long before the
    free storage alarm could."""
    s = synth("default")
    growth = _alarms(s)["DatabaseStorageGrowth"]
    [instance] = resources_of(s.templates["Data"], "AWS::RDS::DBInstance").values()
    ceiling = instance["Properties"]["MaxAllocatedStorage"]
    assert ceiling == 2 * int(instance["Properties"]["AllocatedStorage"]) == 40
    assert growth["Threshold"] == round(ceiling / 30, 3)
    assert growth["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert growth["EvaluationPeriods"] == 24 and growth["TreatMissingData"] == "notBreaching"
    [expression, free] = growth["Metrics"]
    assert expression["Expression"] == f"-RATE(free) * 86400 / {2**30}"
    assert expression["ReturnData"] is True
    stat = free["MetricStat"]
    assert free["Id"] == "free" and free["ReturnData"] is False
    assert stat["Metric"]["MetricName"] == "FreeStorageSpace" and stat["Period"] == 3600
    assert stat["Stat"] == "Minimum"
    # Hourly points, a day of them: within CloudWatch's bound on what an alarm evaluates.
    assert growth["EvaluationPeriods"] * stat["Period"] <= 7 * 86400
    # A used storage growing by G GiB/day makes FreeStorageSpace fall G * 2**30 / 86400 bytes a
    # second: RATE(free) is that, negated, and the expression turns it back into G.
    rate = -1.5 * 2**30 / 86400
    assert eval(expression["Expression"].replace("RATE(free)", repr(rate))) == 1.5  # noqa: S307


@pytest.mark.parametrize(
    ("instance_type", "gib"),
    [
        ("t4g.micro", 1),
        ("t4g.medium", 4),
        ("db.t3.large", 8),
        ("m7g.large", 8),
        ("m7g.2xlarge", 32),
        ("r7g.large", 16),
        ("r6g.16xlarge", 512),
        ("x2g.large", None),
        ("m6i.metal", None),
    ],
)
def test_instance_memory_follows_the_class_name(instance_type: str, gib: int | None) -> None:
    assert instance_memory_gib(instance_type) == gib


def test_max_connections_follow_rds_defaults() -> None:
    assert default_max_connections("mysql", "t4g.medium") == 341
    assert default_max_connections("postgres", "t4g.medium") == 450
    assert default_max_connections("postgres", "r6g.16xlarge") == 5000  # RDS's cap
    assert default_max_connections("mysql", "x2g.large") is None


def test_load_balancer_alarms_find_the_nlb_by_its_dns_name(synth: SynthFn) -> None:
    """The dimension is what ELB answers for the DNS name the Service got (the handler's
    tests below), not a cut of the name by hyphen positions."""
    result = synth("default")
    alarms = _alarms(result)
    [(lookup_id, lookup)] = resources_of(
        result.templates["Mlflow"], "Custom::LoadBalancerDimension"
    ).items()
    host_read = lookup["Properties"]["DnsName"]["Fn::GetAtt"]
    assert host_read[0].startswith("TrackingServerInternalLoadBalancerHost")
    assert host_read[1] == "Value"
    answer = {lookup_id: NLB_DIMENSION}
    for name, aggregate in (
        ("InternalLoadBalancerUnhealthyTargets", "MAX(UnHealthyHostCount)"),
        ("InternalLoadBalancerNoHealthyTarget", "SUM(HealthyHostCount)"),
    ):
        [query] = alarms[name]["Metrics"]
        assert query["Period"] == 60
        assert _evaluate(query["Expression"], answer) == (
            f'SELECT {aggregate} FROM SCHEMA("AWS/NetworkELB", LoadBalancer, TargetGroup) '  # noqa: S608
            f"WHERE LoadBalancer = '{NLB_DIMENSION}'"
        )
    # A load balancer that reports nothing has nothing healthy behind it (or a wrong name).
    assert alarms["InternalLoadBalancerNoHealthyTarget"]["TreatMissingData"] == "breaching"
    assert alarms["InternalLoadBalancerUnhealthyTargets"]["TreatMissingData"] == "notBreaching"


SUBNET_CIDRS = ("10.0.32.0/19", "10.0.0.0/24")
"""The load balancers' subnets, one per AZ."""


def _elb_with(*names: str) -> tuple[Any, dict[str, str]]:
    """A moto ELB with NLBs of these names: the client and name -> (DNS name, ARN)."""
    import boto3

    ec2 = boto3.client("ec2", region_name="eu-west-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"eu-west-1{zone}")["Subnet"][
            "SubnetId"
        ]
        for cidr, zone in zip(SUBNET_CIDRS, "ab", strict=True)
    ]
    elb = boto3.client("elbv2", region_name="eu-west-1")
    made = {}
    for name in names:
        [balancer] = elb.create_load_balancer(
            Name=name, Subnets=subnets, Type="network", Scheme="internal"
        )["LoadBalancers"]
        made[name] = (balancer["DNSName"], balancer["LoadBalancerArn"])
    return elb, made


def _event(kind: str, dns_name: str, physical_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"RequestType": kind, "ResourceProperties": {"DnsName": dns_name}}
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


def test_the_lookup_answers_any_name_shape_and_fails_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto import mock_aws

    from mlflow_on_eks.constructs_lib import load_balancer_handler as handler

    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(variable, "testing")
    with mock_aws():
        # The controller's shape, a name of the user's with more hyphens, and a decoy.
        elb, made = _elb_with("k8s-mlflow-mlflowin-4f8a2b1c9d", "team-a-ml-flow-lb", "other")
        for name, (dns_name, arn) in made.items():
            if name == "other":
                continue
            expected = arn.split(":loadbalancer/")[1]
            assert expected.split("/")[1] == name  # (moto says app/ where ELB says net/)
            status, physical, data, _ = handler.handle(_event("Create", dns_name.upper()), elb)
            answer = {"Dimension": expected, "Arn": arn}
            assert (status, physical, data) == ("SUCCESS", expected, answer)
            status, _, data, _ = handler.handle(_event("Update", dns_name, expected), elb)
            assert data == answer
        # Asked for, the subnets' CIDRs too (where an ALB's requests to its targets come from).
        dns_name, arn = made["team-a-ml-flow-lb"]
        event = _event("Create", dns_name)
        event["ResourceProperties"]["Subnets"] = "true"
        ec2 = boto3.client("ec2", region_name="eu-west-1")
        status, _, data, _ = handler.handle(event, elb, ec2)
        assert status == "SUCCESS" and data["Arn"] == arn
        assert data["SubnetCidrs"] == ",".join(sorted(SUBNET_CIDRS))
        gone = "k8s-mlflow-mlflowin-0000000000-ffffffffffffffff.elb.eu-west-1.amazonaws.com"
        status, _, data, reason = handler.handle(_event("Create", gone), elb)
        assert status == "FAILED" and data == {}
        assert f"no load balancer of this account and region has the DNS name {gone}" in reason
        # Deleting the lookup leaves the load balancer alone: nothing to call.
        assert handler.handle(_event("Delete", gone, "net/x/y"), None)[0] == "SUCCESS"


def test_the_lookup_function_is_inline_small_and_may_only_describe(synth: SynthFn) -> None:
    from mlflow_on_eks.constructs_lib.load_balancer_dimension import _HANDLER

    assert len(_HANDLER.read_bytes()) < 4096  # Lambda's limit for inline code
    mlflow = synth("test-maximal").templates["Mlflow"]
    # One function for the three load balancers (internal, external, the sign-in ALB).
    [function] = [
        f
        for k, f in resources_of(mlflow, "AWS::Lambda::Function").items()
        if k.startswith("LoadBalancerDimensionLookup")
    ]
    assert function["Properties"]["Code"]["ZipFile"] == _HANDLER.read_text()
    assert len(resources_of(mlflow, "Custom::LoadBalancerDimension")) == 3
    [policy] = [
        p
        for k, p in resources_of(mlflow, "AWS::IAM::Policy").items()
        if k.startswith("LoadBalancerDimensionLookupRole")
    ]
    actions = sorted(
        a for st in policy["Properties"]["PolicyDocument"]["Statement"] for a in st["Action"]
    )
    assert actions == [
        "ec2:DescribeSubnets",  # the sign-in ALB's subnets (test-maximal has one)
        "elasticloadbalancing:DescribeLoadBalancers",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]


def test_replica_lag_and_notices_to_an_existing_topic(synth: SynthFn) -> None:
    s = synth("test-maximal")
    alarms = _alarms(s)
    assert set(alarms) == DEFAULT_ALARMS | {
        "ReplicaLag",
        "ExternalLoadBalancerUnhealthyTargets",
        "ExternalLoadBalancerNoHealthyTarget",
    }
    primary_id, _ = primary_database(s.templates["Data"])
    [lag] = alarms["ReplicaLag"]["Dimensions"]
    assert "ReadReplica" in json.dumps(lag["Value"]) and primary_id not in json.dumps(lag)
    assert alarms["ReplicaLag"]["Threshold"] == 60
    assert alarms["DatabaseConnections"]["Threshold"] == 450  # 75 % of the configured 600
    topic = s.settings.monitoring.alarm_topic_arn
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
    assert not resources_of(s.templates["Mlflow"], "AWS::SNS::Topic")


def test_notices_by_email_through_a_new_topic_that_refuses_plain_http(synth: SynthFn) -> None:
    s = synth("existing-cluster")
    template = s.templates["Mlflow"]
    [(topic_id, _)] = resources_of(template, "AWS::SNS::Topic").items()
    [subscription] = resources_of(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == s.settings.monitoring.alarm_email
    [policy] = resources_of(template, "AWS::SNS::TopicPolicy").values()
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    for alarm in _alarms(s).values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_off_leaves_no_alarm(synth: SynthFn) -> None:
    s = synth("test-minimal")
    assert not resources_of(s.templates["Mlflow"], "AWS::CloudWatch::Alarm")
    assert not resources_of(s.templates["Mlflow"], "AWS::CloudWatch::Dashboard")
    assert "DashboardName" not in s.templates["Mlflow"]["Outputs"]


def test_the_configs_section_is_the_constructs_props(tmp_path: Path) -> None:
    """MonitoringProps refuses what the config file refuses, and names the topic the same."""
    topic = "arn:aws:sns:eu-west-1:111122223333:pager"
    with pytest.raises(InvalidProps, match="alarm_topic_arn: and alarm_email are both set"):
        MonitoringProps(alarm_email="team@example.com", alarm_topic_arn=topic)
    stack = bare_stack(tmp_path)
    assert alarm_topic(stack, MonitoringProps()) is None
    alarm_topic(stack, MonitoringProps(alarm_email="team@example.com"))
    [(key, subscription)] = resources_of(template(stack), "AWS::SNS::Subscription").items()
    assert key.startswith("AlarmTopic")  # the stack's child, as the app's topic always was
    assert subscription["Properties"]["Endpoint"] == "team@example.com"


def test_monitoring_alone_in_another_app(tmp_path: Path) -> None:
    stack = bare_stack(tmp_path)
    vpc = NETWORK.import_into(stack)
    database = MlflowDatabase(
        stack, "Database", vpc=vpc, props=DatabaseProps(instance_type="x2g.large")
    )
    with pytest.raises(ValueError, match="max_database_connections: the instance class"):
        MlflowMonitoring(stack, "Unsized", database=database, load_balancer_hosts={})
    monitoring = MlflowMonitoring(
        stack,
        "Monitoring",
        database=database,
        load_balancer_hosts={"internal": NLB_HOST},
        props=MonitoringProps(max_database_connections=1000),
    )
    assert monitoring.alarms["DatabaseConnections"].node.default_child is not None
    alarms = resources_of(template(stack), "AWS::CloudWatch::Alarm").values()
    props = [a["Properties"] for a in alarms]
    # The load balancers' alarms (Metrics Insights queries; the storage growth's is math).
    expressions = [
        p["Metrics"][0]["Expression"] for p in props if "load balancer" in p["AlarmDescription"]
    ]
    resources = template(stack)
    [(lookup_id, lookup)] = resources_of(resources, "Custom::LoadBalancerDimension").items()
    assert lookup["Properties"]["DnsName"] == NLB_HOST
    answer = {lookup_id: NLB_DIMENSION}
    assert expressions and all(
        f"LoadBalancer = '{NLB_DIMENSION}'" in _evaluate(e, answer) for e in expressions
    )
