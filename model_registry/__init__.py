"""The one place that talks to the MLflow model registry: model names, tags and stages, and
the operations on versions. It is handed its tracking URI and imports neither flows nor
components, so the registry's rules read in one folder.

The names below are imported from their modules when first used (PEP 562), so a command that
needs only `model_registry.names` or `access` does not pay for importing MLflow (2 s here).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "model_registry.audit": ("AuditEvent", "AuditLog"),
    "model_registry.evaluation": ("VersionNotFound", "download_version", "get_version",
                                  "log_version_metrics", "record_gates"),
    "model_registry.names": ("DETECTOR", "GATE_PREFIX", "GRADER", "STAGE_CANDIDATE",
                             "STAGE_REJECTED", "TAG_DATA_VERSION", "TAG_GIT_SHA", "TAG_STAGE"),
    "model_registry.releases": ("Releases",),
    "model_registry.stages": ("Approval", "ReleaseError"),
    "model_registry.versions": ("RegisteredVersion", "register_candidate", "version_of_run",
                                "versions_of"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'model_registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value
