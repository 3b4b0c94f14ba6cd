"""The sign-in load balancer's Kubernetes objects (k8s_charts/sso.py says what and why):
an IngressClass for the cluster's ALB controller, the Ingress with the OIDC action, the empty
Secret the controller reads the IdP client from, and the Job that fills it.

All of them go in the manifest applied first (MlflowChart.load_balancer_objects): the ALB must
exist, with its OIDC configuration, before its ARN can be read back for the server (the signer
the launcher checks), and the Ingress must find its backend Service and its Secret then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cdk8s
import cdk8s_plus_27 as kplus
from cdk8s_plus_27 import k8s
from constructs import Construct

from .hardening import Placement, api_job_pod, container_resources, harden, launcher_container
from .launcher_contract import launcher
from .policy import dns, egress, egress_only, tcp
from .sso import SsoProps, ingress_annotations

INGRESS_CONTROLLERS = {
    # Auto Mode's own controller ("Create an IngressClass to configure an Application Load
    # Balancer", EKS user guide) and the AWS Load Balancer Controller's.
    "eks.amazonaws.com/nlb": "eks.amazonaws.com/alb",
    "service.k8s.aws/nlb": "ingress.k8s.aws/alb",
}
"""The ALB controller that goes with each NLB load balancer class (MlflowChartProps)."""
AUTO_MODE_CONTROLLERS_GROUP = "eks:managed"
"""The Kubernetes group of EKS Auto Mode's managed controllers: its access entry for
AWSServiceRoleForAmazonEKS declares it, and RBAC bound to it adds to their managed policies
("Grant additional Kubernetes RBAC to EKS Auto Mode managed controllers", EKS user guide; its
tutorial grants get on the OIDC Secret exactly so)."""


@dataclass(frozen=True)
class SsoNames:
    """The objects' names, from the chart's instance name."""

    instance: str

    @property
    def ingress(self) -> str:
        return f"{self.instance}-sso"

    @property
    def secret(self) -> str:
        return f"{self.instance}-sso-client"

    @property
    def sync(self) -> str:
        return f"{self.instance}-sso-sync"


def add_sso(
    scope: Construct,
    *,
    sso: SsoProps,
    names: SsoNames,
    namespace: str,
    load_balancer_class: str,
    backend_service: str,
    backend_port: int,
    target_group_attributes: str,
    image: str,
    sync_role_arn: str | None,
    revision: str,
    placement: Placement,
) -> list[cdk8s.ApiObject]:
    """The objects, in the order they are applied."""
    controller = INGRESS_CONTROLLERS[load_balancer_class]
    objects: list[cdk8s.ApiObject] = []
    ingress_class = k8s.KubeIngressClass(
        scope,
        "SsoIngressClass",
        metadata=k8s.ObjectMeta(name=names.ingress),
        spec=k8s.IngressClassSpec(controller=controller),
    )
    # Cluster-scoped: the chart's namespace does not belong on it.
    ingress_class.add_json_patch(cdk8s.JsonPatch.remove("/metadata/namespace"))
    objects.append(ingress_class)
    objects.append(
        k8s.KubeSecret(
            scope, "SsoClientSecret", metadata=k8s.ObjectMeta(name=names.secret), type="Opaque"
        )
    )
    if controller == "eks.amazonaws.com/alb":
        objects += _grant(
            scope,
            "SsoController",
            name=f"{names.ingress}-controller",
            secret=names.secret,
            verbs=["get"],
            subject=k8s.Subject(
                kind="Group",
                name=AUTO_MODE_CONTROLLERS_GROUP,
                api_group="rbac.authorization.k8s.io",
            ),
        )
    objects += _sync(
        scope,
        sso=sso,
        names=names,
        namespace=namespace,
        image=image,
        role_arn=sync_role_arn,
        revision=revision,
        placement=placement,
    )
    objects.append(
        k8s.KubeIngress(
            scope,
            "SsoIngress",
            metadata=k8s.ObjectMeta(
                name=names.ingress,
                annotations=ingress_annotations(
                    sso,
                    secret_name=names.secret,
                    target_group_attributes=target_group_attributes,
                ),
            ),
            spec=k8s.IngressSpec(
                ingress_class_name=names.ingress,
                rules=[
                    k8s.IngressRule(
                        host=sso.hostname,
                        http=k8s.HttpIngressRuleValue(
                            paths=[
                                k8s.HttpIngressPath(
                                    path="/",
                                    path_type="Prefix",
                                    backend=k8s.IngressBackend(
                                        service=k8s.IngressServiceBackend(
                                            name=backend_service,
                                            port=k8s.ServiceBackendPort(number=backend_port),
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                ],
            ),
        )
    )
    return objects


def _grant(
    scope: Construct, id: str, *, name: str, secret: str, verbs: list[str], subject: k8s.Subject
) -> list[cdk8s.ApiObject]:
    """A Role on the one Secret, bound to `subject`."""
    return [
        k8s.KubeRole(
            scope,
            f"{id}Role",
            metadata=k8s.ObjectMeta(name=name),
            rules=[
                k8s.PolicyRule(
                    api_groups=[""], resources=["secrets"], resource_names=[secret], verbs=verbs
                )
            ],
        ),
        k8s.KubeRoleBinding(
            scope,
            f"{id}RoleBinding",
            metadata=k8s.ObjectMeta(name=name),
            role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[subject],
        ),
    ]


def _sync(
    scope: Construct,
    *,
    sso: SsoProps,
    names: SsoNames,
    namespace: str,
    image: str,
    role_arn: str | None,
    revision: str,
    placement: Placement,
) -> list[cdk8s.ApiObject]:
    """`sync-sso-secret` as a Job on each deploy and an hourly CronJob, as its own
    ServiceAccount: its IRSA role may read the client's Secrets Manager secret, its Role may
    patch the one Secret; nothing else. Egress: DNS, and HTTPS (Secrets Manager, the API)."""
    account = kplus.ServiceAccount(
        scope,
        "SsoSyncServiceAccount",
        metadata=cdk8s.ApiObjectMetadata(
            name=names.sync,
            annotations={"eks.amazonaws.com/role-arn": role_arn} if role_arn else None,
        ),
        automount_token=False,
    )
    objects: list[cdk8s.ApiObject] = [cdk8s.ApiObject.of(account)]
    objects += _grant(
        scope,
        "SsoSync",
        name=names.sync,
        secret=names.secret,
        verbs=["patch"],
        subject=k8s.Subject(kind="ServiceAccount", name=names.sync, namespace=namespace),
    )
    labels = {
        "app.kubernetes.io/name": "mlflow-sso-sync",
        "app.kubernetes.io/instance": names.instance,
        "app.kubernetes.io/component": "sso",
    }
    environment = launcher.render(
        {
            launcher.SSO_CLIENT_SECRET_ID: sso.client_secret_arn,
            launcher.SSO_SECRET_NAME: names.secret,
            launcher.SSO_SECRET_NAMESPACE: namespace,
        }
    )
    # Part of the Job's name: a Job's pod template cannot change, so a new image or secret
    # is a new Job (the revision covers the image).
    digest = hashlib.sha256(f"{revision}|{sso.client_secret_arn}".encode()).hexdigest()[:10]
    for id, workload, spec in (
        (
            "SsoSyncJob",
            lambda id, pod: kplus.Job(
                scope,
                id,
                metadata=cdk8s.ApiObjectMetadata(name=f"{names.sync}-{digest}"),
                backoff_limit=3,
                active_deadline=cdk8s.Duration.minutes(30),
                ttl_after_finished=cdk8s.Duration.days(1),
                **pod,
            ),
            "/spec/template/spec",
        ),
        (
            "SsoSyncCronJob",
            lambda id, pod: kplus.CronJob(
                scope,
                id,
                metadata=cdk8s.ApiObjectMetadata(name=names.sync),
                # Hourly: a client secret rotated in Secrets Manager reaches the load
                # balancer within the hour.
                schedule=cdk8s.Cron.schedule(minute="23", hour="*"),
                concurrency_policy=kplus.ConcurrencyPolicy.FORBID,
                successful_jobs_retained=1,
                failed_jobs_retained=3,
                backoff_limit=3,
                active_deadline=cdk8s.Duration.minutes(30),
                **pod,
            ),
            "/spec/jobTemplate/spec/template/spec",
        ),
    ):
        tmp = kplus.Volume.from_empty_dir(
            scope, f"{id}Tmp", "tmp", size_limit=cdk8s.Size.gibibytes(1)
        )
        pod = api_job_pod(
            labels=labels,
            account=account,
            tmp=tmp,
            # No ConfigMap: it may run before the server's is applied.
            container=launcher_container(
                name="sync-sso-secret",
                image=image,
                config_map=None,
                environment=environment,
                tmp=tmp,
                resources=container_resources(cpu_millis=50, memory_mib=256),
            ),
        )
        job = workload(id, pod)
        harden(
            job,
            placement=placement,
            pod_spec=spec,
        )
        objects.append(cdk8s.ApiObject.of(job))
    objects.append(
        egress_only(
            scope,
            "SsoSyncNetworkPolicy",
            name=names.sync,
            pods={k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")},
            rules=[dns(), egress(tcp(443))],
        )
    )
    return objects
