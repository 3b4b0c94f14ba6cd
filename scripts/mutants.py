"""`make mutants`: break one guarded property at a time and check the tests catch it.

Each mutant edits one file of a temporary copy of the repository (git's tracked files) and runs
the test subset that must fail. The copy is imported as `mlflow_on_eks` through a path shim
(the dev venv's editable install points at the checkout). The launcher's integration tests run
the launcher installed in .venv-image, so for those mutants the installed copy is patched for
the run and restored after. Prints one line per mutant, CAUGHT or SURVIVED; exits 1 if any
survived. Slow (each subset synthesizes or starts servers): run it before resolving an issue that
touches a guarded property, not in CI.

    .venv/bin/python scripts/mutants.py [name ...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER_SRC = "image/launcher/src/mlflow_launcher/"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    """pytest arguments of the subset that must fail."""


MUTANTS = (
    Mutant(
        "artifacts need client credentials",
        f"{LAUNCHER_SRC}uvicorn_start.py",
        '        ARTIFACT_ROOT: PROXIED_ARTIFACT_ROOT,\n        SERVE_ARTIFACTS: "true",',
        '        ARTIFACT_ROOT: artifacts_destination,\n        SERVE_ARTIFACTS: "false",',
        ("tests/integration/test_chart_wiring.py", "-k", "postgres"),
    ),
    Mutant(
        "the workers started without MLflow's CLI lose the counters' folder",
        f"{LAUNCHER_SRC}uvicorn_start.py",
        "        added[PROMETHEUS_DIRECTORY] = counters",
        "        pass",
        ("tests/integration/test_uvicorn_start.py",),
    ),
    Mutant(
        "a graceful stop of a one-worker server ends killed by SIGTERM (143)",
        f"{LAUNCHER_SRC}uvicorn_main.py",
        "    signal.signal(signal.SIGTERM, _stopped)\n",
        "",
        ("tests/integration/test_signals.py",),
    ),
    Mutant(
        "the schema's head read as the first script's revision, not the last",
        f"{LAUNCHER_SRC}history.py",
        "heads = set(downs) - {d for down in downs.values() for d in down}",
        "heads = {next(iter(downs))}",
        ("tests/unit/launcher/test_launcher_history.py",),
    ),
    Mutant(
        "a down revision given as a name (not a literal) read as none",
        f"{LAUNCHER_SRC}history.py",
        "            except ValueError:\n                return None",
        "            except ValueError:\n                values[target.id] = None",
        ("tests/unit/launcher/test_launcher_history.py",),
    ),
    Mutant(
        "serve starts over SQL trace rollups left behind with rollups off",
        f"{LAUNCHER_SRC}cli.py",
        "    rollups.refuse_left_behind(check, {**os.environ, **srv.extra_env})\n",
        "",
        (
            "tests/integration/test_migrations.py::"
            "test_serve_refuses_trace_rollups_left_behind_with_rollups_off",
        ),
    ),
    Mutant(
        "the workers spawned, each importing MLflow's server again",
        f"{LAUNCHER_SRC}uvicorn_main.py",
        "        fork_workers_from_here()\n",
        "        pass\n",
        (
            "tests/integration/test_guard.py::"
            "test_the_workers_are_forked_from_the_supervisor_and_start_as_spawned_ones",
        ),
    ),
    Mutant(
        "forked workers keep the supervisor's signal handlers",
        f"{LAUNCHER_SRC}uvicorn_main.py",
        "        signal.signal(number, handler)\n",
        "        pass\n",
        (
            "tests/integration/test_guard.py::"
            "test_the_workers_are_forked_from_the_supervisor_and_start_as_spawned_ones",
        ),
    ),
    Mutant(
        "uvicorn's supervisor keeps listening while its workers drain",
        f"{LAUNCHER_SRC}uvicorn_main.py",
        "        listening.close()\n",
        "        pass\n",
        ("tests/integration/test_drain.py::test_in_flight_request_completes_after_sigterm[2]",),
    ),
    Mutant(
        "MySQL plain-text guard off",
        f"{LAUNCHER_SRC}wait.py",
        "if row is None or not row[1]:",
        "if False:",
        ("tests/unit/launcher/test_launcher_wait.py",),
    ),
    Mutant(
        "password forms not registered with the log mask",
        f"{LAUNCHER_SRC}cli.py",
        "        _redact.secrets += redaction.forms(value)",
        "        pass",
        ("tests/unit/launcher/test_launcher_redaction.py",),
    ),
    Mutant(
        "no TLS verification (PostgreSQL)",
        f"{LAUNCHER_SRC}dburl.py",
        '"sslmode": "verify-full"',
        '"sslmode": "require"',
        (
            "tests/unit/launcher/test_launcher_url.py",
            "tests/integration/test_tls.py",
            "-k",
            "postgres or url",
        ),
    ),
    Mutant(
        "no host name check (MySQL)",
        f"{LAUNCHER_SRC}dburl.py",
        '"ssl_mode": "VERIFY_IDENTITY"',
        '"ssl_mode": "REQUIRED"',
        ("tests/integration/test_tls.py", "-k", "another_host and mysql"),
    ),
    Mutant(
        "the database server may read the pod's files (LOAD DATA LOCAL)",
        f"{LAUNCHER_SRC}dburl.py",
        ', "local_infile": "0"}',
        "}",
        ("tests/integration/test_tls.py", "-k", "pods_files"),
    ),
    Mutant(
        "a MySQL connection the database closed is handed to a request",
        f"{LAUNCHER_SRC}app.py",
        "    lost_connections.install()  # before MLflow makes its engines\n",
        "",
        ("tests/integration/test_bounded_waits.py", "-k", "closed_are_replaced"),
    ),
    Mutant(
        "migrate at head imports MLflow",
        f"{LAUNCHER_SRC}auth.py",
        "    before, head = revisions(engine)\n",
        "    import mlflow.server.auth.db.utils  # noqa: F401\n"
        "    before, head = revisions(engine)\n",
        ("tests/integration/test_auth.py", "-k", "migrate_creates"),
    ),
    Mutant(
        "no migration lock",
        f"{LAUNCHER_SRC}schema.py",
        "with migration_lock(engine, lock_timeout):",
        "with contextlib.nullcontext():",
        ("tests/integration/test_migrations.py", "-k", "concurrent and postgres"),
    ),
    Mutant(
        "unbounded lock wait",
        f"{LAUNCHER_SRC}schema.py",
        "            if remaining <= 0:",
        "            if False:",
        ("tests/unit/launcher/test_launcher_lock.py",),
    ),
    Mutant(
        "NetworkPolicy admits PostgreSQL's port only",
        "k8s_charts/mlflow_chart.py",
        "egress=[dns(), egress(tcp(self.props.db_port, 443))]",
        "egress=[dns(), egress(tcp(5432, 443))]",
        ("tests/unit/test_stacks.py", "-k", "network_policy_admits"),
    ),
    Mutant(
        "read-only root filesystem off",
        "k8s_charts/hardening.py",
        "read_only_root_filesystem=True",
        "read_only_root_filesystem=False",
        ("tests/unit/test_chart.py", "-k", "locked_down"),
    ),
    Mutant(
        "load balancer names of any region (the old pattern)",
        "k8s_charts/mlflow_chart.py",
        'or f"*.elb.{self.region}.{self.url_suffix}"',
        'or "*.elb.amazonaws.com"',
        ("tests/unit/test_chart.py", "-k", "every_nlb_name_of_the_region"),
    ),
    Mutant(
        "every NLB name of the region allowed, not the deployment's own",
        "constructs_lib/tracking_server.py",
        "load_balancer_dns_names={kind: value.value for kind, value in hosts.items()},",
        "load_balancer_dns_names=None,",
        ("tests/unit/test_stacks.py", "-k", "load_balancers_come_first"),
    ),
    Mutant(
        "no browser origins",
        "k8s_charts/mlflow_chart.py",
        "                cors_allowed_origins=_allowed_origins(props),",
        "                cors_allowed_origins=[],",
        ("tests/unit/test_chart.py", "-k", "origins"),
    ),
    Mutant(
        "Deployment carries replicas (reset to 1 when autoscaling starts)",
        "k8s_charts/mlflow_chart.py",
        "replicas=None,  # owned by the autoscaler",
        "replicas=workload.replicas,  # owned by the autoscaler",
        ("tests/unit/test_chart.py", "-k", "autoscaler"),
    ),
    Mutant(
        "IRSA trust widened to every service account",
        "constructs_lib/irsa.py",
        'f"system:serviceaccount:{namespace}:{service_account}"',
        '"system:serviceaccount:*"',
        ("tests/unit/test_least_privilege.py", "-k", "own_role"),
    ),
    Mutant(
        "external load balancer on an old TLS policy",
        "k8s_charts/rules.py",
        'DEFAULT_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"',
        'DEFAULT_TLS_POLICY = "ELBSecurityPolicy-2016-08"',
        ("tests/unit/test_stacks.py", "-k", "modern_tls"),
    ),
    Mutant(
        "a TLS 1.0 policy allowed",
        "k8s_charts/rules.py",
        '    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",\n)',
        '    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",\n    "ELBSecurityPolicy-2016-08",\n)',
        ("tests/unit/test_settings.py", "-k", "ssl_policy"),
    ),
    Mutant(
        "internal load balancer without its certificate",
        "k8s_charts/mlflow_chart.py",
        "        if certificate_arn is not None:\n            annotations |= tls_annotations(",
        "        if certificate_arn is None:\n            annotations |= tls_annotations(",
        ("tests/unit/test_chart.py", "-k", "tls"),
    ),
    Mutant(
        "sign-in over plain HTTP not said at synth",
        "constructs_lib/tracking_server.py",
        'if props.sign_in and "internal" in props.service_names and not exposure.internal.tls:',
        "if False:",
        ("tests/unit/test_stacks.py", "-k", "plain_http"),
    ),
    Mutant(
        "the deploy check trusts any certificate",
        f"{LAUNCHER_SRC}verify/tls.py",
        "    if ca_bundle:\n        return ssl.create_default_context(cadata=ca_bundle)",
        "    if ca_bundle:\n        return ssl._create_unverified_context()",
        ("tests/integration/test_verify.py", "-k", "another-name"),
    ),
    Mutant(
        "RDS password may contain '@'",
        "constructs_lib/database.py",
        """RDS itself refuses these in a master password.
                exclude_characters="\\"@/\\\\' ",""",
        """RDS itself refuses these in a master password.
                exclude_characters="\\"/\\\\' ",""",
        ("tests/unit/test_stacks.py", "-k", "password_avoids"),
    ),
    Mutant(
        "review manifests not scanned for secrets",
        "tests/compliance/secret_scan.py",
        '    for path in sorted(p for p in directory.rglob("*") if p.is_file()):',
        '    for path in sorted(p for p in directory.rglob("*") if p.is_file() and'
        ' "manifests" not in p.parts):',
        ("tests/compliance/test_no_secrets.py", "-k", "cli_writes and default"),
    ),
    Mutant(
        "a warning in cdk synth",
        "stacks/data_stack.py",
        "        self.vpc = vpc.import_into(self) if isinstance(vpc, ExistingVpc) else vpc\n",
        "        self.vpc = vpc.import_into(self) if isinstance(vpc, ExistingVpc) else vpc\n"
        '        Annotations.of(self).add_warning_v2("mutant:x", "a new warning")\n',
        ("tests/compliance/test_cdk_synth_cli.py", "-k", "no_warnings and default"),
    ),
    Mutant(
        "deploy check starts before the workload is applied",
        "constructs_lib/deploy_check.py",
        "        self.manifest.node.add_dependency(workload_manifest)\n",
        "",
        ("tests/unit/test_deploy_check.py", "-k", "in_order"),
    ),
    Mutant(
        "deploy check does not wait for the rollout",
        "k8s_charts/deploy_check_chart.py",
        "                    deployment=server.instance,\n",
        "                    deployment=None,\n",
        ("tests/unit/test_deploy_check.py", "-k", "this_deploys_template and default"),
    ),
    Mutant(
        "a custom resource waits for the pods again",
        "constructs_lib/tracking_server.py",
        '                json_path=".status.loadBalancer.ingress[0].hostname",',
        '                json_path=".status.availableReplicas",',
        ("tests/unit/test_deploy_check.py", "-k", "waits_for_the_pods and default"),
    ),
    Mutant(
        "deploy check fails on a database failover",
        f"{LAUNCHER_SRC}verify/retry.py",
        "TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})",
        "TRANSIENT_STATUSES = frozenset({429, 502, 504})",
        ("tests/integration/test_verify.py", "-k", "failover"),
    ),
    Mutant(
        "an old launcher migrates a newer schema",
        f"{LAUNCHER_SRC}schema.py",
        "    if current is None or current in known:\n        return\n",
        "    return\n",
        ("tests/integration/test_migrations.py", "-k", "newer_mlflow and mysql-tracking"),
    ),
    Mutant(
        "reads never run again after the first deploy",
        "constructs_lib/deploy_check.py",
        '    resource.add_property_override("Revision", revision)',
        "    pass",
        ("tests/unit/test_deploy_check.py", "-k", "follow_the_revision"),
    ),
    Mutant(
        "the check's pod is selected as a server",
        "k8s_charts/deploy_check_chart.py",
        '        "app.kubernetes.io/name": "mlflow-deploy-check",',
        '        "app.kubernetes.io/name": "mlflow",',
        ("tests/unit/test_deploy_check.py", "-k", "never_selected and default"),
    ),
    Mutant(
        "deploy check skips the browser's Origin",
        f"{LAUNCHER_SRC}verify/__init__.py",
        "        check_browser_write(target, deadline, settings, auth)",
        "        pass",
        ("tests/integration/test_verify.py", "-k", "cors"),
    ),
    Mutant(
        "server started without sign-in",
        f"{LAUNCHER_SRC}uvicorn_start.py",
        '        "--factory",\n        APP,\n',
        '        "mlflow.server.fastapi_app:app",\n',
        ("tests/integration/test_auth.py", "-k", "anonymous and mysql"),
    ),
    Mutant(
        "an upload gives its transfer slot back before it is sent",
        f"{LAUNCHER_SRC}guard/asgi.py",
        "        held = [slot]\n",
        "        held: list[int] = []\n        self.slots.give_back(slot)\n",
        ("tests/integration/test_guard.py", "-k", "past_the_pods_count"),
    ),
    Mutant(
        "a client gone mid-upload taken for the end of its body: the cut upload is completed, "
        "not aborted",
        f"{LAUNCHER_SRC}stream_parts.py",
        "        except StopAsyncIteration:\n            return gathered, True",
        "        except Exception:\n            return gathered, True",
        (
            "tests/unit/launcher/test_launcher_stream.py",
            "tests/integration/test_large_artifacts.py",
            "-k",
            "gone_mid_body or stream_to_s3",
        ),
    ),
    Mutant(
        "proxied uploads spooled to scratch space again",
        f"{LAUNCHER_SRC}app.py",
        "    _stream_uploads(limits.max_artifact_bytes)\n",
        "",
        ("tests/integration/test_large_artifacts.py", "-k", "stream_to_s3"),
    ),
    Mutant(
        "proxied downloads spooled to scratch space again",
        f"{LAUNCHER_SRC}app.py",
        "        _stream_downloads(app)\n        return Guard(",
        "        return Guard(",
        ("tests/integration/test_large_artifacts.py", "-k", "proxied_transfers_stream"),
    ),
    Mutant(
        "a streamed download holds its transfer slot past its last byte",
        f"{LAUNCHER_SRC}guard/asgi.py",
        "        return ended or (self.declared is not None and self.sent >= self.declared)",
        "        return ended",
        ("tests/unit/launcher/test_launcher_guard.py", "-k", "declared_length"),
    ),
    Mutant(
        "an upload's body reaches MLflow in uvicorn's small pieces",
        f"{LAUNCHER_SRC}guard/asgi.py",
        "                if ended or joined >= UPLOAD_MESSAGE_BYTES:",
        "                if True:",
        ("tests/unit/launcher/test_launcher_guard.py", "-k", "joined_into_whole_messages"),
    ),
    Mutant(
        "compressed OTLP bodies left to MLflow to inflate",
        f"{LAUNCHER_SRC}guard/asgi.py",
        'if signed_in and otlp.encoded(path, _header(scope, b"content-encoding")):',
        'if False and otlp.encoded(path, _header(scope, b"content-encoding")):',
        ("tests/integration/test_guard.py", "-k", "otlp"),
    ),
    Mutant(
        "reads not routed to the read replica",
        f"{LAUNCHER_SRC}server.py",
        "        env[READ_REPLICA_URI_ENV] = read_uri",
        "        pass",
        ("tests/integration/test_read_replica.py", "-k", "reads_go and postgres"),
    ),
    Mutant(
        "MySQL parameter group refuses MLflow's triggers under binary logging",
        "constructs_lib/database.py",
        '                "log_bin_trust_function_creators": "1",\n',
        "",
        ("tests/integration/test_read_replica.py", "-k", "reads_go and mysql"),
    ),
    Mutant(
        "schema upgraded without a snapshot first",
        f"{LAUNCHER_SRC}schema.py",
        '            before_change(SchemaChange("tracking", before, head))',
        "            pass",
        ("tests/integration/test_migrations.py", "-k", "snapshot"),
    ),
    Mutant(
        "metrics port open to every address",
        "k8s_charts/mlflow_chart.py",
        "from_=[pods_in_namespaces(scrapers.namespace_labels, scrapers.pod_labels)],",
        "from_=None,",
        ("tests/unit/test_stacks.py", "-k", "metrics_port_admits_only_pods"),
    ),
    Mutant(
        "exporter waits for a request forever",
        f"{LAUNCHER_SRC}metrics.py",
        "async with asyncio.timeout(REQUEST_SECONDS):",
        "async with asyncio.timeout(None):",
        ("tests/integration/test_metrics.py", "-k", "surplus"),
    ),
    Mutant(
        "database wait without its deadline",
        f"{LAUNCHER_SRC}wait.py",
        "            if attempt == policy.attempts or remaining <= 0:",
        "            if attempt == policy.attempts:",
        ("tests/unit/launcher/test_launcher_wait.py", "-k", "deadline"),
    ),
    Mutant(
        "MySQL server connections without a statement bound",
        f"{LAUNCHER_SRC}dburl.py",
        '            query |= {"read_timeout": str(statement), "write_timeout": str(statement)}',
        "            pass",
        ("tests/unit/launcher/test_launcher_url.py", "-k", "mysql"),
    ),
    Mutant(
        "PostgreSQL connections wait on a silent peer",
        f"{LAUNCHER_SRC}dburl.py",
        '        "tcp_user_timeout": str(network * 1000),\n',
        "",
        ("tests/unit/launcher/test_launcher_url.py",),
    ),
    Mutant(
        "AWS clients on botocore's 60 s timeouts",
        f"{LAUNCHER_SRC}secret.py",
        "    core.set_default_client_config(",
        "    (",
        ("tests/unit/launcher/test_launcher_secret.py", "-k", "silent"),
    ),
    Mutant(
        "startup probe shorter than the start budget",
        "k8s_charts/contract.py",
        "    return math.ceil(budget / STARTUP_PROBE_PERIOD_SECONDS) + 1",
        "    return 36",
        ("tests/unit/launcher/test_start_budget.py", "-k", "outlasts and default"),
    ),
    Mutant(
        "single sign-on takes a token of any load balancer",
        f"{LAUNCHER_SRC}sso/token.py",
        '    if header.get("signer") != signer:',
        "    if False:",
        ("tests/unit/launcher/test_launcher_sso.py", "-k", "forged"),
    ),
    Mutant(
        "single sign-on takes an expired token",
        f"{LAUNCHER_SRC}sso/token.py",
        "    if expires + LEEWAY_SECONDS < now:",
        "    if False:",
        ("tests/unit/launcher/test_launcher_sso.py", "-k", "forged"),
    ),
    Mutant(
        "single sign-on takes the header from any address",
        f"{LAUNCHER_SRC}sso/sign_in.py",
        "        if not self._networks:",
        "        if True:",
        ("tests/integration/test_sso.py", "-k", "outside and mysql"),
    ),
    Mutant(
        "a first sign-in hashes outside the sign-in slots",
        f"{LAUNCHER_SRC}app.py",
        "    store.create_user = create_user\n",
        "",
        ("tests/integration/test_sso.py", "-k", "first_sign_ins and mysql"),
    ),
    Mutant(
        "uvicorn's 16 KiB of headers with single sign-on",
        f"{LAUNCHER_SRC}cli.py",
        "        env[UVICORN_HEADER_BYTES_ENV] = str(sso.HEADER_BYTES)\n",
        "",
        ("tests/integration/test_sso.py", "-k", "large_claims and mysql"),
    ),
    Mutant(
        "with single sign-on, MLflow's native routes lose its Basic path",
        f"{LAUNCHER_SRC}app.py",
        "        _basic_auth_without_token(auth)\n",
        "",
        ("tests/integration/test_sso.py", "-k", "unchanged and mysql"),
    ),
    Mutant(
        "gc run without a time limit",
        f"{LAUNCHER_SRC}gc.py",
        "    previous = signal.signal(signal.SIGALRM, expired)",
        "    previous = signal.signal(signal.SIGALRM, signal.SIG_IGN)",
        ("tests/unit/launcher/test_launcher_gc.py",),
    ),
    Mutant(
        "gc Job without a deadline",
        "k8s_charts/gc_job.py",
        "        active_deadline=cdk8s.Duration.seconds(GC_DEADLINE_SECONDS),\n",
        "",
        ("tests/unit/test_gc_templates.py", "-k", "hung"),
    ),
    Mutant(
        "load balancer alarms watch whichever load balancer comes first",
        "constructs_lib/load_balancer_handler.py",
        '            if balancer["DNSName"].lower() == wanted:',
        "            if balancer:",
        ("tests/unit/test_monitoring_templates.py", "-k", "any_name_shape"),
    ),
    Mutant(
        "a database engine's minor version pinned again",
        "constructs_lib/database_props.py",
        'ENGINE_MAJOR_VERSIONS: dict[str, str] = {"mysql": "8.4", "postgres": "17"}',
        'ENGINE_MAJOR_VERSIONS: dict[str, str] = {"mysql": "8.4.10", "postgres": "17"}',
        ("tests/unit/test_stacks.py", "-k", "engine_version and default"),
    ),
    Mutant(
        "extra arguments may give the launcher's own options",
        f"{LAUNCHER_SRC}contract.py",
        "    problems = [_refusal(flag) for flag in REFUSED_FLAGS if flag.given_by(arg)]",
        "    problems: list[str] = []",
        ("tests/unit/test_settings.py", "-k", "extra_args"),
    ),
    Mutant(
        "the launcher starts with refused extras from a hand-edited ConfigMap",
        f"{LAUNCHER_SRC}contract.py",
        "        problems = self.problems(value)",
        "        problems: list[str] = []",
        ("tests/integration/test_extras.py", "-k", "never_reaches"),
    ),
    Mutant(
        "extra variables never reach the server",
        f"{LAUNCHER_SRC}server.py",
        "        **(extra or {}),\n",
        "",
        ("tests/unit/launcher/test_launcher_extras.py", "-k", "under_the_launchers_own"),
    ),
    Mutant(
        "a new cluster's node pool without a ceiling",
        "k8s_charts/node_pool_chart.py",
        '                **({"limits": props.limits} if props.limits else {}),',
        "",
        ("tests/unit/test_day_one.py", "-k", "ceiling"),
    ),
    Mutant(
        "kubeconfig command in the CLI's default region",
        "stacks/mlflow_stack.py",
        'f"aws eks update-kubeconfig --region {self.region} --name',
        'f"aws eks update-kubeconfig --name',
        ("tests/integration/test_kubeconfig.py", "-k", "existing"),
    ),
    Mutant(
        "kubeconfig command without the admin role",
        "stacks/mlflow_stack.py",
        'f"{command} --role-arn {self._admin_role_arns[0]}",',
        "command,",
        ("tests/integration/test_kubeconfig.py", "-k", "as_its_admin and default"),
    ),
    Mutant(
        "kubeconfig command reads the cluster as the admin role instead of using it",
        "stacks/mlflow_stack.py",
        'f"{command} --role-arn {self._admin_role_arns[0]}",',
        'f"{command} --assume-role-arn {self._admin_role_arns[0]}",',
        ("tests/integration/test_kubeconfig.py", "-k", "as_its_admin and maximal"),
    ),
    Mutant(
        "a user's KMS key usable outside its service",
        "constructs_lib/workload_roles.py",
        '"kms:ViaService": f"{service}.{Stack.of(role).region}.amazonaws.com"',
        '"aws:ViaAWSService": "true"',
        ("tests/unit/test_least_privilege.py", "-k", "keys_are_used"),
    ),
    Mutant(
        "an existing bucket's prefix may hold an IAM wildcard",
        "constructs_lib/artifact_store.py",
        """_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9!_.'()-]+")""",
        """_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9!_.'()*-]+")""",
        ("tests/unit/test_settings.py", "-k", "bad_values and prefix"),
    ),
    Mutant(
        "a partial secret ARN, which grants every secret of that name's prefix",
        "k8s_charts/rules.py",
        'r"([A-Za-z0-9/_+=.@!-]{1,512})-[A-Za-z0-9]{6}"',
        'r"([A-Za-z0-9/_+=.@!-]{1,512})(?:-[A-Za-z0-9]{6})?"',
        ("tests/unit/test_settings.py", "-k", "bad_values and secret_arn"),
    ),
    Mutant(
        "the master login connects to MLflow's database, which an existing instance lacks",
        f"{LAUNCHER_SRC}cli.py",
        "            replace(db, name=dblogin.MAINTENANCE_DATABASE[db.engine]),",
        "            db,",
        ("tests/integration/test_db_login.py", "-k", "existing_instance and mysql"),
    ),
    Mutant(
        "jsii's node process keeps V8's per-core pool",
        "app.py",
        'if "--v8-pool-size" not in os.environ.get("NODE_OPTIONS", ""):',
        "if False:",
        ("tests/unit/test_cli.py", "-k", "jsii_node"),
    ),
    Mutant(
        "each test MariaDB bootstraps and runs in the shared /tmp",
        "tests/integration/itest_servers.py",
        'self.tmpdir = base / "tmp"',
        'self.tmpdir = Path("/tmp")',
        ("tests/integration/test_harness.py", "-k", "temporary_files"),
    ),
    Mutant(
        "a worker replays another worker's store as the superuser",
        "tests/integration/itest_template.py",
        """server.admin(f'SET ROLE "{owner}";\\n{dump}', database)""",
        "server.admin(dump, database)",
        ("tests/integration/test_harness.py", "-k", "replayed and postgres"),
    ),
)


