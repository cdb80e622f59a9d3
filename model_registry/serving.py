"""What the grading service reads from the registry: which versions the aliases name now, and the
exported graph of each, fetched by the URI and checksum evaluation tagged on the version.

    served = alias_versions(tracking_uri, "card-grader", ("champion", "challenger"))
    graph = download_graph(tracking_uri, served["champion"], cache / "card-grader-3")

The service polls `alias_versions`, so an alias moved by promotion or rollback is followed without
a restart; the checksum is verified by the service before the graph is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

from model_registry.names import TAG_ONNX_SHA256, TAG_ONNX_URI
from model_registry.versions import RegisteredVersion, as_registered, registry_client

GRAPH_FILE = "model.onnx"
_ABSENT = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}


class GraphMissing(LookupError):
    """The version has no exported graph: it was never evaluated."""


def alias_versions(tracking_uri: str, name: str,
                   aliases: Sequence[str]) -> dict[str, RegisteredVersion]:
    """The versions that `aliases` of model `name` point at; absent aliases (or models) are left
    out."""
    client = registry_client(tracking_uri)
    found: dict[str, RegisteredVersion] = {}
    for alias in aliases:
        try:
            found[alias] = as_registered(client.get_model_version_by_alias(name, alias))
        except MlflowException as error:
            if error.error_code not in _ABSENT:  # no such model, or no such alias
                raise
    return found


def graph_checksum(version: RegisteredVersion) -> str | None:
    """The sha256 evaluation recorded for the version's exported graph."""
    return version.tags.get(TAG_ONNX_SHA256)


def download_graph(tracking_uri: str, version: RegisteredVersion, destination: Path) -> Path:
    """The version's exported ONNX graph copied under `destination` (its file path)."""
    uri = version.tags.get(TAG_ONNX_URI)
    if not uri:
        raise GraphMissing(f"{version.name} version {version.version} has no {TAG_ONNX_URI} tag: "
                           f"run `gradeline evaluate --model {version.name} --version "
                           f"{version.version}` first")
    destination.mkdir(parents=True, exist_ok=True)
    folder = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(destination),
                                                      tracking_uri=tracking_uri))
    return folder / GRAPH_FILE if folder.is_dir() else folder


def version_metric(tracking_uri: str, version: RegisteredVersion, key: str) -> float | None:
    """The latest value of metric `key` on the version's run (evaluation logs the gates' values
    there, e.g. `gate.kappa`, the QWK on its test split), or None when it was never logged."""
    metrics = registry_client(tracking_uri).get_run(version.run_id).data.metrics
    value = metrics.get(key)
    return None if value is None else float(value)
