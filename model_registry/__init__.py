"""The one place that talks to the MLflow model registry: model names, tags and stages, and
the operations on versions. It is handed its tracking URI and imports neither flows nor
components, so the registry's rules read in one folder."""

from model_registry.audit import AuditEvent, AuditLog
from model_registry.evaluation import (
    VersionNotFound,
    download_version,
    get_version,
    log_version_metrics,
    record_gates,
)
from model_registry.names import (
    DETECTOR,
    GATE_PREFIX,
    GRADER,
    STAGE_CANDIDATE,
    STAGE_REJECTED,
    TAG_DATA_VERSION,
    TAG_GIT_SHA,
    TAG_STAGE,
)
from model_registry.releases import Releases
from model_registry.stages import Approval, ReleaseError
from model_registry.versions import (
    RegisteredVersion,
    register_candidate,
    version_of_run,
    versions_of,
)

__all__ = [
    "DETECTOR",
    "GATE_PREFIX",
    "GRADER",
    "STAGE_CANDIDATE",
    "STAGE_REJECTED",
    "TAG_DATA_VERSION",
    "TAG_GIT_SHA",
    "TAG_STAGE",
    "Approval",
    "AuditEvent",
    "AuditLog",
    "ReleaseError",
    "RegisteredVersion",
    "Releases",
    "VersionNotFound",
    "download_version",
    "get_version",
    "log_version_metrics",
    "record_gates",
    "register_candidate",
    "version_of_run",
    "versions_of",
]
