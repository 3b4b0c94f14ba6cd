"""The EKS cluster MLflow runs on: a new Auto Mode cluster, or an existing one imported.

Both shapes give the tracking server one `ClusterHandle`: the cluster (with a kubectl provider,
so manifests can be applied), its OIDC provider (IRSA), the group the database admits, and
where MLflow's pods run. `handle_in(scope, vpc)` gets it from either, so a stack that takes
"a new cluster or an existing one" does not ask which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cdk8s
from aws_cdk import Annotations, DefaultStackSynthesizer, Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from ..k8s_charts import (
    AUTO_MODE_LOAD_BALANCER_CLASS,
    LOAD_BALANCER_CLASSES,
    JobsProps,
    NodePoolChart,
    NodePoolChartProps,
    WorkloadProps,
)
from ..k8s_charts.exposure import LoadBalancerController
from ..k8s_charts.node_pool_chart import (
    DATABASE_CLIENT_LABEL,
    ephemeral_problem,
    node_ephemeral_gib,
    node_pool_limits,
)
from .acknowledgements import (
    acknowledge,
    acknowledge_managed_policies,
    acknowledge_wildcard_resources,
)
from .kubernetes import (
    DEFAULT_VERSION,
    kubectl_layer,
    kubernetes_version,
    release,
)


@dataclass(frozen=True)
class ClusterHandle:
    """What the tracking server needs of the cluster it runs on, however the cluster came to
    be: `AutoModeCluster.handle`, `ImportedCluster.handle`, or one you build for a cluster of
    your own."""

    cluster: eks.ICluster
    """The cluster, with a kubectl provider that can apply manifests."""
    oidc_provider: iam.IOpenIdConnectProvider
    """The cluster's IAM OIDC provider: each workload's IRSA role trusts it."""
    database_client_security_group: ec2.ISecurityGroup
    """The one group the database admits, on its port. Give one only the server's pods carry
    (AutoModeCluster's, or yours through security groups for pods); the cluster security group
    would admit every pod of the cluster."""
    node_pool: str | None = None
    """Run MLflow's pods only on this Auto Mode/Karpenter NodePool, tolerating its
    NodePoolChart taint. Default: any node of the workload's architecture."""
    node_labels: Mapping[str, str] = field(default_factory=dict)
    """The pods that open the database run only on nodes with these labels as well
    (AutoModeCluster's: nodes that carry its database client group). Default: none."""
    admin_role_arns: tuple[str, ...] = ()
    """IAM roles with cluster-admin access (the kubeconfig output names the first)."""
    load_balancer_class: str = AUTO_MODE_LOAD_BALANCER_CLASS
    """The Services' loadBalancerClass: the controller that provisions load balancers on this
    cluster. Default: EKS Auto Mode's (`eks.amazonaws.com/nlb`)."""


WORKLOAD_NODE_POOL = "mlflow"
"""Name of the NodeClass and NodePool a new cluster runs the server on."""

_LAMBDA_POLICIES = (
    "service-role/AWSLambdaBasicExecutionRole",
    "service-role/AWSLambdaVPCAccessExecutionRole",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonElasticContainerRegistryPublicReadOnly",
)
"""AWS managed policies aws_eks_v2's kubectl provider attaches to its Lambda roles."""


class AutoModeCluster(Construct):
    """A new EKS Auto Mode cluster in the given VPC's private subnets.

    Auto Mode runs the nodes, the load balancer controller, storage and networking add-ons, so
    the cluster needs no node groups or Helm charts. Kubernetes secrets are envelope-encrypted
    with a new KMS key (rotated yearly); control-plane logs go to CloudWatch.

    Who may use kubectl: CloudFormation's execution role (which creates the cluster) and the
    kubectl handler are EKS's own admins, and no person can assume either. So cluster-admin
    access entries go to `admin_role_arns`, or, by default, to the CDK bootstrap deploy role,
    which whoever can `cdk deploy` this app may assume (`aws eks update-kubeconfig --role-arn`).

    The server's pods get a node pool of their own (`node_pool_name`): the built-in ones are
    amd64-only and do not enforce NetworkPolicy. Only the database's clients run there: the pool
    is tainted (the charts' pods tolerate it), and its nodes alone carry
    `database_client_security_group`, the one group the database is to admit. The cluster
    security group, which every node of every pool and the kubectl handler carry, then reaches
    the database no more. Pods that open the database select `node_labels`: nodes that carry
    this very group, so a pod never starts on an older node the database does not admit.

    Attributes: `cluster` (id "Resource"), `oidc_provider`, `security_group` (the cluster
    security group), `database_client_security_group`, `secrets_key`, `admin_role_arns` (tokens
    allowed), `node_pool_name`, `node_labels`, `node_pool_manifest`, `metrics_server` (None
    unless requested).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        version: str = DEFAULT_VERSION,
        admin_role_arns: tuple[str, ...] = (),
        endpoint_access: eks.EndpointAccess = eks.EndpointAccess.PUBLIC_AND_PRIVATE,
        workload: WorkloadProps | None = None,
        jobs: JobsProps | None = None,
        network_policy: bool = True,
        metrics_server: bool = True,
    ) -> None:
        """
        :param vpc: VPC whose private subnets hold the nodes.
        :param version: Kubernetes minor version, e.g. "1.36". Default: the newest supported.
        :param admin_role_arns: IAM roles granted cluster-admin through EKS access entries.
            Default: the CDK bootstrap deploy role (needs the DefaultStackSynthesizer).
        :param endpoint_access: the API endpoint; the kubectl handler runs in the VPC either
            way. Default: public (IAM-authenticated, any source) and private.
        :param workload: the server's settings (the config file's `server` section), which
            size its node pool: the nodes' architecture, a node volume that holds a server
            pod's scratch space, and the pool's ceiling (`node_pool_limits`: four times the pods at
            the autoscaler's maximum, plus room for the Jobs). Default: `WorkloadProps()`.
        :param jobs: the job runner's settings (the config file's `jobs` section): its pod
            counts in the pool's ceiling. Default: `JobsProps()`, on.
        :param network_policy: enforce NetworkPolicy on the server's node pool. Default: true.
        :param metrics_server: install the EKS metrics-server add-on, which CPU autoscaling
            needs (Auto Mode ships none), at the build pinned beside `version`
            (`kubernetes.release(version).metrics_server`). Default: true.
        """
        super().__init__(scope, id)
        workload = workload or WorkloadProps()
        jobs = jobs or JobsProps()
        problem = ephemeral_problem(workload)
        if problem:
            raise ValueError(f"workload: {problem}")
        self.secrets_key = kms.Key(
            self, "SecretsKey", enable_key_rotation=True, description="EKS secrets encryption"
        )
        self.cluster = eks.Cluster(
            self,
            "Resource",
            version=kubernetes_version(version),
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
            default_capacity_type=eks.DefaultCapacityType.AUTOMODE,
            compute=eks.ComputeConfig(node_pools=["system", "general-purpose"]),
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=kubectl_layer(self, "KubectlLayer", version)
            ),
            secrets_encryption_key=self.secrets_key,
            endpoint_access=endpoint_access,
            cluster_logging=[
                eks.ClusterLoggingTypes.API,
                eks.ClusterLoggingTypes.AUDIT,
                eks.ClusterLoggingTypes.AUTHENTICATOR,
            ],
        )
        self.admin_role_arns = admin_role_arns or (_deploy_role_arn(self),)
        for index, arn in enumerate(self.admin_role_arns):
            self.cluster.grant_cluster_admin(f"Admin{index}", arn)
        self.metrics_server: eks.Addon | None = None
        if metrics_server:
            self.metrics_server = eks.Addon(
                self,
                "MetricsServer",
                cluster=self.cluster,
                addon_name="metrics-server",
                addon_version=release(version).metrics_server,
            )
        self.node_pool_name = WORKLOAD_NODE_POOL
        self.database_client_security_group = _database_client_group(self, vpc)
        client_group_id = self.database_client_security_group.security_group_id
        self.node_labels = {DATABASE_CLIENT_LABEL: client_group_id}
        self.node_pool_manifest = eks.KubernetesManifest(
            self,
            "WorkloadNodePool",
            cluster=self.cluster,
            manifest=NodePoolChart(
                cdk8s.App(),
                "NodePool",
                props=NodePoolChartProps(
                    name=WORKLOAD_NODE_POOL,
                    node_role_name=self._node_role().role_name,
                    subnet_ids=tuple(s.subnet_id for s in vpc.private_subnets),
                    security_group_ids=(self.cluster.cluster_security_group_id,),
                    database_client_security_group_id=client_group_id,
                    architecture=workload.architecture,
                    network_policy=network_policy,
                    ephemeral_storage_gib=node_ephemeral_gib(workload),
                    limits=node_pool_limits(workload, jobs),
                ),
            ).to_json(),
            # `kubectl apply` on create: the amazon-vpc-cni ConfigMap may exist already.
            overwrite=True,
        )
        # The native IAM OIDC provider resource (no custom resource) for IRSA trust.
        self.oidc_provider: iam.IOpenIdConnectProvider = eks.OidcProviderNative(
            self, "OidcProvider", url=self.cluster.cluster_open_id_connect_issuer_url
        )
        self.security_group: ec2.ISecurityGroup = self.cluster.cluster_security_group
        self._acknowledge_findings()

    @property
    def handle(self) -> ClusterHandle:
        """The tracking server's view: MLflow's node pool, its labels and admin roles."""
        return ClusterHandle(
            cluster=self.cluster,
            oidc_provider=self.oidc_provider,
            database_client_security_group=self.database_client_security_group,
            node_pool=self.node_pool_name,
            node_labels=dict(self.node_labels),
            admin_role_arns=tuple(self.admin_role_arns),
        )

    def handle_in(self, scope: Construct, vpc: ec2.IVpc) -> ClusterHandle:
        """This cluster's handle (already in the app: nothing to import into `scope`)."""
        return self.handle

    def _node_role(self) -> iam.IRole:
        # aws_eks_v2 names the Auto Mode node role after the cluster's id and publishes no
        # attribute for it.
        node_role = self.cluster.node.try_find_child(f"{self.cluster.node.id}nodePoolRole")
        assert isinstance(node_role, iam.Role), "aws_eks_v2 no longer creates the node role"
        return node_role

    def _acknowledge_findings(self) -> None:
        acknowledge_managed_policies(
            self.cluster.role,
            (
                "AmazonEKSClusterPolicy",
                "AmazonEKSComputePolicy",
                "AmazonEKSBlockStoragePolicy",
                "AmazonEKSLoadBalancingPolicy",
                "AmazonEKSNetworkingPolicy",
            ),
            "The policies EKS documents as required for an Auto Mode cluster role; AWS keeps "
            "them in step with what Auto Mode manages (compute, storage, load balancing).",
        )
        acknowledge_managed_policies(
            self._node_role(),
            ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"),
            "The policies EKS documents as the minimum for Auto Mode nodes (join the "
            "cluster, pull images from ECR).",
        )
        provider = self.cluster.kubectl_provider
        assert provider is not None
        acknowledge_kubectl_provider(provider)


