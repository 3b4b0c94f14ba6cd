"""The environment contract (mlflow_launcher/contract.py): one declaration per variable, which
the chart renders with and the launcher parses with. These tests hold the declarations to
that: whatever the chart may render, the launcher reads back unchanged; what the launcher
refuses, the chart cannot render; every variable a synthesized manifest sets is declared; and
the module stays loadable where the chart loads it (standard library only)."""

from __future__ import annotations

import ast
import re
import sys
from typing import Any

import pytest

from mlflow_launcher import contract as launcher_side
from mlflow_launcher import settings
from mlflow_launcher.errors import LauncherError
from mlflow_on_eks.k8s_charts.launcher_contract import CONTRACT_PATH, launcher
from tests.conftest import ROOT, Synth

VARIABLES = launcher.declared()
C = launcher
PATTERNED_EXAMPLES: dict[str, Any] = {
    "MLFLOW_GC_OLDER_THAN": "1.5d12h",
    "MLFLOW_GC_TRACKING_URI": "http://mlflow.ns",
    "MLFLOW_TRACE_ARCHIVAL_RETENTION": "30d",
    "MLFLOW_SSO_ALB_ARN": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
    "loadbalancer/app/k8s-mlflow-sso-0a1b2c3d4e/50dc6c495c0c9188",
    "MLFLOW_SSO_KEY_URL": "https://public-keys.auth.elb.eu-west-1.amazonaws.com/",
    "MLFLOW_SSO_CLIENT_SECRET_ID": (
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:oidc-AbC123"
    ),
    "MLFLOW_VERIFY_CA_BUNDLE": "-----BEGIN CERTIFICATE-----\nMIIB/zCC\n-----END CERTIFICATE-----",
    "MLFLOW_VERIFY_CONNECT_TO": (
        "mlflow.internal.example.com=k8s-mlflow-mlflowin-0a1b2c3d4e-0123456789abcdef.elb."
        "eu-west-1.amazonaws.com",
    ),
}
CLAIM_REFUSALS = ["with space", "claim\u00e9", "x" * 129]
PATTERNED_REFUSALS = {
    "MLFLOW_SSO_USERNAME_CLAIM": CLAIM_REFUSALS,
    "MLFLOW_SSO_GROUPS_CLAIM": CLAIM_REFUSALS,
}
"""Where the generic refusals below are valid values."""
LIST_EXAMPLES = {"MLFLOW_SSO_TRUSTED_CIDRS": ("10.0.0.0/24", "fd00:10::/64")}


def _valid(variable: Any) -> list[Any]:
    """Values the declaration admits: its default, and its bounds where it has them."""
    if isinstance(variable, C.Choice):
        return list(variable.choices)
    if isinstance(variable, C.Integer):
        return [variable.low, variable.high or variable.low + 1000]
    if isinstance(variable, C.Number):
        return [0.5, 90.0, 1e6]
    if isinstance(variable, C.TextList):
        default = ("https://mlflow.example.com", "http://127.0.0.1:5000")
        return [PATTERNED_EXAMPLES.get(variable.name, LIST_EXAMPLES.get(variable.name, default))]
    if isinstance(variable, C.ArgList):
        return [(), ("--x-frame-options", "DENY", "--secrets-cache-ttl=30", 'ünï "quoted" $HOME')]
    if isinstance(variable, C.EnvMap):
        return [{}, {"MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS": "20", "EMPTY": "", "Q": '"a b"'}]
    if variable.default is not None:
        return [variable.default]
    return [PATTERNED_EXAMPLES.get(variable.name, "a-value_1")]


def _invalid(variable: Any) -> list[str]:
    """Texts the declaration refuses (what a hand-edited ConfigMap might hold)."""
    if isinstance(variable, C.Choice):
        return [variable.choices[0].lower() + "x", "DENY"]
    if isinstance(variable, C.Integer):
        out = ["1.5", "ten", "-1"]
        if variable.high is not None:
            out.append(str(variable.high + 1))
        if variable.low > 0:
            out.append(str(variable.low - 1))
        return out
    if isinstance(variable, C.Number):
        return ["0", "-5", "inf", "nan", "abc"]
    if isinstance(variable, C.TextList) and variable.item is not None:
        return ["mlflow.example.com", "https://mlflow.example.com/path"]
    if isinstance(variable, C.Text) and variable.pattern is not None:
        return PATTERNED_REFUSALS.get(variable.name, ["with space", "ftp://x;y"])
    return []


