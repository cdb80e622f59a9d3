"""The settings object: defaults derived from home, overrides, masking, folders, service env."""

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from components.settings import MASK, GradelineSettings, find_project_root, load_settings

LOCAL_DIRS = ["prefect", "data", "quarantine", "reports", "dvc-remote", "mlflow/artifacts"]


def test_locations_derive_from_home(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)

    assert settings.home == tmp_path.resolve()
    assert settings.mlflow_tracking_uri == f"sqlite:///{settings.home}/mlflow/mlflow.db"
    assert settings.mlflow_artifact_root == str(settings.home / "mlflow" / "artifacts")
    assert settings.prefect_home == settings.home / "prefect"
    assert settings.dvc_remote == str(settings.home / "dvc-remote")
    assert settings.prediction_log_uri == f"sqlite:///{settings.home}/predictions.db"
    assert settings.data_dir == settings.home / "data"
    assert settings.quarantine_dir == settings.home / "quarantine"
    assert settings.reports_dir == settings.home / "reports"


def test_env_vars_override_home_and_a_derived_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADELINE_HOME", str(tmp_path / "gl"))
    monkeypatch.setenv("GRADELINE_MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")

    settings = load_settings()

    assert settings.home == (tmp_path / "gl").resolve()
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert settings.data_dir == settings.home / "data"


def test_overrides_beat_env_vars_and_none_overrides_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADELINE_HOME", str(tmp_path / "from-env"))

    assert load_settings(home=tmp_path / "given").home == (tmp_path / "given").resolve()
    assert load_settings(home=None).home == (tmp_path / "from-env").resolve()
    assert load_settings(data_dir=tmp_path / "d").data_dir == (tmp_path / "d").resolve()


def test_unknown_override_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="mlflow_uri"):
        load_settings(home=tmp_path, mlflow_uri="sqlite:///x.db")


def test_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert load_settings(home="state").home == (tmp_path / "state").resolve()


def test_project_root_is_found_from_a_nested_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    nested = tmp_path / "flows" / "deep"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)

    assert find_project_root() == tmp_path.resolve()
    assert load_settings().home == tmp_path.resolve() / ".gradeline"


def test_project_root_falls_back_to_start(tmp_path: Path) -> None:
    folders = [tmp_path.resolve(), *tmp_path.resolve().parents]
    if any((f / m).is_file() for f in folders for m in ("params.yaml", "pyproject.toml")):
        pytest.skip("a folder above tmp_path looks like a project")

    assert find_project_root(tmp_path) == tmp_path.resolve()


def test_secrets_and_uri_passwords_are_masked_and_nothing_else(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path,
        mlflow_tracking_uri="postgresql://mlflow:hunter2@db:5432/mlflow",
        dvc_remote="s3://AKIAKEY:s3cret@bucket/dvc",
        s3_endpoint_url="http://127.0.0.1:9000",
        aws_region="eu-west-1",
        aws_access_key_id="AKIAKEY",
        aws_secret_access_key="topsecret",
        alert_url="slack://tokenA/tokenB/tokenC",
    )

    shown = settings.masked()

    assert set(shown) == set(GradelineSettings.model_fields)
    assert shown["mlflow_tracking_uri"] == f"postgresql://mlflow:{MASK}@db:5432/mlflow"
    assert shown["dvc_remote"] == f"s3://AKIAKEY:{MASK}@bucket/dvc"
    assert shown["aws_access_key_id"] == shown["aws_secret_access_key"] == MASK
    assert shown["alert_url"] == MASK
    assert shown["s3_endpoint_url"] == "http://127.0.0.1:9000"
    assert shown["aws_region"] == "eu-west-1"
    assert shown["home"] == str(tmp_path.resolve())
    assert shown["prediction_log_uri"] == f"sqlite:///{tmp_path.resolve()}/predictions.db"
    for secret in ("hunter2", "s3cret", "topsecret", "tokenA"):
        assert all(secret not in (value or "") for value in shown.values())


def test_unset_optional_settings_show_as_none(tmp_path: Path) -> None:
    shown = load_settings(home=tmp_path).masked()

    assert shown["alert_url"] is None
    assert shown["aws_access_key_id"] is None


def test_constructing_settings_creates_nothing(tmp_path: Path) -> None:
    load_settings(home=tmp_path / "home")

    assert list(tmp_path.iterdir()) == []


