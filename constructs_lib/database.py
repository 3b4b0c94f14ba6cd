"""MlflowDatabase: the RDS backend store, with generated credentials and TLS required."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from .acknowledgements import acknowledge
from .database_props import (
    ENGINE_MAJOR_VERSIONS,
    ENGINE_PORTS,
    DatabaseProps,
    Engine,
    ExistingDatabase,
    endpoint_region,
    instance_identifier,
)
from .references import imported_key, same_place

STORAGE_AUTOSCALING_FACTOR = 2
"""RDS storage autoscaling may grow the instance to this multiple of its allocation
(max_allocated_storage): the ceiling the storage growth alarm measures against."""

SERVER_LOGIN = "mlflow_server"
"""The server's database user (the master user is `mlflow`)."""


@dataclass(frozen=True)
class _EngineSpec:
    engine: rds.IInstanceEngine
    port: int
    parameters: dict[str, str]
    log_exports: list[str]


def _engine_spec(engine: Engine) -> _EngineSpec:
    # The major version only: RDS creates the instance with the region's default minor
    # version and, with auto_minor_version_upgrade, keeps it patched; a pinned minor fails
    # fresh deploys once RDS retires it, and after an automatic upgrade asks for a downgrade
    # RDS refuses. Updating a stack from a pinned minor to the major is safe: "If you specify
    # only a major version, Amazon RDS updates the DB instance to the default minor version if
    # the current minor version is lower" (RDS API reference, ModifyDBInstance, EngineVersion).
    major = ENGINE_MAJOR_VERSIONS[engine]
    if engine == "mysql":
        return _EngineSpec(
            engine=rds.DatabaseInstanceEngine.mysql(
                version=rds.MysqlEngineVersion.of(major, major)
            ),
            port=ENGINE_PORTS["mysql"],
            parameters={
                # RDS documents this instance parameter's allowed values as 0/1 (not ON/OFF):
                # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/mysql-ssl-connections.require-ssl.html
                "require_secure_transport": "1",
                # MLflow's migrations create triggers (3.17: on the secrets table). RDS turns
                # binary logging on with automated backups and gives no SUPER privilege, so
                # without this the first migration fails with error 1419. AWS's remedy:
                # https://aws.amazon.com/premiumsupport/knowledge-center/rds-mysql-functions/
                "log_bin_trust_function_creators": "1",
            },
            log_exports=["error", "slowquery"],
        )
    return _EngineSpec(
        engine=rds.DatabaseInstanceEngine.postgres(
            version=rds.PostgresEngineVersion.of(major, major)
        ),
        port=ENGINE_PORTS["postgres"],
        parameters={"rds.force_ssl": "1"},
        log_exports=["postgresql"],
    )


def _default_subnets(vpc: ec2.IVpc) -> ec2.SubnetSelection:
    kind = (
        ec2.SubnetType.PRIVATE_ISOLATED
        if vpc.isolated_subnets
        else ec2.SubnetType.PRIVATE_WITH_EGRESS
    )
    return ec2.SubnetSelection(subnet_type=kind)


