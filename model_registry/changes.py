"""One change to a model's release state, written audit-first.

    change = RegistryChange(client)
    change.alias("card-grader", "champion", 4)
    change.tag(version, "stage", "champion")
    change.event(version, "alias", "awaiting_approval", "champion", "promote flow", "approved")
    change.commit(audit)        # the audit events, then the registry writes, in order

`Releases` builds one per operation after validating it; nothing is written until `commit`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from mlflow import MlflowClient

from model_registry.audit import AuditEvent, AuditLog, utc_now
from model_registry.names import TAG_CANARY_SHARE, TAG_STAGE
from model_registry.versions import RegisteredVersion


@dataclass
class RegistryChange:
    """One release change: its audit events and its registry writes, committed events first.
    A process killed in between leaves the audit log ahead of the registry, never behind it:
    the serving guard serves the audited state and completes the change."""

    client: MlflowClient
    events: list[AuditEvent] = field(default_factory=list)
    writes: list[Callable[[], object]] = field(default_factory=list)

    def alias(self, name: str, alias: str, version: int | None) -> None:
        """Point `alias` at `version` (remove it when None)."""
        self.writes.append(partial(self.client.set_registered_model_alias, name, alias,
                                   str(version)) if version is not None else
                           partial(self.client.delete_registered_model_alias, name, alias))

    def tag(self, current: RegisteredVersion, key: str, value: str | None) -> None:
        """Set tag `key` of the version (delete it when None)."""
        version = str(current.version)
        self.writes.append(partial(self.client.set_model_version_tag, current.name, version,
                                   key, value) if value is not None else
                           partial(self.client.delete_model_version_tag, current.name, version,
                                   key))

    def event(self, current: RegisteredVersion, action: str, from_stage: str | None,
              to_stage: str | None, actor: str, reason: str,
              details: dict[str, object]) -> None:
        """The audit event of this change (an `ACTION_*` of model_registry.audit)."""
        self.events.append(AuditEvent(
            time=utc_now(), model=current.name, version=current.version, action=action,
            from_stage=from_stage, to_stage=to_stage, actor=actor, reason=reason,
            details=details))

    def move(self, current: RegisteredVersion, to_stage: str, actor: str, reason: str,
             action: str, details: dict[str, object]) -> None:
        """The stage tag and its audit event; the caller has validated the move."""
        self.tag(current, TAG_STAGE, to_stage)
        self.event(current, action, current.stage, to_stage, actor, reason, details)

    def drop_canary_share(self, current: RegisteredVersion) -> dict[str, object]:
        """Remove the version's canary share (serving then scores it in shadow only); the
        cleared share for the audit event."""
        share = current.tags.get(TAG_CANARY_SHARE)
        if share is None:
            return {}
        self.tag(current, TAG_CANARY_SHARE, None)
        return {TAG_CANARY_SHARE: {"from": share, "to": None}}

    def commit(self, audit: AuditLog) -> None:
        """Write the events to `audit` (each durable before the next), then the registry."""
        for event in self.events:
            audit.append(event)
        for write in self.writes:
            write()