ROUND_TRIPS = [(name, value) for name, v in VARIABLES.items() for value in _valid(v)]
REFUSALS = [(name, text) for name, v in VARIABLES.items() for text in _invalid(v)]


@pytest.mark.parametrize(("name", "value"), ROUND_TRIPS)
def test_what_the_chart_renders_the_launcher_reads_back(name, value):
    variable = VARIABLES[name]
    assert variable.parse({name: variable.render(value)}) == value


@pytest.mark.parametrize(("name", "text"), REFUSALS)
def test_a_value_the_launcher_refuses_the_chart_cannot_render(name, text):
    variable = VARIABLES[name]
    with pytest.raises(C.ContractError) as parsed:
        variable.parse({name: text})
    assert str(parsed.value) == f"{name} must be {variable.what()}, got {text!r}"
    # The chart renders values, not texts; the text as a value (an int where one parses) must
    # meet the same refusal.
    value: Any = int(text) if text.lstrip("-").isdigit() else text
    if isinstance(variable, C.TextList):
        value = (text,)
    with pytest.raises(C.ContractError, match=f"^{name} must be "):
        variable.render(value)


def test_the_launcher_reports_a_bad_value_as_an_invalid_environment_with_exit_code_2():
    env = {"MLFLOW_DB_WAIT_SECONDS": "abc", "MLFLOW_AUTH_CACHE_SECONDS": "3601"}
    with pytest.raises(LauncherError) as err:
        settings.parse(env, launcher_side.DB_WAIT_SECONDS, launcher_side.AUTH_CACHE_SECONDS)
    assert str(err.value) == (
        "invalid environment: MLFLOW_DB_WAIT_SECONDS must be a positive number of seconds, "
        "got 'abc'; MLFLOW_AUTH_CACHE_SECONDS must be a whole number of seconds from 0 to "
        "3600, got '3601'"
    )
    assert err.value.exit_code == 2


def test_the_bounds_the_issue_names_are_the_configs_too():
    """The sign-in cache's 3600, the workers' 16 and the permission list: the config model
    refuses what the launcher would (it reads the same declarations)."""
    from mlflow_on_eks.k8s_charts import AuthProps, WorkloadProps
    from mlflow_on_eks.k8s_charts.auth import PERMISSIONS

    assert launcher.AUTH_DEFAULT_PERMISSION.choices == PERMISSIONS
    assert AuthProps().sign_in_cache_seconds == 30  # the launcher's default: one number
    assert AuthProps(sign_in_cache_seconds=3600).sign_in_cache_seconds == 3600
    with pytest.raises(ValueError, match="sign_in_cache_seconds"):
        AuthProps(sign_in_cache_seconds=3601)
    with pytest.raises(ValueError, match="workers"):
        WorkloadProps(workers=17)
    assert WorkloadProps().workers == launcher.WORKERS.default


def test_a_required_variable_unset_is_named():
    with pytest.raises(C.ContractError, match=r"^MLFLOW_DB_HOST is not set$"):
        launcher.DB_HOST.parse({"MLFLOW_DB_HOST": "  "})
    assert launcher.DB_READ_HOST.parse({}) is None  # optional, no default
    assert launcher.DB_WAIT_SECONDS.parse({}) == 90  # optional, defaulted


