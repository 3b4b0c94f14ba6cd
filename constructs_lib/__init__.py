"""Reusable L3 constructs for running MLflow on EKS: the public API for other CDK apps."""

import os

# jsii prints an 11-line Node 20 end-of-life banner when its runtime starts, at the first import
# of a jsii package (aws_cdk, cdk8s); an app that imports this package first does not show it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from mlflow_on_eks.constructs_lib.artifact_store import MlflowArtifactStore
from mlflow_on_eks.constructs_lib.auth import MlflowAuth
from mlflow_on_eks.constructs_lib.cluster import (
    AutoModeCluster,
    ExistingClusterAttributes,
    ImportedCluster,
)
from mlflow_on_eks.constructs_lib.database import MlflowDatabase
from mlflow_on_eks.constructs_lib.kubernetes import SUPPORTED_VERSIONS
from mlflow_on_eks.constructs_lib.monitoring import MlflowMonitoring
from mlflow_on_eks.constructs_lib.network import ExistingVpc, MlflowVpc
from mlflow_on_eks.constructs_lib.tracking_server import MlflowTrackingServer

# Props MlflowTrackingServer takes (`workload`, `external_load_balancer`, `gc`), re-exported.
from mlflow_on_eks.k8s_charts import (
    ExternalLoadBalancerProps,
    GcProps,
    MetricsScrapersProps,
    ResourceProps,
    WorkloadProps,
)

__all__ = [
    "SUPPORTED_VERSIONS",
    "AutoModeCluster",
    "ExistingClusterAttributes",
    "ExistingVpc",
    "ExternalLoadBalancerProps",
    "GcProps",
    "ImportedCluster",
    "MetricsScrapersProps",
    "MlflowArtifactStore",
    "MlflowAuth",
    "MlflowDatabase",
    "MlflowMonitoring",
    "MlflowTrackingServer",
    "MlflowVpc",
    "ResourceProps",
    "WorkloadProps",
]
