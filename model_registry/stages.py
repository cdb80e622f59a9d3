"""The rules of the release stage machine: where a version in each stage may move next, which
stages hold a challenger in flight, and how a reviewer's decision reads from its tags.

    check_move(version, STAGE_CANARY)     # ReleaseError unless TRANSITIONS allows the move
    approval_of(version)                  # Approval("approved", by="ada"), or None
"""

from __future__ import annotations

from dataclasses import dataclass

from model_registry.names import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    ALIAS_PREVIOUS,
    APPROVED,
    REJECTED,
    STAGE_AWAITING_APPROVAL,
    STAGE_CANARY,
    STAGE_CANDIDATE,
    STAGE_CHAMPION,
    STAGE_REJECTED,
    STAGE_RETIRED,
    STAGE_ROLLED_BACK,
    STAGE_SHADOW,
    TAG_APPROVAL,
    TAG_APPROVED_BY,
)
from model_registry.versions import RegisteredVersion

# Where a version in each stage may go next. `None` is a version registered by hand, without a
# stage: it may be rejected, but it advances only once evaluation has made it a candidate.
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({STAGE_REJECTED}),
    STAGE_CANDIDATE: frozenset({STAGE_SHADOW, STAGE_REJECTED}),
    STAGE_SHADOW: frozenset({STAGE_CANARY, STAGE_ROLLED_BACK, STAGE_REJECTED}),
    STAGE_CANARY: frozenset({STAGE_AWAITING_APPROVAL, STAGE_ROLLED_BACK}),
    STAGE_AWAITING_APPROVAL: frozenset({STAGE_CHAMPION, STAGE_REJECTED}),
    STAGE_CHAMPION: frozenset({STAGE_RETIRED, STAGE_ROLLED_BACK}),
    STAGE_RETIRED: frozenset({STAGE_CHAMPION}),  # a rollback brings it back
    STAGE_REJECTED: frozenset(),
    STAGE_ROLLED_BACK: frozenset(),
}
ALIASES = (ALIAS_CHAMPION, ALIAS_CHALLENGER, ALIAS_PREVIOUS)
# The stages of a challenger on its way: while one holds `challenger`, no other may enter shadow.
IN_FLIGHT = frozenset({STAGE_SHADOW, STAGE_CANARY, STAGE_AWAITING_APPROVAL})
# Moves into or out of these go with the champion alias (crown, rollback).
CHAMPION_STAGES = frozenset({STAGE_CHAMPION, STAGE_RETIRED})
# Stages after which a version answers nobody: it loses `challenger` and its canary share.
STOPPED = frozenset({STAGE_REJECTED, STAGE_ROLLED_BACK})


class ReleaseError(ValueError):
    """A release step that the version's state does not allow; nothing was changed."""


@dataclass(frozen=True)
class Approval:
    """A reviewer's decision on a version awaiting approval."""

    decision: str  # APPROVED or REJECTED
    by: str | None


def parse_decision(value: str) -> str:
    """`approved` or `rejected` from what a reviewer typed (any case, spaces around)."""
    decision = value.strip().lower()
    if decision not in (APPROVED, REJECTED):
        raise ReleaseError(f"approval {value!r} is neither {APPROVED!r} nor {REJECTED!r}")
    return decision


def check_move(version: RegisteredVersion, to_stage: str) -> None:
    """ReleaseError unless TRANSITIONS lets `version` move to `to_stage`."""
    allowed = TRANSITIONS.get(version.stage, frozenset())
    if to_stage not in allowed:
        where = ", ".join(sorted(allowed)) or "nowhere (a final stage)"
        raise ReleaseError(f"{version_label(version)} is {version.stage or 'without a stage'} "
                           f"and may move to {where}, not to {to_stage}")


def approval_of(version: RegisteredVersion) -> Approval | None:
    value = version.tags.get(TAG_APPROVAL)
    if value is None:
        return None
    try:
        decision = parse_decision(value)
    except ReleaseError as error:
        raise ReleaseError(f"{version_label(version)}: {error}") from None
    return Approval(decision=decision, by=version.tags.get(TAG_APPROVED_BY))


def version_label(version: RegisteredVersion) -> str:
    return f"{version.name} version {version.version}"