def _database_client_group(scope: Construct, vpc: ec2.IVpc) -> ec2.SecurityGroup:
    """A group whose only use is to be admitted by the database, on the MLflow pool's nodes.

    Why on the nodes, beside the cluster security group rather than instead of it or on pods:
    - The cluster security group stays on the nodes and keeps them working: it admits the
      control plane and the cluster's other nodes (its one ingress rule admits itself), and it
      is the group Auto Mode's load balancer controller opens to the NLBs, as it may change only
      groups named `eks-cluster-sg-*` (https://docs.aws.amazon.com/eks/latest/userguide/
      auto-networking.html, load balancing; its rules: .../sec-group-reqs.html).
    - So this group needs no rule of its own: a node's groups add up, and the cluster group
      already allows what the pods need (all egress, DNS and the database included; ingress
      from the load balancers, the control plane and the other nodes). No ingress, and only
      CDK's placeholder egress rule, which matches nothing.
    - Untagged: with two groups on an interface the load balancer controller opens the one
      tagged `kubernetes.io/cluster/<name>` (the cluster group) and refuses when there are two
      (https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/deploy/
      security_groups/).
    - Not the NodeClass's `podSecurityGroupSelectorTerms`: it comes only with
      `podSubnetSelectorTerms` (pods on secondary interfaces in subnets of their own, fewer per
      node), for little gain on a pool only MLflow's pods may use (create-node-class.html, pod
      subnets). Not a SecurityGroupPolicy (.../auto-sgp.html): Auto Mode has it from Kubernetes
      1.36 on, and 1.34 and 1.35 are supported here too.
    """
    return ec2.SecurityGroup(
        scope,
        "DatabaseClientSecurityGroup",
        vpc=vpc,
        allow_all_outbound=False,
        description="MLflow node pool: admitted by the MLflow database; no rules of its own",
    )


