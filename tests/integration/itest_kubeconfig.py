"""The commands the stacks print, run as a user would: the real AWS CLI (.venv-awscli, installed
from requirements-awscli.txt) against moto, with the output's CloudFormation functions resolved as
CloudFormation resolves them when the stacks deploy.

The AWS CLI's `eks update-kubeconfig` (awscli/customizations/eks/update_kubeconfig.py,
`EKSClient.cluster_description`) calls eks:DescribeCluster with the caller's own credentials
(only `--assume-role-arn` would change that); `--role-arn` only goes into the kubeconfig, as
`--role <arn>` after `aws eks get-token`, which assumes the role each time kubectl needs a token
(`EKSClient.get_user_entry`; get_token.py `STSClientFactory`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from itest_servers import free_port, wait_for_port

from tests.conftest import Synth, resources_of

REPO = Path(__file__).resolve().parents[2]
# What update-kubeconfig writes for the token command (update_kubeconfig.py API_VERSION).
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
# A region the CLI would fall back to, where no cluster is: a command that does not name the
# stack's region fails instead of passing by luck.
FALLBACK_REGION = "ap-southeast-2"
# CloudFormation pseudo parameters other than the region and the account (aws partition).
_PARTITION = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


@dataclass(frozen=True)
class Key:
    access_key_id: str
    secret_access_key: str = field(repr=False)


TESTING_KEY = Key("testing", "testing")


def cli_bin() -> Path:
    """The folder holding the tests' `aws`; missing, it is a failure saying how to build it."""
    venv = Path(os.environ.get("AWSCLI_VENV") or REPO / ".venv-awscli")
    if not (venv / "bin" / "aws").exists():
        pytest.fail(
            f"{venv}/bin/aws missing: build it with `make .venv-awscli/.stamp` (installs "
            "requirements-awscli.txt with --require-hashes)",
            pytrace=False,
        )
    return venv / "bin"


@dataclass(frozen=True)
class Deployed:
    """What CloudFormation knows when it resolves the app's outputs in one account and region:
    the pseudo parameters, and the physical names of the resources it created."""

    synth: Synth
    region: str
    account: str
    names: Mapping[tuple[str, str], str]
    """Ref value by (stack id, logical ID)."""

    def resolve(self, value: Any, stack: str) -> str:
        """`value` (an output's Value in `stack`'s template) as CloudFormation would resolve it;
        a function not handled here fails the test rather than being guessed."""
        if isinstance(value, str):
            return value
        ((function, argument),) = value.items()
        if function == "Ref":
            return self._pseudo(argument) if "::" in argument else self.names[(stack, argument)]
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(self.resolve(part, stack) for part in parts)
        if function == "Fn::Sub" and isinstance(argument, str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._pseudo(m[1]), argument)
        if function == "Fn::ImportValue":
            return self._import(self.resolve(argument, stack))
        raise AssertionError(f"{function} is not resolved by this test: {value}")

    def _pseudo(self, name: str) -> str:
        return {"AWS::Region": self.region, "AWS::AccountId": self.account, **_PARTITION}[name]

    def _import(self, export: str) -> str:
        found = [
            (stack, output["Value"])
            for stack, template in self.synth.templates.items()
            for output in template.get("Outputs", {}).values()
            if output.get("Export", {}).get("Name") == export
        ]
        assert len(found) == 1, f"export {export} is defined {len(found)} times"
        stack, value = found[0]
        return self.resolve(value, stack)


def deploy_clusters(synth: Synth, eks: Any, region: str, account: str) -> Deployed:
    """The app's EKS clusters as they stand after a deploy, in moto's EKS: each cluster the app
    creates, named as CloudFormation names it, or the existing cluster the config imports."""
    names: dict[tuple[str, str], str] = {}
    for stack, template in synth.templates.items():
        for logical_id, resource in resources_of(template, "AWS::EKS::Cluster").items():
            # Without a Name, CloudFormation names the cluster from its logical ID and a random
            # suffix; Ref returns that name (AWS CloudFormation Template Reference,
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-eks-cluster.html).
            name = resource["Properties"].get("Name") or f"{logical_id}-{secrets.token_hex(6)}"
            names[(stack, logical_id)] = _create_cluster(eks, account, name)
    if not names:
        _create_cluster(eks, account, synth.settings.cluster.name)
    return Deployed(synth, region, account, names)


def _create_cluster(eks: Any, account: str, name: str) -> str:
    eks.create_cluster(
        name=name,
        roleArn=f"arn:aws:iam::{account}:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": []},
    )
    return name


def admin_principals(deployed: Deployed) -> set[str]:
    """The principals the app's clusters admit as cluster admins (their access entries with
    AmazonEKSClusterAdminPolicy), resolved; but the kubectl handler's role, which the stack
    creates for its own use (an Fn::GetAtt of that role) and no person assumes."""
    found = set()
    for stack, template in deployed.synth.templates.items():
        for entry in resources_of(template, "AWS::EKS::AccessEntry").values():
            properties = entry["Properties"]
            policies = json.dumps(properties.get("AccessPolicies", []))
            principal = properties["PrincipalArn"]
            if "AmazonEKSClusterAdminPolicy" in policies and "Fn::GetAtt" not in principal:
                found.add(deployed.resolve(principal, stack))
    return found


