"""Register trained models as candidate versions and read versions back.

    version = register_candidate(tracking_uri, "card-grader", model_uri, run_id,
                                 data_version="1a2b...", git_sha="abc123")

Registration never touches an alias: a candidate answers nobody until promotion moves
`champion` (a later stage, with a reviewer's approval).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from model_registry.names import STAGE_CANDIDATE, TAG_DATA_VERSION, TAG_GIT_SHA, TAG_STAGE


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version as the platform reads it."""

    name: str
    version: int
    run_id: str
    source: str
    tags: dict[str, str]
    model_id: str | None = None  # MLflow 3's logged model behind the version

    @property
    def data_version(self) -> str | None:
        return self.tags.get(TAG_DATA_VERSION)

    @property
    def stage(self) -> str | None:
        return self.tags.get(TAG_STAGE)


def registry_client(tracking_uri: str) -> MlflowClient:
    """A client whose registry is the tracking store (the embedded default keeps both in one)."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def as_registered(found: ModelVersion) -> RegisteredVersion:
    """The platform's view of an MLflow model version. Its logged model is named by its source
    (models:/m-...) where the store does not keep the link (the SQLite registry does not)."""
    model_id = found.model_id
    if model_id is None and found.source.startswith("models:/m-"):
        model_id = found.source.removeprefix("models:/")
    return RegisteredVersion(name=found.name, version=int(found.version), run_id=found.run_id,
                             source=found.source, tags=dict(found.tags), model_id=model_id)


def _ensure_registered_model(client: MlflowClient, name: str, description: str) -> None:
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise


def register_candidate(
    tracking_uri: str,
    name: str,
    model_uri: str,
    run_id: str,
    data_version: str,
    git_sha: str,
    extra_tags: dict[str, str] | None = None,
    description: str = "",
) -> RegisteredVersion:
    """A new version of `name` from the logged model at `model_uri`, tagged with its lineage
    and `stage=candidate`; the registered model is created on first use."""
    client = registry_client(tracking_uri)
    _ensure_registered_model(client, name, description)
    tags = {**(extra_tags or {}), TAG_DATA_VERSION: data_version, TAG_GIT_SHA: git_sha,
            TAG_STAGE: STAGE_CANDIDATE}
    # A tracking server accepts a logged model's URI as the source only with its id beside it.
    logged_model = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") \
        else None
    created = client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags,
                                          description=description, model_id=logged_model)
    return as_registered(created)


def version_of_run(tracking_uri: str, name: str, run_id: str) -> RegisteredVersion | None:
    """The version of `name` registered from run `run_id`, if any: a training run registers
    once, so a rerun after a crash finds it instead of registering a second one."""
    found = registry_client(tracking_uri).search_model_versions(
        f"name = '{name}' and run_id = '{run_id}'")
    return as_registered(min(found, key=lambda v: int(v.version))) if found else None


def versions_of(tracking_uri: str, name: str) -> list[RegisteredVersion]:
    """Every version of `name`, newest first; empty when the model was never registered."""
    found = registry_client(tracking_uri).search_model_versions(f"name = '{name}'")
    return sorted((as_registered(v) for v in found), key=lambda v: v.version, reverse=True)