def _deploy_role_arn(scope: Construct) -> str:
    """The CDK bootstrap deploy role's ARN, as the stack's synthesizer names it."""
    synthesizer = Stack.of(scope).synthesizer
    if not isinstance(synthesizer, DefaultStackSynthesizer):
        raise ValueError(
            "AutoModeCluster: no admin_role_arns given and the stack's synthesizer has no CDK "
            "deploy role to grant instead; pass the IAM roles that may use kubectl"
        )
    # The synthesizer writes ${AWS::AccountId}-style placeholders where the stack is
    # environment-agnostic: CloudFormation's Fn::Sub fills them in at deploy time.
    return Fn.sub(synthesizer.deploy_role_arn)


@dataclass(frozen=True)
class ExistingClusterAttributes:
    """What identifies an existing cluster; all literals from the config file."""

    cluster_name: str
    oidc_provider_arn: str
    security_group_id: str
    """The cluster security group (attached to nodes and so to pods' traffic)."""
    kubernetes_version: str
    kubectl_role_arn: str | None = None
    """A role that already has cluster access for the kubectl handler; None creates one."""
    load_balancer_controller: LoadBalancerController = "auto-mode"
    """Which controller provisions load balancers: EKS Auto Mode's, or the AWS Load Balancer
    Controller (a cluster without Auto Mode). Default: `auto-mode`."""
    database_client_security_group_id: str | None = None
    """A group only MLflow's pods carry (security groups for pods, or the nodes of a node group
    or NodeClass only MLflow runs on), for the database to admit instead of the cluster
    security group. None: the database admits the cluster security group, that is every pod
    of the cluster, and synth warns."""

    def handle_in(self, scope: Construct, vpc: ec2.IVpc) -> ClusterHandle:
        """Imports the cluster into `scope` (an ImportedCluster with id "Cluster") and gives
        its handle."""
        return ImportedCluster(scope, "Cluster", attributes=self, vpc=vpc).handle