def printed_command(deployed: Deployed) -> str:
    """The server stack's KubeconfigCommand output, as `cdk deploy` prints it."""
    output = deployed.synth.templates["Mlflow"]["Outputs"]["KubeconfigCommand"]["Value"]
    return deployed.resolve(output, "Mlflow")


def cli_env(home: Path, endpoint: str, key: Key) -> dict[str, str]:
    """A shell with only the tests' `aws` on PATH, these credentials, no AWS config files, every
    AWS endpoint at moto (AWS_ENDPOINT_URL, which the CLI's botocore reads for every service)
    and a default region where no cluster is."""
    return {
        "PATH": f"{cli_bin()}:/usr/bin:/bin",
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_ACCESS_KEY_ID": key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
        "AWS_DEFAULT_REGION": FALLBACK_REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "KUBECONFIG": str(home / ".kube" / "config"),
    }


def run_in_shell(command: str, env: Mapping[str, str]) -> subprocess.CompletedProcess:
    """`command` split into words as a POSIX shell splits a pasted line, run with `env`."""
    return subprocess.run(
        shlex.split(command), env=dict(env), capture_output=True, text=True, timeout=120
    )


def kubeconfig(env: Mapping[str, str]) -> dict[str, Any]:
    return yaml.safe_load(Path(env["KUBECONFIG"]).read_text())


def run_token_command(
    config: Mapping[str, Any], env: Mapping[str, str]
) -> subprocess.CompletedProcess:
    """The current context's user's exec command, run as kubectl runs it (client-go's exec
    plugin: command and args as written, the user's env added, KUBERNETES_EXEC_INFO set)."""
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    users = {u["name"]: u["user"] for u in config["users"]}
    plugin = users[contexts[config["current-context"]]["user"]]["exec"]
    info = {"kind": "ExecCredential", "apiVersion": plugin["apiVersion"], "spec": {}}
    plugin_env = {e["name"]: e["value"] for e in plugin.get("env") or []}
    return subprocess.run(
        [plugin["command"], *plugin["args"]],
        env={**env, **plugin_env, "KUBERNETES_EXEC_INFO": json.dumps(info)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def presigned_identity_request(credential: dict[str, Any]) -> dict[str, list[str]]:
    """The query of the STS GetCallerIdentity URL an EKS token carries (`k8s-aws-v1.` and the
    URL in unpadded base64url: get_token.py `TokenGenerator`); EKS calls it to learn who the
    caller is."""
    token = credential["status"]["token"]
    assert token.startswith("k8s-aws-v1."), token
    encoded = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    return parse_qs(urlsplit(url).query)


def client(
    endpoint: str, service: str, region: str, key: Key = TESTING_KEY, account: str | None = None
):
    """A boto3 client of moto at `endpoint`; with `account`, acting in that account (moto's
    x-moto-account-id header) rather than the one the key belongs to."""
    import boto3

    made = boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
    )
    if account is not None:

        def add_account(request, **_) -> None:
            request.headers["x-moto-account-id"] = account

        made.meta.events.register("before-sign", add_account)
    return made


@dataclass(frozen=True)
class User:
    name: str
    arn: str
    key: Key


def new_user(iam: Any, name: str) -> User:
    """An IAM user with an access key."""
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return User(name, arn, Key(key["AccessKeyId"], key["SecretAccessKey"]))


def allow(iam: Any, user: User, action: str, resource: str) -> None:
    """Adds an inline policy allowing `action` on `resource` to `user`."""
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
    }
    iam.put_user_policy(
        UserName=user.name, PolicyName=action.replace(":", "-"), PolicyDocument=json.dumps(document)
    )


def assumed_role_arn_prefix(role_arn: str) -> str:
    """How STS names a session of `role_arn`: arn:<partition>:sts::<account>:assumed-role/<name>/
    followed by the session name (IAM identifiers, "Role session ARNs")."""
    account_part, role_name = role_arn.split(":role/")
    return f"{account_part.replace(':iam:', ':sts:')}:assumed-role/{role_name}/"


@dataclass
class EnforcingMoto:
    """A moto server of its own (IAM enforcement is a process-wide moto setting, so the
    session's shared moto stays without it) that checks every request's signature and the
    caller's IAM policies once `enforce()` has been called."""

    endpoint: str

    def enforce(self) -> None:
        """From now on every request is authorized (moto's /moto-api/reset-auth: the count of
        requests still served unchecked)."""
        # Not a form: moto reads the raw body, which Flask leaves empty for form content.
        request = urllib.request.Request(  # noqa: S310 - http to loopback only
            f"{self.endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 200


_ENFORCING_SERVER = Path(__file__).with_name("moto_enforcing_server.py")


@contextmanager
def enforcing_moto(log: Path) -> Iterator[EnforcingMoto]:
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, str(_ENFORCING_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, 30, "moto server")
        yield EnforcingMoto(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)
