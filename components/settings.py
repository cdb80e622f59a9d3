"""The one settings object of Gradeline: where every piece of local state lives, and service keys.

In the `embedded` profile (the default) all state (MLflow, Prefect, DVC remote, prediction log,
data) lives under one home folder, `GRADELINE_HOME` (default `.gradeline/` in the project root);
each location derives from it unless set on its own. The `cluster` profile keeps every store on
shared servers instead (MLflow's tracking server, Prefect's API, a DVC remote on S3, the
prediction log on a database server) and refuses settings that would fall back to the home.
Every field reads the environment variable `GRADELINE_<FIELD>`; while `gradeline up --profile
cluster` runs for a home, its `stack/cluster.env` supplies what the environment leaves unset.

    from components.settings import load_settings
    settings = load_settings(home="/tmp/gl").ensure_dirs()
    os.environ.update(settings.service_env())

Nothing happens at import time: no instance is built and no folder is created until asked.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MASK = "********"
CLUSTER_ENV_FILE = Path("stack") / "cluster.env"  # under the home; written by `gradeline up`
_ROOT_MARKERS = ("params.yaml", "pyproject.toml")
# user:password@ right after a scheme; only the password part is replaced.
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*:)[^@/\s]+(?P<tail>@)")


def find_project_root(start: Path | None = None) -> Path:
    """First folder from `start` (default cwd) upwards with params.yaml or pyproject.toml, else
    `start` itself, so that state lands in the project whichever subfolder a command runs from."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).is_file() for marker in _ROOT_MARKERS):
            return folder
    return start


def mask_uri(value: str) -> str:
    """Replace the password of a `scheme://user:password@host` URI by the mask; else unchanged."""
    return _URI_PASSWORD.sub(rf"\g<head>{MASK}\g<tail>", value)


def _local_path(location: str) -> Path | None:
    """The folder a location names when it is local (plain path or file://), None for s3://,
    mlflow-artifacts:/ and other schemes."""
    if location.startswith("file://"):
        return Path(location.removeprefix("file://"))
    return None if has_scheme(location) else Path(location)


def has_scheme(location: str) -> bool:
    """Whether a location is a URI (s3://, mlflow-artifacts:/, http://) rather than a path."""
    return re.match(r"^[A-Za-z][\w+.-]+:/", location) is not None


