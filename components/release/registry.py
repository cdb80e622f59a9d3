"""The registry's release state as this home sees it: its tracking store and its audit log.

    releases = releases_of(load_settings())
    releases.rollback("card-grader", actor="bob", reason="p99 doubled")

Kept apart from the flows so that `gradeline rollback` starts in seconds: it needs the registry,
not the analysis stack.
"""

from __future__ import annotations

from components.settings import GradelineSettings
from model_registry import AuditLog, Releases


def releases_of(settings: GradelineSettings) -> Releases:
    """The registry's release state with this home's append-only audit log."""
    return Releases(str(settings.mlflow_tracking_uri), AuditLog(settings.audit_log))
