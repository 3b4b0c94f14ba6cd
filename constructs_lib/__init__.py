"""Reusable L3 constructs for running MLflow on EKS: the public API for other CDK apps."""

from constructs_lib.artifact_store import MlflowArtifactStore
from constructs_lib.cluster import AutoModeCluster, ExistingClusterAttributes, ImportedCluster
from constructs_lib.database import MlflowDatabase
from constructs_lib.kubernetes import SUPPORTED_VERSIONS
from constructs_lib.network import ExistingVpc, MlflowVpc
from constructs_lib.tracking_server import MlflowTrackingServer

__all__ = [
    "SUPPORTED_VERSIONS",
    "AutoModeCluster",
    "ExistingClusterAttributes",
    "ExistingVpc",
    "ImportedCluster",
    "MlflowArtifactStore",
    "MlflowDatabase",
    "MlflowTrackingServer",
    "MlflowVpc",
]
