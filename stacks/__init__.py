"""The app's stacks: each composes constructs from constructs_lib and holds no logic of its own."""

from stacks.cluster_stack import ClusterStack
from stacks.data_stack import DESTROY_FLAG, DataStack
from stacks.deployment import Deployment, build_deployment
from stacks.mlflow_stack import MlflowStack
from stacks.network_stack import NetworkStack

__all__ = [
    "DESTROY_FLAG",
    "ClusterStack",
    "DataStack",
    "Deployment",
    "MlflowStack",
    "NetworkStack",
    "build_deployment",
]
