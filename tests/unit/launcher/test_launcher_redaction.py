"""The password mask as the launcher wires it: `mlflow-launcher migrate` fetches the secret,
registers every form of the password with its log filter, and a failure whose message carries
the store URL (as a driver's may) reaches stderr, and the container's termination message,
masked."""

from types import SimpleNamespace
from urllib.parse import quote, quote_plus

from mlflow_launcher import cli, secret, wait
from mlflow_launcher.errors import LauncherError
from mlflow_launcher.secret import Credentials

PASSWORD = "pa:ss@w/rd?#[]%&+= ümlaut-and-more"


def _fail_connecting_with_the_password_in_the_message(monkeypatch, tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    for name, value in {
        "MLFLOW_DB_ENGINE": "mysql",
        "MLFLOW_DB_HOST": "db.internal",
        "MLFLOW_DB_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf",
        "MLFLOW_DB_CA_BUNDLE": str(ca),
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        secret, "fetch_credentials", lambda *_args, **_kw: Credentials("mlflow", PASSWORD)
    )

    def driver_echoes_its_url(engine, _policy, *, ca_bundle):
        # The URL as the server gets it (percent-encoded), and the raw password as a driver
        # might quote it in an error.
        url = engine.url.render_as_string(hide_password=False)
        raise LauncherError(f"cannot connect to {url} (password {PASSWORD!s})")

    # No driver here: the engine only needs to carry the URL the launcher built.
    monkeypatch.setattr(wait, "make_engine", lambda url: SimpleNamespace(url=url))
    monkeypatch.setattr(wait, "wait_for_database", driver_echoes_its_url)


def _forms() -> set[str]:
    return {PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD)}


def test_a_url_with_the_password_reaches_stderr_masked(monkeypatch, tmp_path, capfd):
    _fail_connecting_with_the_password_in_the_message(monkeypatch, tmp_path)
    assert cli.main(["migrate"]) == 2
    err = capfd.readouterr().err
    assert "cannot connect to mysql+mysqldb://mlflow:***@db.internal" in err, err
    for form in _forms():
        assert form not in err


def test_the_error_is_the_containers_termination_message_masked(monkeypatch, tmp_path):
    """The kubelet shows it in the pod's status (lastState.terminated.message), where the
    deploy check reads why a pod of the rollout cannot start."""
    log = tmp_path / "termination-log"
    log.write_text("")  # the kubelet mounts it before the container starts
    monkeypatch.setattr(cli, "TERMINATION_LOG", str(log))
    _fail_connecting_with_the_password_in_the_message(monkeypatch, tmp_path)
    assert cli.main(["migrate"]) == 2
    message = log.read_text()
    assert message.startswith("cannot connect to mysql+mysqldb://mlflow:***@db.internal"), message
    for form in _forms():
        assert form not in message


def test_no_termination_log_is_created_outside_a_container(monkeypatch, tmp_path):
    missing = tmp_path / "termination-log"
    monkeypatch.setattr(cli, "TERMINATION_LOG", str(missing))
    _fail_connecting_with_the_password_in_the_message(monkeypatch, tmp_path)
    assert cli.main(["migrate"]) == 2
    assert not missing.exists()