class GradelineSettings(BaseSettings):
    """Every location and service setting of the platform, from env vars or constructor args;
    locations left unset derive from `home`, so moving one folder moves all local state."""

    model_config = SettingsConfigDict(env_prefix="GRADELINE_", env_ignore_empty=True,
                                      populate_by_name=True)

    profile: Literal["embedded", "cluster"] = Field(
        "embedded", description="embedded: every store under the home; cluster: every store on "
        "shared servers (MLflow server, Prefect API, S3, a database server), none in the home"
    )
    home: Path = Field(
        default_factory=lambda: find_project_root() / ".gradeline",
        description="Folder of all embedded state; default .gradeline/ in the project root.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking and registry store; default sqlite:///<home>/mlflow/mlflow.db",
    )
    mlflow_artifact_root: str | None = Field(
        None, description="MLflow run artifacts, folder or s3://; default <home>/mlflow/artifacts "
        "(cluster: mlflow-artifacts:/, kept by the tracking server where it stores them)"
    )
    mlflow_tracking_username: str | None = Field(
        None, description="User of an MLflow server with its basic-auth app (cluster profile)"
    )
    mlflow_tracking_password: SecretStr | None = Field(
        None, description="That user's password"
    )
    prefect_api_url: str | None = Field(
        None, validation_alias=AliasChoices("GRADELINE_PREFECT_API_URL", "PREFECT_API_URL"),
        description="Prefect API of a shared server (http://host:4200/api); None runs flows on "
        "a temporary server of PREFECT_HOME"
    )
    prefect_api_auth_string: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GRADELINE_PREFECT_API_AUTH_STRING",
                                            "PREFECT_API_AUTH_STRING"),
        description="user:password of a Prefect server that asks for basic auth"
    )
    prefect_home: Path | None = Field(
        None,
        description="PREFECT_HOME of flows run here (SQLite, profiles); default <home>/prefect",
    )
    dvc_remote: str | None = Field(
        None,
        description="DVC remote of dataset versions, folder or s3://; default <home>/dvc-remote",
    )
    prediction_log_uri: str | None = Field(
        None,
        description="SQLAlchemy URI of the prediction log; default sqlite:///<home>/predictions.db",
    )
    data_dir: Path | None = Field(None, description="Working copy of datasets; default <home>/data")
    quarantine_dir: Path | None = Field(
        None, description="Rejected items with their reasons; default <home>/quarantine"
    )
    audit_log: Path | None = Field(
        None, description="Append-only log of every release stage change; "
        "default <home>/audit/releases.jsonl"
    )
    keys_file: Path | None = Field(
        None, description="Hashed API keys of the grading service (`gradeline keys`); "
        "default <home>/keys.json"
    )
    thumbnails_dir: Path | None = Field(
        None, description="Small copies of served photos, for drift contact sheets; "
        "default <home>/served"
    )
    inbox_dir: Path | None = Field(
        None, description="Where labeled batches land for `retrain` (one folder per batch); "
        "default <home>/inbox"
    )
    evidently_workspace: Path | None = Field(
        None, description="Evidently workspace of drift runs (`evidently ui --workspace`); "
        "default <home>/evidently"
    )
    reports_dir: Path | None = Field(
        None, description="Evaluation and drift reports; default <home>/reports"
    )
    cache_dir: Path | None = Field(
        None, description="Training caches, checkpoints and restored data versions; "
        "default <home>/cache"
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint such as MinIO; None means AWS itself"
    )
    aws_region: str | None = Field(None, description="AWS region of S3 artifacts and DVC remotes")
    aws_access_key_id: SecretStr | None = Field(
        None, description="AWS key id; None leaves boto3 to its credentials chain"
    )
    aws_secret_access_key: SecretStr | None = Field(
        None, description="AWS secret key of that key id"
    )
    alert_url: SecretStr | None = Field(
        None, description="Apprise URL (Slack, PagerDuty, webhook, email) for alerts"
    )
    parallel_backend: Literal["processes", "dask"] = Field(
        "processes", description="Where image-parallel work runs (card factory, ingest checks, "
        "preparing images): forked processes on this machine, or Dask workers"
    )
    dask_scheduler: str | None = Field(
        None, description="Dask scheduler address (tcp://host:8786) of the dask backend; None "
        "starts a local cluster of one worker process per core for each job"
    )

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @model_validator(mode="after")
    def _derive_from_home(self) -> Self:
        home = self.home
        if self.profile == "cluster":
            self._require_shared_stores()
        derived = {
            "mlflow_tracking_uri": f"sqlite:///{home.as_posix()}/mlflow/mlflow.db",
            "mlflow_artifact_root": "mlflow-artifacts:/" if self.profile == "cluster"
            else str(home / "mlflow" / "artifacts"),
            "prefect_home": home / "prefect",
            "dvc_remote": str(home / "dvc-remote"),
            "prediction_log_uri": f"sqlite:///{home.as_posix()}/predictions.db",
            "data_dir": home / "data",
            "quarantine_dir": home / "quarantine",
            "audit_log": home / "audit" / "releases.jsonl",
            "reports_dir": home / "reports",
            "keys_file": home / "keys.json",
            "thumbnails_dir": home / "served",
            "evidently_workspace": home / "evidently",
            "inbox_dir": home / "inbox",
            "cache_dir": home / "cache",
        }
        for name, default in derived.items():
            value = default if getattr(self, name) is None else getattr(self, name)
            setattr(self, name, value.expanduser().resolve() if isinstance(value, Path) else value)
        return self

    def _require_shared_stores(self) -> None:
        """The cluster profile's promise: no store falls back to a file in the home."""
        stores = {
            "GRADELINE_MLFLOW_TRACKING_URI": (self.mlflow_tracking_uri, ("http://", "https://"),
                                              "an MLflow tracking server"),
            "GRADELINE_PREFECT_API_URL": (self.prefect_api_url, ("http://", "https://"),
                                          "a Prefect server's API"),
            "GRADELINE_DVC_REMOTE": (self.dvc_remote, ("s3://",), "a DVC remote on S3"),
            "GRADELINE_PREDICTION_LOG_URI": (self.prediction_log_uri, ("postgresql",),
                                             "a PostgreSQL database"),
        }
        wrong = [f"{name} must name {what} ({' or '.join(schemes)}...), got "
                 f"{mask_uri(value) if value else 'nothing'}"
                 for name, (value, schemes, what) in stores.items()
                 if not (value or "").startswith(schemes)]
        if wrong:
            raise ValueError("the cluster profile keeps no store in the home: "
                             + "; ".join(wrong))

    def ensure_dirs(self) -> Self:
        """Create the local folders (s3:// locations are left alone); returns self to chain."""
        locations = [self.home, self.prefect_home, self.data_dir, self.quarantine_dir]
        locations += [self.reports_dir, self.cache_dir,
                      _local_path(str(self.mlflow_artifact_root))]
        for folder in [*locations, _local_path(str(self.dvc_remote))]:
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
        return self

    def masked(self) -> dict[str, str | None]:
        """Every setting as a string, safe to print: secrets and URI passwords masked."""
        shown: dict[str, str | None] = {}
        for name in type(self).model_fields:
            value: Any = getattr(self, name)
            if value is None:
                shown[name] = None
            elif isinstance(value, SecretStr):
                shown[name] = MASK
            else:
                shown[name] = mask_uri(str(value))
        return shown

    def mlflow_server_env(self) -> dict[str, str]:
        """What an MLflow server of this home reads from its environment rather than its command
        line, where any local user would read a database password (`ps`); only that server
        process gets it."""
        return {"MLFLOW_BACKEND_STORE_URI": str(self.mlflow_tracking_uri),
                "MLFLOW_DEFAULT_ARTIFACT_ROOT": str(self.mlflow_artifact_root),
                # No background job runners: nothing here uses them, and MLflow starts seven.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def service_env(self) -> dict[str, str]:
        """Environment variables that make MLflow, Prefect and AWS clients use these settings."""
        env = {
            "GRADELINE_HOME": str(self.home),
            "MLFLOW_TRACKING_URI": str(self.mlflow_tracking_uri),
            "PREFECT_HOME": str(self.prefect_home),
            # The embedded server must not phone home: these machines may have no network.
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # A new home's temporary server migrates its database before it answers: on two
            # busy cores that outlasts Prefect's 20 s default and the flow never starts.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "DO_NOT_TRACK": "1",
            # A bar per artifact download floods flow logs: models are dozens of small files.
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            # With a tracking server MLflow prints each ended run's URL to stdout, which is
            # where `--json` answers go: the CLI says where runs are on stderr instead.
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
            "GX_ANALYTICS_ENABLED": "false",
        }
        optional = {
            "PREFECT_API_URL": self.prefect_api_url,
            "PREFECT_API_AUTH_STRING": self.prefect_api_auth_string,
            "MLFLOW_TRACKING_USERNAME": self.mlflow_tracking_username,
            "MLFLOW_TRACKING_PASSWORD": self.mlflow_tracking_password,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint_url,
            "AWS_DEFAULT_REGION": self.aws_region,
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key,
        }
        for key, value in optional.items():
            if value is not None:
                env[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return env


    def activate(self) -> Self:
        """Create the local folders and point this process's MLflow, Prefect and AWS clients at
        them. Call it before the first `import prefect`, which reads PREFECT_HOME once."""
        self.ensure_dirs()
        os.environ.update(self.service_env())
        return self


def stored_secret(path: Path) -> str:
    """The secret kept in `path`, made (32 random bytes, mode 0600) the first time."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def load_settings(**overrides: Any) -> GradelineSettings:
    """The single way code gets settings: env vars, then `overrides` (same field names) on top,
    then, for what both leave unset, the home's cluster.env while a cluster stack runs there.
    None overrides are dropped, so an unset CLI option never hides an env var."""
    given = {name: value for name, value in overrides.items() if value is not None}
    home = GradelineSettings.model_fields["home"].get_default(call_default_factory=True)
    home = Path(given.get("home") or os.environ.get("GRADELINE_HOME") or home)
    cluster_env = home.expanduser().resolve() / CLUSTER_ENV_FILE
    if cluster_env.is_file():
        return GradelineSettings(_env_file=cluster_env, **given)
    return GradelineSettings(**given)
