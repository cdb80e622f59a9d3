"""What evaluation reads from and writes to a model version: the version itself, its files, its
metrics, and its gates, which decide whether it stays a candidate or is rejected.

    version = get_version(tracking_uri, "card-grader", 3)
    folder = download_version(tracking_uri, "card-grader", 3, cache / "card-grader-3")
    stage = record_gates(tracking_uri, "card-grader", 3, {"kappa": (False, 0.81), ...})

Gates are written as tags `gate.<name>` = `pass`/`fail` with the judged value as the metric
`gate.<name>` of the version's model, so the model version page shows both. A failed gate moves
a candidate to `stage=rejected`, which is final: evaluating it again with looser gates reports,
it does not revive it. A version already past candidate keeps its stage too (an evaluation of a
serving champion reports, it does not demote).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.entities import Metric
from mlflow.utils.time import get_current_time_millis

from model_registry.names import (
    GATE_PREFIX,
    STAGE_CANDIDATE,
    STAGE_REJECTED,
    TAG_STAGE,
)
from model_registry.versions import RegisteredVersion, as_registered, registry_client


class VersionNotFound(LookupError):
    """No such registered model version."""


def get_version(tracking_uri: str, name: str, version: int | None = None) -> RegisteredVersion:
    """Version `version` of `name`, or its newest when None; VersionNotFound names what
    exists."""
    client = registry_client(tracking_uri)
    found = client.search_model_versions(f"name = '{name}'")
    if not found:
        raise VersionNotFound(f"no model named {name!r} is registered")
    by_number = {int(v.version): v for v in found}
    number = max(by_number) if version is None else version
    if number not in by_number:
        raise VersionNotFound(f"{name} has no version {number}; it has "
                              f"{', '.join(str(n) for n in sorted(by_number))}")
    return as_registered(by_number[number])


def download_version(tracking_uri: str, name: str, version: int, destination: Path) -> Path:
    """The version's model files (MLmodel and artifacts) copied under `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(
        f"models:/{name}/{version}", dst_path=str(destination), tracking_uri=tracking_uri))


def log_version_metrics(tracking_uri: str, version: RegisteredVersion,
                        metrics: Mapping[str, float]) -> None:
    """Metrics on the version's run, attached to its model so its page lists them."""
    now = get_current_time_millis()
    registry_client(tracking_uri).log_batch(version.run_id, metrics=[
        Metric(key, float(value), now, 0, model_id=version.model_id)
        for key, value in metrics.items()])


def record_gates(tracking_uri: str, name: str, version: int,
                 gates: Mapping[str, tuple[bool, float]],
                 tags: Mapping[str, str] | None = None) -> str:
    """Write each gate's result and value (and any extra tags) to the version, drop gate tags
    of an earlier evaluation that no longer apply, and return the version's stage after it."""
    client = registry_client(tracking_uri)
    current = get_version(tracking_uri, name, version)
    for key in current.tags:
        if key.startswith(GATE_PREFIX) and key.removeprefix(GATE_PREFIX) not in gates:
            client.delete_model_version_tag(name, str(version), key)
    for gate, (passed, _) in gates.items():
        client.set_model_version_tag(name, str(version), GATE_PREFIX + gate,
                                     "pass" if passed else "fail")
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, str(version), key, value)
    log_version_metrics(tracking_uri, current,
                        {GATE_PREFIX + gate: value for gate, (_, value) in gates.items()})
    stage = current.stage
    if stage in (STAGE_CANDIDATE, None):
        stage = STAGE_CANDIDATE if all(passed for passed, _ in gates.values()) else STAGE_REJECTED
        client.set_model_version_tag(name, str(version), TAG_STAGE, stage)
    return stage
