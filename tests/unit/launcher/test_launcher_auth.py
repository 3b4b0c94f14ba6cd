"""The basic-auth settings (all or nothing, checked), the config file MLflow reads back with
ConfigParser's interpolation, and the environment that carries the secrets to the server."""

import configparser
import stat

import pytest
from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.schema import CreateTable

from mlflow_launcher import auth, secret
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.server import server_env as full_server_env

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow-auth-{}"
SETTINGS = {
    "MLFLOW_AUTH_ADMIN_SECRET_ID": ARN.format("admin"),
    "MLFLOW_AUTH_FLASK_SECRET_ID": ARN.format("flask"),
    "MLFLOW_AUTH_KEK_SECRET_ID": ARN.format("kek"),
    "MLFLOW_AUTH_DEFAULT_PERMISSION": "READ",
    "MLFLOW_AUTH_DB_NAME": "mlflow_auth",
}
# Characters that percent-encode in a URL, and `%(name)s`, ConfigParser's interpolation syntax.
DB_PASSWORD = "p%(x)s a%25:@/#?'\"\\ä-密"
SECRETS = auth.AuthSecrets(
    admin=secret.Credentials("admin", "admin-Pa%ss:w@rd/#-🔑"),
    flask_secret_key="flask-key-%-do-not-print",
    kek_passphrase="kek-passphrase-%(x)s-do-not-print",
)


def test_no_variable_means_authentication_off():
    assert auth.load({}) is None
    assert auth.load({"MLFLOW_DB_NAME": "mlflow"}) is None
    assert auth.load(dict.fromkeys(SETTINGS, "")) is None  # set but empty is unset


def test_all_variables_give_the_settings():
    assert auth.load(SETTINGS) == auth.AuthEnvironment(
        admin_secret_id=ARN.format("admin"),
        flask_secret_id=ARN.format("flask"),
        kek_secret_id=ARN.format("kek"),
        default_permission="READ",
        db_name="mlflow_auth",
    )


@pytest.mark.parametrize(
    "present",
    [
        ["MLFLOW_AUTH_ADMIN_SECRET_ID"],
        ["MLFLOW_AUTH_DEFAULT_PERMISSION", "MLFLOW_AUTH_DB_NAME"],
        [k for k in SETTINGS if k != "MLFLOW_AUTH_KEK_SECRET_ID"],
    ],
)
def test_half_configured_is_an_error_naming_what_is_missing(present):
    env = {key: SETTINGS[key] for key in present}
    with pytest.raises(LauncherError) as err:
        auth.load(env)
    message = str(err.value)
    assert "half configured" in message
    for key in SETTINGS:
        assert (key in message) == (key not in present), key
    assert ARN.format("admin") not in message


def test_an_empty_variable_counts_as_missing():
    with pytest.raises(LauncherError, match="MLFLOW_AUTH_FLASK_SECRET_ID unset"):
        auth.load({**SETTINGS, "MLFLOW_AUTH_FLASK_SECRET_ID": ""})


@pytest.mark.parametrize("permission", ["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"])
def test_mlflow_permissions_are_accepted(permission):
    settings = auth.load({**SETTINGS, "MLFLOW_AUTH_DEFAULT_PERMISSION": permission})
    assert settings is not None and settings.default_permission == permission


def test_a_permission_is_read_without_surrounding_spaces():
    """As every variable of the contract: a stray space in a hand-edited ConfigMap."""
    settings = auth.load({**SETTINGS, "MLFLOW_AUTH_DEFAULT_PERMISSION": " EDIT "})
    assert settings is not None and settings.default_permission == "EDIT"


@pytest.mark.parametrize("permission", ["read", "DENY", "ALL", "RE AD", "EDIT,READ"])
def test_other_permissions_are_refused(permission):
    with pytest.raises(LauncherError) as err:
        auth.load({**SETTINGS, "MLFLOW_AUTH_DEFAULT_PERMISSION": permission})
    assert "MLFLOW_AUTH_DEFAULT_PERMISSION" in str(err.value)
    assert "READ, USE, EDIT, MANAGE, NO_PERMISSIONS" in str(err.value)


