"""The append-only audit log of releases: one JSON line per change to a version's stage, its
aliases or its approval.

    log = AuditLog(home / "audit" / "releases.jsonl")
    log.append(AuditEvent(time=utc_now(), model="card-grader", version=4, action=ACTION_STAGE,
                          from_stage="shadow", to_stage="canary", actor="release-flow",
                          reason="shadow agreement 0.97"))
    events = log.read("card-grader")

The file is only ever appended to, never rewritten: an on-call engineer after an incident and an
auditor months later both reconstruct from it who moved which version where, when and why, so an
earlier line must read the same forever. The registry holds only the present (tags and aliases
are overwritten); this log holds the history.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# What an event records; Releases writes these.
ACTION_STAGE = "stage"
ACTION_ALIAS = "alias"
ACTION_APPROVAL = "approval"
ACTION_CANARY_SHARE = "canary_share"
ACTION_ROLLBACK = "rollback"
ACTION_ABORT = "abort"  # an operator stopped a release in flight
ACTION_RESTORE = "restore"  # the guard put back a state changed outside Releases
ACTION_STEP_JUDGED = "step_judged"  # a release step's verdict and the figures it rests on


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class AuditEvent:
    """One change to a registered model version's release state."""

    time: str  # ISO 8601, UTC
    model: str
    version: int
    action: str  # ACTION_*
    from_stage: str | None
    to_stage: str | None
    actor: str
    reason: str
    details: dict[str, object] = field(default_factory=dict)  # e.g. aliases moved, figures


class AuditLog:
    """A JSON-lines file of AuditEvents that only grows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: AuditEvent) -> None:
        """Add one line and make it durable before returning. The line goes down in a single
        write to a file opened for appending, so concurrent writers never interleave within a
        line."""
        line = json.dumps(asdict(event), sort_keys=True, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, model: str | None = None) -> list[AuditEvent]:
        """Every event in the order written, only those of `model` when given; empty when the
        file does not exist yet."""
        if not self.path.exists():
            return []
        events = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                event = AuditEvent(**json.loads(line))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{self.path}:{number} is not an audit event: {error}") from error
            if model is None or event.model == model:
                events.append(event)
        return events
