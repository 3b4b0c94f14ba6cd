"""Reusable L3 constructs for running MLflow on EKS: the public API for other CDK apps."""

import os

# jsii prints an 11-line Node 20 end-of-life banner when its runtime starts, at the first import
# of a jsii package (aws_cdk, cdk8s); an app that imports this package first does not show it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# Props MlflowTrackingServer takes (`auth`, `workload`, `exposure`, `gc`, `jobs`), re-exported.
from ..k8s_charts import (
    AuthProps,
    ExposureProps,
    ExternalLoadBalancerProps,
    GcProps,
    InternalLoadBalancerProps,
    JobsProps,
    MetricsScrapersProps,
    ResourceProps,
    ServiceMonitorProps,
    WorkloadProps,
)
from .artifact_store import ArtifactProps, ExistingBucket, MlflowArtifactStore
from .auth import MlflowAuth
from .cluster import (
    AutoModeCluster,
    ClusterHandle,
    ExistingClusterAttributes,
    ImportedCluster,
)
from .database import MlflowDatabase
from .database_props import DatabaseProps, ExistingDatabase
from .kubernetes import SUPPORTED_VERSIONS
from .monitoring import MlflowMonitoring
from .monitoring_props import MonitoringProps
from .network import ExistingVpc, MlflowVpc
from .tracking_server import MlflowTrackingServer

__all__ = [
    "SUPPORTED_VERSIONS",
    "ArtifactProps",
    "AuthProps",
    "AutoModeCluster",
    "ClusterHandle",
    "DatabaseProps",
    "ExistingBucket",
    "ExistingClusterAttributes",
    "ExistingDatabase",
    "ExistingVpc",
    "ExposureProps",
    "ExternalLoadBalancerProps",
    "GcProps",
    "ImportedCluster",
    "InternalLoadBalancerProps",
    "JobsProps",
    "MetricsScrapersProps",
    "MlflowArtifactStore",
    "MlflowAuth",
    "MlflowDatabase",
    "MlflowMonitoring",
    "MlflowTrackingServer",
    "MlflowVpc",
    "MonitoringProps",
    "ResourceProps",
    "ServiceMonitorProps",
    "WorkloadProps",
]