@pytest.mark.parametrize("name", ["mlflow_auth", "A", "_x", "a" * 63])
def test_plain_database_names_are_accepted(name):
    settings = auth.load({**SETTINGS, "MLFLOW_AUTH_DB_NAME": name})
    assert settings is not None and settings.db_name == name


@pytest.mark.parametrize(
    "name",
    ["mlflow-auth", "1auth", "auth`; DROP DATABASE mlflow; --", 'a"b', "a b", "a" * 64, "ä"],
)
def test_database_names_needing_quotes_are_refused(name):
    with pytest.raises(LauncherError) as err:
        auth.load({**SETTINGS, "MLFLOW_AUTH_DB_NAME": name})
    assert "MLFLOW_AUTH_DB_NAME" in str(err.value) and "plain database name" in str(err.value)


def test_the_auth_database_is_the_stores_server_and_login():
    store = URL.create(
        "mysql+mysqldb",
        username="mlflow",
        password=DB_PASSWORD,
        host="db.example",
        port=3306,
        database="mlflow",
        query={"ssl_ca": "/ca.pem", "ssl_mode": "VERIFY_IDENTITY"},
    )
    settings = auth.load(SETTINGS)
    assert settings is not None
    url = auth.database_url(store, settings)
    assert url.database == "mlflow_auth"
    assert url.set(database="mlflow") == store


def _read_as_mlflow_does(path):
    """mlflow.server.auth.config.read_auth_config: ConfigParser() with its default
    (basic) interpolation, values read by item."""
    config = configparser.ConfigParser()
    assert config.read(path) == [str(path)]
    return {key: config["mlflow"][key] for key in config["mlflow"]}


def test_config_round_trips_through_configparser_as_mlflow_reads_it(tmp_path):
    uri = URL.create(
        "postgresql+psycopg2",
        username="mlflow",
        password=DB_PASSWORD,
        host="db.example",
        database="mlflow_auth",
        query={"sslmode": "verify-full", "sslrootcert": "/ca.pem"},
    ).render_as_string(hide_password=False)
    assert "%" in uri and "%(" not in uri  # percent-encoded: `%` of the password is %25
    path = auth.write_config(
        tmp_path, database_uri=uri, default_permission="READ", admin_username="ad%min"
    )
    assert path == tmp_path / "mlflow-auth" / "basic_auth.ini"
    read = _read_as_mlflow_does(path)
    assert read == {
        "default_permission": "READ",
        "database_uri": uri,
        "admin_username": "ad%min",
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": "0",
        "grant_default_workspace_access": "false",
    }
    assert make_url(read["database_uri"]).password == DB_PASSWORD


def test_the_sign_in_cache_reaches_mlflow_as_its_ttl(tmp_path):
    settings = auth.load({**SETTINGS, auth.CACHE_ENV: "30"})
    assert settings is not None and settings.cache_seconds == 30
    path = auth.write_config(
        tmp_path,
        database_uri="sqlite:///a.db",
        default_permission="READ",
        admin_username="a",
        cache_seconds=settings.cache_seconds,
    )
    assert _read_as_mlflow_does(path)["auth_cache_ttl_seconds"] == "30"
    # Without the variable, the contract's one default: the chart's too (it was 0 here, 30
    # in the chart, until both read the declaration).
    assert auth.load(SETTINGS).cache_seconds == 30


@pytest.mark.parametrize("value", ["-1", "30s", "1.5", "3601"])
def test_a_bad_sign_in_cache_is_refused(value):
    expected = (
        f"MLFLOW_AUTH_CACHE_SECONDS must be a whole number of seconds from 0 to 3600, got {value!r}"
    )
    with pytest.raises(LauncherError) as err:
        auth.load({**SETTINGS, auth.CACHE_ENV: value})
    assert expected in str(err.value)
    assert err.value.exit_code == 2


def test_config_is_private_and_rewritten_on_each_start(tmp_path):
    first = auth.write_config(
        tmp_path, database_uri="sqlite:///a.db", default_permission="READ", admin_username="a"
    )
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
    second = auth.write_config(
        tmp_path, database_uri="sqlite:///b.db", default_permission="EDIT", admin_username="b"
    )
    assert second == first
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    read = _read_as_mlflow_does(second)
    assert (read["database_uri"], read["default_permission"]) == ("sqlite:///b.db", "EDIT")
    assert "sqlite:///a.db" not in second.read_text()


