"""Who can run kubectl, exactly: the KubeconfigCommand the server stack prints, run with the real
AWS CLI against moto's EKS, STS and IAM.

The command is the synthesized output itself, its CloudFormation functions resolved as
CloudFormation would (the region, the account, the cluster name the cluster stack exports); the
kubeconfig it writes must point at the cluster moto describes and get kubectl's token as the
role the cluster admits as admin. With moto enforcing IAM, the printed command fails for a user
who may assume that role but lacks eks:DescribeCluster, as the output's description says.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from itest_kubeconfig import (
    EXEC_API_VERSION,
    FALLBACK_REGION,
    Deployed,
    Key,
    admin_principals,
    allow,
    assumed_role_arn_prefix,
    cli_env,
    client,
    deploy_clusters,
    enforcing_moto,
    kubeconfig,
    new_user,
    presigned_identity_request,
    printed_command,
    run_in_shell,
    run_token_command,
)
from itest_servers import REGION
from moto.core import DEFAULT_ACCOUNT_ID

pytestmark = pytest.mark.integration

# A new cluster admitting the CDK deploy role, an existing cluster (no role: the user's own access
# entry), a new cluster admitting configured roles.
CONFIGS = ["default", "existing-cluster", "test-maximal"]


def _deploy(result, endpoint: str) -> tuple[Deployed, str]:
    """The app's clusters in moto, in the config's account and region (else moto's account and
    the tests' region, as an environment-agnostic app deploys where the CLI points)."""
    region = result.settings.aws.region or REGION
    assert region != FALLBACK_REGION
    account = result.settings.aws.account or DEFAULT_ACCOUNT_ID
    deployed = deploy_clusters(
        result, client(endpoint, "eks", region, account=account), region, account
    )
    names = list(deployed.names.values()) or [result.settings.cluster.name]
    assert len(names) == 1, names
    return deployed, names[0]


@pytest.mark.parametrize("config", CONFIGS)
def test_printed_command_points_kubectl_at_the_cluster_as_its_admin(
    config: str, synth, moto, tmp_path: Path
) -> None:
    deployed, name = _deploy(synth(config), moto.endpoint)
    region, account = deployed.region, deployed.account
    iam = client(moto.endpoint, "iam", region, account=account)
    engineer = new_user(iam, f"engineer-{secrets.token_hex(4)}")
    env = cli_env(tmp_path, moto.endpoint, engineer.key)

    done = run_in_shell(printed_command(deployed), env)

    assert done.returncode == 0, done.stderr
    eks = client(moto.endpoint, "eks", region, account=account)
    described = eks.describe_cluster(name=name)["cluster"]
    arn = described["arn"]
    written = kubeconfig(env)
    assert written["current-context"] == arn
    assert written["contexts"] == [{"name": arn, "context": {"cluster": arn, "user": arn}}]
    assert written["clusters"] == [
        {
            "name": arn,
            "cluster": {
                "server": described["endpoint"],
                "certificate-authority-data": described["certificateAuthority"]["data"],
            },
        }
    ]
    # update_kubeconfig.py `get_user_entry`: the token command, with the region from the
    # cluster's ARN, then `--role <arn>` when the command had --role-arn.
    (user,) = written["users"]
    plugin = user["user"]["exec"]
    assert user["name"] == arn and plugin["command"] == "aws"
    assert plugin["apiVersion"] == EXEC_API_VERSION and "env" not in plugin
    token_args = ["--region", region, "eks", "get-token", "--cluster-name", name]
    token_args += ["--output", "json"]
    admins = admin_principals(deployed)
    if admins:
        # A new cluster admits only its admin roles: the token must be one of theirs.
        assert plugin["args"][:-2] == token_args and plugin["args"][-2] == "--role"
        assert plugin["args"][-1] in admins, (plugin["args"], admins)
    else:
        assert plugin["args"] == token_args

    # The token kubectl gets from that command, and who EKS learns the caller is from the
    # presigned STS GetCallerIdentity inside it. moto neither answers the presigned URL nor
    # checks signatures here, so the question is put to its STS with the URL's access key.
    token = run_token_command(written, env)
    assert token.returncode == 0, token.stderr
    query = presigned_identity_request(json.loads(token.stdout))
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    key_id, _, scope_region, service, _ = query["X-Amz-Credential"][0].split("/")
    assert (scope_region, service) == (region, "sts")
    sts = client(moto.endpoint, "sts", region, Key(key_id, "unchecked"))
    seen_as = sts.get_caller_identity()["Arn"]
    if admins:
        assert seen_as.startswith(assumed_role_arn_prefix(plugin["args"][-1])), seen_as
    else:
        assert seen_as == engineer.arn


def test_assuming_the_admin_role_is_not_enough(synth, tmp_path: Path) -> None:
    """The output's description: the CLI reads the cluster with the caller's own credentials,
    so a user needs eks:DescribeCluster besides sts:AssumeRole on the admin role; and the token
    kubectl uses needs the role, so eks:DescribeCluster alone is not enough either."""
    with enforcing_moto(tmp_path / "moto.log") as server:
        deployed, _ = _deploy(synth("default"), server.endpoint)
        iam = client(server.endpoint, "iam", deployed.region)
        (role_arn,) = admin_principals(deployed)
        # The CDK deploy role: `cdk bootstrap` makes it trusting its own account (the bootstrap
        # template's DeploymentActionRole: Principal AWS: the account ID, i.e. its root), so a
        # user of the account may assume it when a policy of theirs allows it. moto matches a
        # trust policy's principal only by exact ARN or "*" (iam/access_control.py
        # `_check_principal`) and also asks the caller's own policies: "*" here leaves the
        # decision to those policies, as the account's root does on AWS.
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ],
        }
        iam.create_role(
            RoleName=role_arn.split(":role/")[1], AssumeRolePolicyDocument=json.dumps(trust)
        )
        admin, engineer, reader = (new_user(iam, n) for n in ("admin", "engineer", "reader"))
        allow(iam, admin, "*", "*")
        allow(iam, engineer, "sts:AssumeRole", role_arn)
        # moto authorizes EKS actions against no particular resource (its EKS has no
        # _determine_resource, so every request is checked against "*"): a policy naming the
        # cluster's ARN, as one would on AWS, would not match here.
        allow(iam, reader, "eks:DescribeCluster", "*")
        server.enforce()
        command = printed_command(deployed)

        as_engineer = cli_env(tmp_path / "engineer", server.endpoint, engineer.key)
        denied = run_in_shell(command, as_engineer)
        assert denied.returncode != 0
        assert "AccessDenied" in denied.stderr and "eks:DescribeCluster" in denied.stderr
        assert not Path(as_engineer["KUBECONFIG"]).exists()

        as_admin = client(server.endpoint, "iam", deployed.region, admin.key)
        allow(as_admin, engineer, "eks:DescribeCluster", "*")
        done = run_in_shell(command, as_engineer)
        assert done.returncode == 0, done.stderr
        token = run_token_command(kubeconfig(as_engineer), as_engineer)
        assert token.returncode == 0, token.stderr

        as_reader = cli_env(tmp_path / "reader", server.endpoint, reader.key)
        written = run_in_shell(command, as_reader)
        assert written.returncode == 0, written.stderr
        no_token = run_token_command(kubeconfig(as_reader), as_reader)
        assert no_token.returncode != 0
        assert "AccessDenied" in no_token.stderr and "sts:AssumeRole" in no_token.stderr