class MlflowDatabase(Construct):
    """An RDS instance for MLflow's backend store.

    Encrypted storage, TLS required by its parameter group, credentials generated into
    Secrets Manager, automated backups, deletion protection unless `props.removal_policy` is
    `destroy`,
    in the given (isolated) subnets with a security group that admits nobody until a client
    is allowed in (MlflowTrackingServer admits the cluster's security group).

    Or an existing instance (`props.existing`, as the config file's `database.existing`): it is
    imported by its endpoint, with its security group and the secret of a login that may
    create databases and logins; nothing of it is created, changed or deleted here.

    Two logins, each in its own secret: the instance's master login (`secret`), which only
    the migration Job reads, and the server's (`server_login_secret`, user `mlflow_server`,
    password generated), which the Job makes and gives MLflow's databases and nothing else
    (mlflow_launcher.dblogin); the server, gc and the check connect with it. Both are retained
    with the data (an existing instance's secret is its owner's).

    Attributes: `props`, `instance` (the primary child, id "Resource"; imported for an
    existing instance), `secret`, `server_login_secret`, `security_group`, `parameter_group`
    (None for an existing instance), `port`, `engine`, `database_name`, `instance_type` (e.g.
    `t4g.medium`) and `allocated_storage_gib` (None for an existing instance), `read_replica`
    (or None), `existing` (whether the instance is an existing one).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        props: DatabaseProps | None = None,
        subnets: ec2.SubnetSelection | None = None,
        security_group: ec2.ISecurityGroup | None = None,
        credentials_secret: secretsmanager.ISecret | None = None,
        database_name: str = "mlflow",
    ) -> None:
        """
        :param vpc: VPC of the database (the cluster's).
        :param props: the config file's `database` section (engine, instance type, storage,
            Multi-AZ, read replica, backups). Its `removal_policy`: `snapshot` keeps the data
            (a final snapshot, the credentials secrets retained) and turns on deletion
            protection; `destroy` deletes both with the stack. With `existing.endpoint`, that
            instance instead (then leave `subnets`, `security_group` and
            `credentials_secret` out: `existing` names them). Default: `DatabaseProps()`.
        :param subnets: Default: the VPC's isolated subnets (no route to the internet), or its
            private subnets when it has none (an imported VPC known by private subnets only).
        :param security_group: bring your own; the server's ingress rule is added to it.
            Default: a new group with no ingress and no egress.
        :param credentials_secret: bring your own Secrets Manager secret, a JSON object with
            `username` and `password` (the launcher reads those two keys), used as the master
            credentials; you own its lifecycle. Default: credentials generated into a new
            secret, retained with the data.
        :param database_name: the tracking database (the auth database is
            `mlflow_auth`). Default: mlflow.

        With `props.read_replica`, an RDS read replica of the same class, subnets, security
        group and TLS-required parameters, to which MLflow sends its searches. It holds nothing
        the primary does not, so it is deleted with the stack and has no deletion protection.
        """
        super().__init__(scope, id)
        props = props or DatabaseProps()
        self.props = props
        spec = _engine_spec(props.engine)
        self.engine: Engine = props.engine
        self.database_name = database_name
        self.existing = bool(props.existing.endpoint)
        self.read_replica: rds.DatabaseInstanceReadReplica | None = None
        if self.existing:
            given = [
                name
                for name, value in (
                    ("subnets", subnets),
                    ("security_group", security_group),
                    ("credentials_secret", credentials_secret),
                )
                if value is not None
            ]
            if given:
                raise ValueError(
                    f"props.existing names the instance, its security group and its secret: "
                    f"leave {', '.join(given)} out"
                )
            self._import(props.existing, spec)
        else:
            self._create(props, spec, vpc, subnets, security_group, credentials_secret)
        keep = props.removal_policy != "destroy"
        self.server_login_secret: secretsmanager.ISecret = self._server_login(keep)

    def _import(self, existing: ExistingDatabase, spec: _EngineSpec) -> None:
        """The existing instance, its security group and its login's secret, by reference."""
        assert existing.endpoint and existing.secret_arn and existing.security_group_id
        same_place(
            Stack.of(self),
            "database.existing.endpoint",
            "the server stack grants snapshots of the instance, and its pods read the secret, "
            "in the stack's region",
            region=endpoint_region(existing.endpoint),
        )
        self.port = existing.port or spec.port
        self.instance_type: str | None = None
        self.allocated_storage_gib: int | None = None
        self.parameter_group: rds.ParameterGroup | None = None
        self.security_group: ec2.ISecurityGroup = ec2.SecurityGroup.from_security_group_id(
            self,
            "SecurityGroup",
            existing.security_group_id,
            # The server stack adds its ingress rule to its own import of the group.
            mutable=False,
            allow_all_outbound=False,
        )
        self.instance: rds.IDatabaseInstance = (
            rds.DatabaseInstance.from_database_instance_attributes(
                self,
                "Resource",
                instance_identifier=instance_identifier(existing.endpoint),
                instance_endpoint_address=existing.endpoint,
                port=self.port,
                security_groups=[self.security_group],
                engine=spec.engine,
            )
        )
        # The complete ARN: a grant then names this secret exactly.
        self.secret: secretsmanager.ISecret = secretsmanager.Secret.from_secret_attributes(
            self,
            "Secret",
            secret_complete_arn=existing.secret_arn,
            # WorkloadRoles lets the migration Job decrypt with it, through Secrets Manager only.
            encryption_key=imported_key(self, "SecretKey", existing.secret_kms_key_arn),
        )

    def _create(
        self,
        props: DatabaseProps,
        spec: _EngineSpec,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection | None,
        security_group: ec2.ISecurityGroup | None,
        credentials_secret: secretsmanager.ISecret | None,
    ) -> None:
        self.port = spec.port
        database_name = self.database_name
        instance_type = ec2.InstanceType(props.instance_type)
        self.instance_type = props.instance_type
        self.allocated_storage_gib = props.allocated_storage_gib
        removal_policy = (
            RemovalPolicy.DESTROY if props.removal_policy == "destroy" else RemovalPolicy.SNAPSHOT
        )

        self.security_group = security_group or ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="MLflow backend store; admits only the clients allowed explicitly",
            allow_all_outbound=False,
        )
        self.parameter_group = rds.ParameterGroup(
            self,
            "ParameterGroup",
            engine=spec.engine,
            description="MLflow backend store: TLS required",
            parameters=spec.parameters,
        )
        keep = removal_policy != RemovalPolicy.DESTROY
        # What the primary and its read replica share: where they run, who reaches them, the
        # TLS-required parameters, storage and upkeep.
        common: dict[str, Any] = {
            "instance_type": instance_type,
            "vpc": vpc,
            "vpc_subnets": subnets or _default_subnets(vpc),
            "security_groups": [self.security_group],
            "port": spec.port,
            "parameter_group": self.parameter_group,
            "max_allocated_storage": props.allocated_storage_gib * STORAGE_AUTOSCALING_FACTOR,
            "storage_type": rds.StorageType.GP3,
            "multi_az": props.multi_az,
            "auto_minor_version_upgrade": True,
            "cloudwatch_logs_exports": spec.log_exports,
            "publicly_accessible": False,
        }
        instance = rds.DatabaseInstance(
            self,
            "Resource",
            engine=spec.engine,
            database_name=database_name,
            credentials=rds.Credentials.from_secret(credentials_secret)
            if credentials_secret
            else rds.Credentials.from_generated_secret(
                "mlflow",
                # Shell- and URL-hostile characters would still work (the launcher quotes
                # them), but RDS itself refuses these in a master password.
                exclude_characters="\"@/\\' ",
            ),
            allocated_storage=props.allocated_storage_gib,
            storage_encrypted=True,
            backup_retention=Duration.days(props.backup_retention_days),
            copy_tags_to_snapshot=True,
            deletion_protection=keep,
            removal_policy=removal_policy,
            **common,
        )
        self.instance = instance
        self.read_replica = self._read_replica(common) if props.read_replica else None
        secret = instance.secret
        assert secret is not None  # both credential kinds attach a secret
        self.secret = secret
        if credentials_secret is None:
            self._keep_generated_secret(keep)
        # CDK's template validation, not cdk-nag: acknowledged directly (acknowledge() is for
        # cdk-nag's findings, which tests/compliance matches one for one).
        Validations.of(instance).acknowledge(
            Acknowledgment(
                id="CloudFormation-Validate::E9006",
                reason="The engine's major version alone (the validator lists only full "
                "versions): RDS "
                'accepts it and picks a recent minor (RDS User Guide, PostgreSQL versions: "If a '
                "major version is specified but a minor version is not, Amazon RDS defaults to a "
                "recent release\"; the same linter rule's false positive, cfn-lint issue #3849).",
            )
        )
        for created in (instance, self.read_replica):
            if created is None:
                continue
            acknowledge(
                created,
                "AwsSolutions-RDS11",
                "The engine's default port: the instance is in isolated subnets and its "
                "security group admits only the cluster security group; a non-standard port "
                "adds no protection against that one client.",
            )
            if not props.multi_az:
                acknowledge(
                    created,
                    "AwsSolutions-RDS3",
                    "Single-AZ because the `database.multi_az` setting is false (cost, for "
                    "small and test deployments); set it to true for production.",
                )

    def _read_replica(self, common: dict[str, Any]) -> rds.DatabaseInstanceReadReplica:
        # `common` keeps TLS required (the parameter group; RDS MySQL's `read_only` default
        # there is {TrueIfReplica}, so the replica refuses writes) and Multi-AZ as the primary:
        # the UI's lists read from the replica, so it needs the primary's availability. It
        # holds nothing the primary does not: no deletion protection, deleted with the stack.
        replica = rds.DatabaseInstanceReadReplica(
            self,
            "ReadReplica",
            source_database_instance=self.instance,
            deletion_protection=False,
            removal_policy=RemovalPolicy.DESTROY,
            **common,
        )
        acknowledge(
            replica,
            "AwsSolutions-RDS2",
            "Encrypted, with the source instance's key: a same-region replica of an encrypted "
            "instance is always encrypted, and CreateDBInstanceReadReplica takes no "
            "StorageEncrypted parameter (the value comes from the source).",
        )
        acknowledge(
            replica,
            "AwsSolutions-RDS10",
            "A read replica holds nothing its source does not: it is deleted with the stack "
            "(the source keeps deletion protection and its final snapshot).",
        )
        return replica

    @property
    def read_endpoint_address(self) -> str | None:
        """The read replica's DNS name (a token), or None without a replica."""
        return self.read_replica.db_instance_endpoint_address if self.read_replica else None

    def _keep_generated_secret(self, keep: bool) -> None:
        # `instance.secret` is the secret's attachment to the instance (its child); the
        # finding and the removal policy belong on the generated secret itself.
        generated_secret = self.instance.node.try_find_child("Secret")
        assert generated_secret is not None, "from_generated_secret creates the child Secret"
        # The credentials outlive the stack with the data they open (CDK deletes the secret
        # by default, leaving a snapshot or retained instance without its password).
        generated_secret.apply_removal_policy(  # type: ignore[attr-defined]
            RemovalPolicy.RETAIN if keep else RemovalPolicy.DESTROY
        )
        acknowledge(
            generated_secret,
            "AwsSolutions-SMG4",
            "No automatic rotation: the server reads the credentials once, at pod start, so a "
            "rotation would break new connections of running pods until they restart; and a "
            "rotation Lambda in the isolated subnets would need a Secrets Manager endpoint. "
            "Rotate deliberately, then restart the Deployment.",
        )

    def _server_login(self, keep: bool) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            "ServerLogin",
            description="MLflow server's database login (only MLflow's databases; the "
            "migration Job makes it with the master login)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=f'{{"username": "{SERVER_LOGIN}"}}',
                generate_string_key="password",
                password_length=32,
                # As the master password's: the launcher would quote any, but keep them plain.
                exclude_characters="\"@/\\' ",
            ),
            removal_policy=RemovalPolicy.RETAIN if keep else RemovalPolicy.DESTROY,
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "No automatic rotation: the pods read the login once, at start. Rotate by updating "
            "the secret and deploying: the migration Job sets the new password, and new pods "
            "use it.",
        )
        return secret

    @property
    def endpoint_address(self) -> str:
        """The instance's DNS name (a token)."""
        return self.instance.db_instance_endpoint_address