def _copy(target: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for shared in (".venv", "node_modules"):  # tools, not code under test
        (target / shared).symlink_to(ROOT / shared)
    shim = target / ".mutant-shim" / "mlflow_on_eks"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(f"__path__ = [{str(target)!r}]\n")


def _installed_launcher() -> Path:
    found = sorted((ROOT / ".venv-image").glob("lib/python*/site-packages/mlflow_launcher"))
    assert found, "build .venv-image first (make .venv-image/.stamp)"
    return found[0]


def run(mutant: Mutant) -> bool:
    """True when the tests caught the mutant (failed), False when it survived."""
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        copy = Path(tmp)
        _copy(copy)
        target = copy / mutant.file
        text = target.read_text()
        assert text.count(mutant.old) == 1, f"{mutant.name}: the code changed, update the mutant"
        target.write_text(text.replace(mutant.old, mutant.new))
        installed = None
        if mutant.file.startswith(LAUNCHER_SRC):
            installed = _installed_launcher() / mutant.file.removeprefix(LAUNCHER_SRC)
            original = installed.read_text()
            installed.write_text(target.read_text())
        try:
            env = {
                **os.environ,
                "PYTHONPATH": str(copy / ".mutant-shim"),
                "MLFLOW_IMAGE_VENV": str(ROOT / ".venv-image"),
                "AWSCLI_VENV": str(ROOT / ".venv-awscli"),
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            }
            result = subprocess.run(
                [
                    str(ROOT / ".venv/bin/python"),
                    "-m",
                    "pytest",
                    "-x",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *mutant.tests,
                ],
                cwd=copy,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            if installed is not None:
                installed.write_text(original)
        if result.returncode == 5:
            raise SystemExit(f"{mutant.name}: no test selected by {mutant.tests}")
        return result.returncode != 0


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    survived = []
    for mutant in chosen:
        start = time.monotonic()
        caught = run(mutant)
        verdict = "CAUGHT  " if caught else "SURVIVED"
        print(f"{verdict} {mutant.name} ({time.monotonic() - start:.0f} s)", flush=True)
        if not caught:
            survived.append(mutant.name)
    print(f"{len(chosen) - len(survived)} caught, {len(survived)} survived")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