def test_ensure_dirs_creates_local_folders(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")

    assert settings.ensure_dirs() is settings
    for folder in LOCAL_DIRS:
        assert (settings.home / folder).is_dir(), folder


def test_ensure_dirs_leaves_remote_locations_alone(tmp_path: Path) -> None:
    load_settings(home=tmp_path, dvc_remote="s3://bucket/dvc").ensure_dirs()

    assert not (tmp_path / "dvc-remote").exists()
    assert not any("bucket" in str(path) for path in tmp_path.rglob("*"))


def test_service_env_without_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = load_settings(home=tmp_path)

    assert settings.service_env() == {
        "GRADELINE_HOME": str(tmp_path.resolve()),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "DO_NOT_TRACK": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        "GX_ANALYTICS_ENABLED": "false",
    }


def test_activate_creates_folders_and_exports_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "environ", os.environ.copy())  # activate() must not leak
    settings = load_settings(home=tmp_path / "home")

    settings.activate()

    assert settings.prefect_home.is_dir() and settings.reports_dir.is_dir()
    assert os.environ["PREFECT_HOME"] == str(settings.prefect_home)
    assert os.environ["MLFLOW_TRACKING_URI"] == settings.mlflow_tracking_uri
    # A later load_settings() in this process (or a child) agrees on the home folder.
    assert load_settings().home == settings.home


def test_service_env_reveals_aws_settings_for_the_tools(tmp_path: Path) -> None:
    settings = GradelineSettings(
        home=tmp_path,
        s3_endpoint_url="http://127.0.0.1:9000",
        aws_region="us-east-1",
        aws_access_key_id=SecretStr("AKIAKEY"),
        aws_secret_access_key=SecretStr("topsecret"),
    )

    env = settings.service_env()

    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAKEY"
    assert env["AWS_SECRET_ACCESS_KEY"] == "topsecret"


def test_a_database_password_reaches_only_the_mlflow_server_and_never_a_command_line(
        tmp_path: Path) -> None:
    from cli.supervisor import Stack, service_commands, service_envs

    settings = load_settings(home=tmp_path,
                             mlflow_tracking_uri="postgresql://gradeline:s3cret@db/mlflow")
    stack = Stack(tmp_path / "stack", 4200, 5000, "worker")

    commands = service_commands(stack, settings)
    assert not any("s3cret" in part for command in commands.values() for part in command)
    assert settings.mlflow_server_env()["MLFLOW_BACKEND_STORE_URI"].endswith("s3cret@db/mlflow")
    envs = service_envs(stack, settings)
    assert "s3cret" in envs["mlflow"]["MLFLOW_BACKEND_STORE_URI"]
    assert "MLFLOW_BACKEND_STORE_URI" not in envs["worker"]
    assert "PREFECT_SERVER_API_AUTH_STRING" not in envs["worker"] | envs["mlflow"]
    assert envs["worker"]["PREFECT_API_AUTH_STRING"] == \
        envs["prefect-server"]["PREFECT_SERVER_API_AUTH_STRING"]


CLUSTER = {"profile": "cluster", "mlflow_tracking_uri": "http://mlflow:5000",
           "prefect_api_url": "http://prefect:4200/api", "dvc_remote": "s3://data/dvc",
           "prediction_log_uri": "postgresql+psycopg://gradeline:pw@db/predictions"}


def test_the_cluster_profile_refuses_a_store_that_would_fall_back_to_the_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(ValidationError) as refused:
        load_settings(home=tmp_path, **{**CLUSTER, "dvc_remote": None,
                                        "prediction_log_uri": "sqlite:///x.db"})

    message = str(refused.value)
    assert "GRADELINE_DVC_REMOTE must name a DVC remote on S3" in message
    assert "GRADELINE_PREDICTION_LOG_URI must name a PostgreSQL database" in message
    assert "GRADELINE_MLFLOW_TRACKING_URI" not in message  # what is right is not named
    assert list(tmp_path.iterdir()) == []


def test_the_cluster_profile_exports_its_servers_credentials_to_the_tools(
        tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, **CLUSTER, mlflow_tracking_username="flows",
                             mlflow_tracking_password="pw1", prefect_api_auth_string="u:pw2")
    env = settings.service_env()

    assert settings.mlflow_artifact_root == "mlflow-artifacts:/"  # kept by the server
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("flows", "pw1")
    assert env["PREFECT_API_URL"] == "http://prefect:4200/api"
    assert env["PREFECT_API_AUTH_STRING"] == "u:pw2"
    assert settings.masked()["prefect_api_auth_string"] == MASK
    settings.ensure_dirs()
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "dvc-remote").exists()


def test_prefects_own_variables_are_read_too(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect:4200/api")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "u:pw")

    settings = load_settings(home=tmp_path)

    assert settings.prefect_api_url == "http://prefect:4200/api"
    assert settings.prefect_api_auth_string == SecretStr("u:pw")


def test_a_running_cluster_stacks_env_file_fills_what_the_environment_leaves_unset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "cluster.env").write_text("".join(
        f"GRADELINE_{name.upper()}={value}\n" for name, value in CLUSTER.items()))
    monkeypatch.setenv("GRADELINE_DVC_REMOTE", "s3://elsewhere/dvc")

    settings = load_settings(home=tmp_path)

    assert settings.profile == "cluster"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert settings.dvc_remote == "s3://elsewhere/dvc"  # the environment wins
    (tmp_path / "stack" / "cluster.env").unlink()  # `gradeline down`
    assert load_settings(home=tmp_path).profile == "embedded"
