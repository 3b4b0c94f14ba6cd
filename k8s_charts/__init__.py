"""cdk8s charts for the MLflow workloads; the only package that imports cdk8s_plus_27."""

import os

# jsii prints an 11-line Node 20 end-of-life banner when its runtime starts, at the first import
# of a jsii package (aws_cdk, cdk8s); an app that imports this package first does not show it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from .auth import AuthProps, AuthSecretIds
from .deploy_check_chart import DeployCheckChart, DeployCheckChartProps
from .exposure import (
    AUTO_MODE_LOAD_BALANCER_CLASS,
    LB_CONTROLLER_LOAD_BALANCER_CLASS,
    LOAD_BALANCER_CLASSES,
    ExposureProps,
    ExternalLoadBalancerProps,
    InternalLoadBalancerProps,
)
from .gc_job import GcProps
from .job_runner import JobsProps
from .mlflow_chart import MlflowChart, MlflowChartProps
from .node_pool_chart import NodePoolChart, NodePoolChartProps
from .workload import MetricsScrapersProps, ResourceProps, ServiceMonitorProps, WorkloadProps

__all__ = [
    "AUTO_MODE_LOAD_BALANCER_CLASS",
    "LB_CONTROLLER_LOAD_BALANCER_CLASS",
    "LOAD_BALANCER_CLASSES",
    "AuthProps",
    "AuthSecretIds",
    "DeployCheckChart",
    "DeployCheckChartProps",
    "ExposureProps",
    "ExternalLoadBalancerProps",
    "GcProps",
    "InternalLoadBalancerProps",
    "JobsProps",
    "MetricsScrapersProps",
    "MlflowChart",
    "MlflowChartProps",
    "NodePoolChart",
    "NodePoolChartProps",
    "ResourceProps",
    "ServiceMonitorProps",
    "WorkloadProps",
]