def _written(synth: Synth) -> dict[str, set[str]]:
    """Every variable a synthesized manifest sets for a container, by where it is set."""
    found: dict[str, set[str]] = {}
    for config_map in synth.objects("ConfigMap"):
        where = f"ConfigMap {config_map['metadata']['name']}"
        found[where] = set(config_map.get("data", {}))
    for kind in ("Deployment", "Job", "CronJob"):
        for workload in synth.objects(kind):
            spec = workload["spec"]
            pod = spec.get("jobTemplate", {}).get("spec", spec)["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                where = f"{kind} {workload['metadata']['name']}/{container['name']}"
                found[where] = {item["name"] for item in container.get("env", [])}
    return found


def test_every_variable_a_manifest_sets_is_declared(each_config: Synth):
    written = _written(each_config)
    assert any(w.startswith("ConfigMap") and names for w, names in written.items())
    undeclared = {w: sorted(names - set(VARIABLES)) for w, names in written.items()}
    assert not {w: names for w, names in undeclared.items() if names}


def test_every_value_the_server_configmap_holds_is_one_the_launcher_accepts(each_config: Synth):
    [config_map] = [
        c for c in each_config.objects("ConfigMap") if "MLFLOW_DB_ENGINE" in c.get("data", {})
    ]
    data = dict(config_map["data"])
    # What the sign-in ALB's lookup answers at deploy time, in the shape ELB and EC2 give it
    # (the placeholders themselves are deploy-time values the chart writes unchecked).
    deploy_time = {
        ".Arn}": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/"
        "k8s-mlflow-mlflowss-0a1b2c3d4e/50dc6c495c0c9188",
        ".SubnetCidrs}": "10.0.0.0/19,10.0.32.0/19",
    }
    for name, value in data.items():
        for suffix, answer in deploy_time.items():
            if value.startswith("${GetAtt:") and value.endswith(suffix):
                data[name] = answer
    values = launcher.parse(data, [VARIABLES[name] for name in data])
    assert values["MLFLOW_WORKERS"] == each_config.settings.server.workers


def test_the_module_imports_only_the_standard_library():
    """The chart loads it by path into a venv without the launcher or its dependencies."""
    tree = ast.parse(CONTRACT_PATH.read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported


def test_the_chart_loads_the_file_the_image_ships():
    assert CONTRACT_PATH.samefile(launcher_side.__file__)
    assert launcher.__name__ != launcher_side.__name__  # a private name: no clash with the image's


def _stated_defaults() -> list[tuple[str, str]]:
    """(variable, default) as docs/operations.md states them, in prose ("`NAME` (default 5)",
    "`NAME`, default 30") and in its tables ("| `NAME` | 90 |"), for declared variables."""
    text = (ROOT / "docs" / "operations.md").read_text()
    prose = re.findall(r"`([A-Z][A-Z0-9_]+)`,? \(?default (\d+)", text)
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| (\d+) \|", text, flags=re.MULTILINE)
    return [(name, value) for name, value in prose + rows if name in VARIABLES]


def test_the_defaults_the_operations_guide_states_are_the_declared_ones():
    stated = _stated_defaults()
    assert len(stated) >= 8  # the bounds table and the prose both found
    wrong = {n: v for n, v in stated if VARIABLES[n].render(VARIABLES[n].default) != v}
    assert not wrong, "docs/operations.md states other defaults than the contract declares"


def test_the_charts_single_sign_on_settings_are_what_the_launcher_reads():
    from mlflow_on_eks.k8s_charts.contract import sso_environment

    arn = PATTERNED_EXAMPLES["MLFLOW_SSO_ALB_ARN"]
    env = sso_environment(
        alb_arn=arn,
        username_claim="preferred_username",
        groups_claim="cognito:groups",
        admin_group="mlflow-admins",
        issuer="https://login.example.com/tenant",
        client_id="mlflow",
        trusted_cidrs=["10.0.0.0/24", "10.0.1.0/24"],
    )
    config = settings.load_sso(env)
    assert config is not None
    assert (config.alb_arn, config.username_claim, config.groups_claim) == (
        arn,
        "preferred_username",
        "cognito:groups",
    )
    assert (config.admin_group, config.issuer, config.client_id) == (
        "mlflow-admins",
        "https://login.example.com/tenant",
        "mlflow",
    )
    assert [str(n) for n in config.trusted_networks] == ["10.0.0.0/24", "10.0.1.0/24"]
    assert config.aws_keys  # the chart never names a key URL
    # Defaults stay the launcher's: nothing rendered for them.
    assert sso_environment(alb_arn=arn) == {"MLFLOW_SSO_ALB_ARN": arn}
    # The ARN read back at deploy time is a token at synth: written as is.
    token = "${Token[TOKEN.1234]}"
    assert sso_environment(alb_arn=token)["MLFLOW_SSO_ALB_ARN"] == token
    with pytest.raises(C.ContractError, match="MLFLOW_SSO_ALB_ARN must be"):
        sso_environment(alb_arn="arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/net/a/1")
    with pytest.raises(C.ContractError, match="MLFLOW_SSO_TRUSTED_CIDRS must be"):
        sso_environment(alb_arn=arn, trusted_cidrs=["10.0.0.1/24"])
