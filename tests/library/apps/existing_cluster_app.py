"""MLflow on an existing EKS cluster and VPC, from the mlflow-on-eks wheel."""

import aws_cdk as cdk

from mlflow_on_eks.constructs_lib import (
    AuthProps,
    ExistingClusterAttributes,
    ExistingVpc,
    ImportedCluster,
    MlflowArtifactStore,
    MlflowAuth,
    MlflowDatabase,
    MlflowTrackingServer,
    WorkloadProps,
)

app = cdk.App()
env = cdk.Environment(account="111122223333", region="eu-west-1")
data = cdk.Stack(app, "MlflowData", env=env, termination_protection=True)
server = cdk.Stack(app, "MlflowServer", env=env)

# Your cluster's network and identity (aws eks describe-cluster --name platform).
network = ExistingVpc(
    vpc_id="vpc-0123456789abcdef0",
    availability_zones=("eu-west-1a", "eu-west-1b"),
    private_subnet_ids=("subnet-0123456789abcdef0", "subnet-0123456789abcdef1"),
)
cluster = ImportedCluster(
    server,
    "Cluster",
    attributes=ExistingClusterAttributes(
        cluster_name="platform",
        oidc_provider_arn=(
            "arn:aws:iam::111122223333:oidc-provider/"
            "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
        ),
        security_group_id="sg-0123456789abcdef0",
        kubernetes_version="1.36",
        # Only MLflow's pods carry it (security groups for pods); the database admits it alone.
        database_client_security_group_id="sg-0123456789abcdef1",
    ),
    vpc=network.import_into(server),
)

# Stateful resources in their own stack; the server stack holds nothing that keeps data.
# The sign-in secrets go with the data: the users they open live in the database.
database = MlflowDatabase(data, "Database", vpc=network.import_into(data))
artifacts = MlflowArtifactStore(data, "Artifacts")
sign_in = AuthProps(default_permission="READ")
secrets = MlflowAuth(data, "Auth", props=sign_in)

MlflowTrackingServer(
    server,
    "Mlflow",
    cluster=cluster.handle,
    database=database,
    artifact_store=artifacts,
    auth=sign_in,
    auth_secrets=secrets,
    workload=WorkloadProps(replicas=3, allowed_hosts=("mlflow.example.com",)),
)

app.synth()