class ImportedCluster(Construct):
    """An existing EKS cluster, imported with a kubectl provider that can apply manifests.

    aws_eks_v2 ignores `kubectl_provider_options` on an imported cluster, so the provider is
    built explicitly: import once bare, create the provider, import again with it. The
    provider's handler runs *as* its role (no assume-role), so a new role gets an EKS access
    entry with cluster-admin; a role given in `attributes.kubectl_role_arn` must have one.
    The handler runs in `subnets` with the cluster security group, which works with private
    cluster endpoints (the subnets need a route to STS and EKS: NAT or VPC endpoints).

    The database admits `database_client_security_group`: the group given in
    `attributes.database_client_security_group_id`, else the cluster security group, which every
    pod and node of the cluster carries (a warning says so; docs/operations.md, Who reaches the
    database).

    Attributes: `attributes`, `cluster` (id "Resource"), `kubectl_provider`, `kubectl_role`,
    `access_entry` (None when the role was given), `oidc_provider`, `security_group`,
    `database_client_security_group`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        attributes: ExistingClusterAttributes,
        vpc: ec2.IVpc,
        subnets: list[ec2.ISubnet] | None = None,
    ) -> None:
        """
        :param attributes: the cluster's identity.
        :param vpc: the cluster's VPC.
        :param subnets: where the kubectl handler runs. Default: the VPC's private subnets.
        """
        super().__init__(scope, id)
        self.oidc_provider = iam.OpenIdConnectProvider.from_open_id_connect_provider_arn(
            self, "OidcProvider", attributes.oidc_provider_arn
        )
        self.security_group = ec2.SecurityGroup.from_security_group_id(
            self, "SecurityGroup", attributes.security_group_id, mutable=False
        )
        self.attributes = attributes
        self.database_client_security_group = self._database_client_group(attributes)
        if attributes.kubectl_role_arn:
            self.kubectl_role = iam.Role.from_role_arn(
                self, "KubectlRole", attributes.kubectl_role_arn, mutable=False
            )
        else:
            self.kubectl_role = iam.Role(
                self,
                "KubectlRole",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description="kubectl handler of the MLflow deployment",
                managed_policies=[
                    iam.ManagedPolicy.from_aws_managed_policy_name(
                        "service-role/AWSLambdaVPCAccessExecutionRole"
                    )
                ],
            )
        bare = eks.Cluster.from_cluster_attributes(
            self, "Bare", cluster_name=attributes.cluster_name, vpc=vpc
        )
        self.kubectl_provider = eks.KubectlProvider(
            self,
            "KubectlProvider",
            cluster=bare,
            kubectl_layer=kubectl_layer(self, "KubectlLayer", attributes.kubernetes_version),
            role=self.kubectl_role,
            private_subnets=subnets or vpc.private_subnets,
            security_groups=[self.security_group],
        )
        if attributes.kubectl_role_arn:
            # The provider adds a condition (is this the `aws` partition?) for a managed policy
            # it attaches to its role; an imported role takes no policies, which leaves the
            # condition unused and `cdk synth` warning (W8001). Nothing refers to it.
            self.node.try_remove_child("HasEcrPublic")
        self.cluster = eks.Cluster.from_cluster_attributes(
            self,
            "Resource",
            cluster_name=attributes.cluster_name,
            vpc=vpc,
            kubectl_provider=self.kubectl_provider,
            open_id_connect_provider=self.oidc_provider,
            cluster_security_group_id=attributes.security_group_id,
        )
        self.access_entry: eks.AccessEntry | None = None
        if not attributes.kubectl_role_arn:
            self.access_entry = eks.AccessEntry(
                self,
                "KubectlAccess",
                cluster=self.cluster,
                principal=self.kubectl_role.role_arn,
                access_policies=[
                    eks.AccessPolicy.from_access_policy_name(
                        "AmazonEKSClusterAdminPolicy",
                        access_scope_type=eks.AccessScopeType.CLUSTER,
                    )
                ],
            )
            # The handler can apply nothing before its role has access to the cluster.
            self.kubectl_provider.node.add_dependency(self.access_entry)
            acknowledge_managed_policies(
                self.kubectl_role,
                _LAMBDA_POLICIES,
                _LAMBDA_POLICIES_REASON,
            )
        acknowledge_kubectl_provider(self.kubectl_provider)

    @property
    def handle(self) -> ClusterHandle:
        """The tracking server's view: any node (no node pool of MLflow's own here)."""
        return ClusterHandle(
            cluster=self.cluster,
            oidc_provider=self.oidc_provider,
            database_client_security_group=self.database_client_security_group,
            load_balancer_class=LOAD_BALANCER_CLASSES[self.attributes.load_balancer_controller],
        )

    def _database_client_group(self, attributes: ExistingClusterAttributes) -> ec2.ISecurityGroup:
        if attributes.database_client_security_group_id:
            return ec2.SecurityGroup.from_security_group_id(
                self,
                "DatabaseClientSecurityGroup",
                attributes.database_client_security_group_id,
                mutable=False,
            )
        Annotations.of(self).add_warning_v2(
            "mlflow:database-admits-the-cluster",
            f"The database admits the cluster security group {attributes.security_group_id}, "
            "which every node and pod of the cluster carries (and the kubectl handler): every "
            "workload on the cluster can open the database port. To narrow it, give MLflow's "
            "pods a security group of their own (security groups for pods: a "
            "SecurityGroupPolicy) and name it in database_client_security_group_id "
            "(docs/operations.md, Who reaches the database).",
        )
        return self.security_group


_LAMBDA_POLICIES_REASON = (
    "AWS managed policies of the kubectl handler, a Lambda function in the VPC: logs, "
    "network interfaces, pulling the kubectl image layer; aws_eks_v2's KubectlProvider "
    "attaches them and they are maintained by AWS."
)


def acknowledge_kubectl_provider(provider: eks.IKubectlProvider) -> None:
    """Acknowledge the findings on aws_eks_v2's kubectl provider (its roles and functions)."""
    for child in provider.node.find_all():
        if isinstance(child, iam.Role):
            acknowledge_managed_policies(child, _LAMBDA_POLICIES, _LAMBDA_POLICIES_REASON)
    handler = provider.node.try_find_child("Handler")
    if isinstance(handler, lambda_.Function):
        acknowledge(
            handler,
            "AwsSolutions-L1",
            "aws_eks_v2's KubectlProvider sets the handler's runtime to one its kubectl "
            "layer and handler code are tested with; it moves with aws-cdk-lib upgrades.",
        )
    framework = provider.node.try_find_child("Provider")
    if framework is not None and isinstance(handler, lambda_.Function):
        function = handler
        acknowledge_wildcard_resources(
            framework,
            lambda: [f"{function.function_arn}:*"],
            "The custom-resource framework may invoke any version of the kubectl handler "
            "(`<arn>:*`), and that one function only; the grant is CDK's Provider's own.",
        )
