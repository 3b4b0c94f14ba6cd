"""IAM roles for Kubernetes ServiceAccounts (IRSA): the trust of one ServiceAccount."""

from __future__ import annotations

from aws_cdk import CfnJson
from aws_cdk import aws_iam as iam
from constructs import Construct


def irsa_principal(
    scope: Construct,
    provider: iam.IOpenIdConnectProvider,
    namespace: str,
    service_account: str,
    id: str = "",
) -> iam.IPrincipal:
    """Web identity trust for exactly `system:serviceaccount:<namespace>:<service_account>`
    with the `sts.amazonaws.com` audience (Amazon EKS User Guide, "Assign IAM roles to
    Kubernetes service accounts"); CfnJson because the condition keys are tokens."""
    issuer = provider.open_id_connect_provider_issuer
    conditions = CfnJson(
        scope,
        f"{id}TrustConditions",
        value={
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{issuer}:aud": "sts.amazonaws.com",
        },
    )
    return iam.OpenIdConnectPrincipal(provider, {"StringEquals": conditions})