def test_config_holds_no_secret_but_the_database_uri(tmp_path):
    path = auth.write_config(
        tmp_path, database_uri="sqlite:///a.db", default_permission="READ", admin_username="a"
    )
    text = path.read_text()
    for value in SECRETS.values():
        assert value not in text
        assert value.replace("%", "%%") not in text


def test_server_env_carries_the_secrets_for_mlflow(tmp_path):
    config = tmp_path / "mlflow-auth" / "basic_auth.ini"
    assert auth.server_env(SECRETS, config) == {
        "MLFLOW_ON_EKS_AUTH": "basic-auth",
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-Pa%ss:w@rd/#-🔑",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-key-%-do-not-print",
        "MLFLOW_CRYPTO_KEK_PASSPHRASE": "kek-passphrase-%(x)s-do-not-print",
    }


def test_the_servers_environment_has_the_secrets_and_not_their_arns(tmp_path):
    pod = {**SETTINGS, "MLFLOW_DB_SECRET_ID": ARN.format("db"), "AWS_REGION": "eu-west-1"}
    secrets_env = auth.server_env(SECRETS, tmp_path / "basic_auth.ini")
    env = full_server_env(pod, "mysql+mysqldb://u:p@h/db", secrets_env)
    assert {k: env[k] for k in secrets_env} == secrets_env
    for key in ("MLFLOW_AUTH_ADMIN_SECRET_ID", "MLFLOW_AUTH_FLASK_SECRET_ID"):
        assert key not in env
    assert "MLFLOW_AUTH_KEK_SECRET_ID" not in env and "MLFLOW_DB_SECRET_ID" not in env
    # The non-secret settings are harmless to MLflow and stay.
    assert env["MLFLOW_AUTH_DEFAULT_PERMISSION"] == "READ"


def test_secrets_never_show_in_a_repr():
    shown = repr(SECRETS)
    for value in SECRETS.values():
        assert value not in shown
    assert "admin" in shown


def test_mysqls_first_auth_revision_names_its_foreign_keys_apart():
    """MySQL wants constraint names unique in a database; MLflow's first auth revision names
    both of its foreign keys fk_user_id (mlflow/mlflow#9642), so the launcher makes it there."""
    metadata = auth._initial_tables()
    assert sorted(metadata.tables) == [
        "experiment_permissions",
        "registered_model_permissions",
        "users",
    ]
    names = [
        constraint.name
        for table in metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, ForeignKeyConstraint)
    ]
    assert sorted(names) == ["fk_registered_model_perm_user_id", "fk_user_id"]
    ddl = " ".join(
        str(CreateTable(t).compile(dialect=mysql.dialect())) for t in metadata.sorted_tables
    )
    assert ddl.count("CONSTRAINT fk_user_id FOREIGN KEY") == 1


def test_the_workspace_grant_reaches_mlflow_and_defaults_to_keeping_default_open(tmp_path):
    """true unless the chart says otherwise: turning workspaces on must not take away what
    default_permission gave every user in the workspace that holds all earlier work."""
    assert auth.load(SETTINGS).grant_default_workspace_access is True
    off = auth.load({**SETTINGS, "MLFLOW_AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS": "false"})
    assert off is not None and off.grant_default_workspace_access is False
    for grant in (True, False):
        path = auth.write_config(
            tmp_path,
            database_uri="sqlite:///a.db",
            default_permission="READ",
            admin_username="a",
            grant_default_workspace_access=grant,
        )
        parser = configparser.ConfigParser()
        parser.read(path)
        # MLflow reads it with getboolean (mlflow/server/auth/config.py).
        assert parser.getboolean("mlflow", "grant_default_workspace_access") is grant


def test_a_bad_workspace_grant_is_refused():
    with pytest.raises(LauncherError) as err:
        auth.load({**SETTINGS, "MLFLOW_AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS": "yes"})
    assert "MLFLOW_AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS must be true or false, got 'yes'" in str(
        err.value
    )
