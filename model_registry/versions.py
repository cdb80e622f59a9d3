"""Register trained models as candidate versions and read versions back.

    version = register_candidate(tracking_uri, "card-grader", model_uri, run_id,
                                 data_version="1a2b...", git_sha="abc123")

Registration never touches an alias: a candidate answers nobody until promotion moves
`champion` (a later stage, with a reviewer's approval).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
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

    @property
    def data_version(self) -> str | None:
        return self.tags.get(TAG_DATA_VERSION)

    @property
    def stage(self) -> str | None:
        return self.tags.get(TAG_STAGE)


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
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    _ensure_registered_model(client, name, description)
    tags = {**(extra_tags or {}), TAG_DATA_VERSION: data_version, TAG_GIT_SHA: git_sha,
            TAG_STAGE: STAGE_CANDIDATE}
    created = client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags,
                                          description=description)
    return RegisteredVersion(name=name, version=int(created.version), run_id=run_id,
                             source=created.source, tags=tags)


def versions_of(tracking_uri: str, name: str) -> list[RegisteredVersion]:
    """Every version of `name`, newest first; empty when the model was never registered."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = client.search_model_versions(f"name = '{name}'")
    return sorted((RegisteredVersion(name=v.name, version=int(v.version), run_id=v.run_id,
                                     source=v.source, tags=dict(v.tags)) for v in found),
                  key=lambda v: v.version, reverse=True)
