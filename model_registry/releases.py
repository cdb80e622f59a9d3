"""The release state of registered models: stages, the champion/challenger/previous aliases,
the reviewer's approval, and the audit log of every change to them.

    releases = Releases(tracking_uri, AuditLog(home / "audit" / "releases.jsonl"))
    releases.enter_shadow("card-grader", 4, actor="release-flow")
    releases.set_stage("card-grader", 4, STAGE_CANARY, "release-flow", "shadow agreement 0.97")
    releases.set_canary_share("card-grader", 4, 0.05, actor="release-flow")
    releases.request_approval("card-grader", 4, actor="release-flow")
    releases.decide("card-grader", 4, "approved", by="alice")     # or the tag, in the MLflow UI
    releases.crown("card-grader", 4, actor="release-flow", reason="approved by alice")
    releases.rollback("card-grader", actor="bob", reason="p99 doubled")   # gradeline rollback

Stages move only along TRANSITIONS. A move into or out of `champion` goes with the champion alias,
so only `crown` and `rollback` make it; `set_stage` refuses it. Every method validates everything
before its first write, so one that raises leaves the registry as it was. Clients follow the
`champion` alias, and each switch of it is one `set_registered_model_alias` call: a server polling
the alias sees the old version or the new one, never a mix. Each change writes its audit events
before its registry writes, so the log is never behind the registry. The flows hold
`lock(model)` for a whole release or crown, so two never interleave; `abort` stops a release in
flight without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from numbers import Integral, Real

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from model_registry.audit import (
    ACTION_ABORT,
    ACTION_ALIAS,
    ACTION_APPROVAL,
    ACTION_CANARY_SHARE,
    ACTION_ROLLBACK,
    ACTION_STAGE,
    ACTION_STEP_JUDGED,
    AuditLog,
)
from model_registry.changes import RegistryChange
from model_registry.evaluation import VersionNotFound
from model_registry.locks import release_lock
from model_registry.names import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    ALIAS_PREVIOUS,
    APPROVED,
    GATE_PREFIX,
    RELEASE_PREFIX,
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
    TAG_CANARY_SHARE,
)
from model_registry.stages import (
    ALIASES,
    CHAMPION_STAGES,
    IN_FLIGHT,
    STOPPED,
    Approval,
    ReleaseError,
    approval_of,
    check_move,
    parse_decision,
    version_label,
)
from model_registry.versions import RegisteredVersion, as_registered, registry_client


class Releases:
    """The release state of the registered models of one tracking store."""

    def __init__(self, tracking_uri: str, audit: AuditLog) -> None:
        self.client = registry_client(tracking_uri)
        self.audit = audit

    # -- reading ---------------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        """The version each of champion, challenger and previous points at; unset ones absent."""
        try:
            found = self.client.get_registered_model(name).aliases
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise VersionNotFound(f"no model named {name!r} is registered") from error
            raise
        return {alias: int(found[alias]) for alias in ALIASES if alias in found}

    def version_for(self, name: str, alias: str) -> RegisteredVersion | None:
        """The version `alias` points at, or None when it is not set."""
        number = self.aliases(name).get(alias)
        return None if number is None else self._get(name, number)

    def version(self, name: str, version: int) -> RegisteredVersion:
        """Version `version` of `name`; VersionNotFound when there is none."""
        return self._get(name, version)

    def approval(self, name: str, version: int) -> Approval | None:
        """The reviewer's decision, None when there is none yet."""
        return approval_of(self._get(name, version))

    # -- stages ----------------------------------------------------------------------------

    def set_stage(self, name: str, version: int, to_stage: str, actor: str, reason: str,
                  details: dict[str, object] | None = None) -> None:
        """Move the version to `to_stage` along TRANSITIONS. A stop (rejected, rolled_back)
        also takes away the version's challenger alias and canary share."""
        current = self._get(name, version)
        _require_actor(actor)
        check_move(current, to_stage)
        if {current.stage, to_stage} & CHAMPION_STAGES:
            raise ReleaseError(f"{version_label(current)}: a move from {current.stage} to "
                               f"{to_stage} goes with the champion alias; use crown or rollback")
        with self._change() as change:
            if to_stage in STOPPED:
                self._stop(change, current, to_stage, actor, reason, ACTION_STAGE, details or {})
            else:
                change.move(current, to_stage, actor, reason, ACTION_STAGE,
                           details or {})

    def enter_shadow(self, name: str, version: int, actor: str, reason: str = "") -> None:
        """Make a candidate whose gates all passed the challenger, in shadow."""
        current = self._get(name, version)
        _require_actor(actor)
        if current.stage != STAGE_CANDIDATE:
            raise ReleaseError(f"{version_label(current)} is {current.stage or 'without a stage'}; "
                               f"only a {STAGE_CANDIDATE} enters {STAGE_SHADOW}")
        gates = {key.removeprefix(GATE_PREFIX): value for key, value in current.tags.items()
                 if key.startswith(GATE_PREFIX)}
        if not gates:
            raise ReleaseError(f"{version_label(current)} has no {GATE_PREFIX}* tags: evaluate it "
                               f"before it enters {STAGE_SHADOW}")
        failing = [f"{GATE_PREFIX}{gate}={value}" for gate, value in sorted(gates.items())
                   if value != "pass"]
        if failing:
            raise ReleaseError(f"{version_label(current)} did not pass {', '.join(failing)}; "
                               f"it cannot enter {STAGE_SHADOW}")
        holder = self.version_for(name, ALIAS_CHALLENGER)
        if holder is not None and holder.version != version and holder.stage in IN_FLIGHT:
            raise ReleaseError(f"{version_label(holder)} is the challenger already "
                               f"({holder.stage}); crown, reject or roll it back before "
                               f"{version_label(current)} enters {STAGE_SHADOW}")
        moved = {ALIAS_CHALLENGER: _moved(holder.version if holder else None, version)}
        with self._change() as change:
            change.alias(name, ALIAS_CHALLENGER, version)
            change.move(current, STAGE_SHADOW, actor, reason, ACTION_STAGE,
                       {"aliases": moved})

    def set_canary_share(self, name: str, version: int, share: float, actor: str,
                         reason: str = "") -> None:
        """The share of requests the challenger in canary answers, in (0, 1]."""
        current = self._get(name, version)
        _require_actor(actor)
        if current.stage != STAGE_CANARY:
            raise ReleaseError(f"{version_label(current)} is {current.stage}; a canary share is "
                               f"set on a version in {STAGE_CANARY}")
        if not (math.isfinite(share) and 0 < share <= 1):
            raise ReleaseError(f"canary share {share} of {version_label(current)} is not in (0, 1]")
        value = f"{share:g}"
        with self._change() as change:
            change.tag(current, TAG_CANARY_SHARE, value)
            change.event(current, ACTION_CANARY_SHARE, None, None, actor, reason, {
                TAG_CANARY_SHARE: {"from": current.tags.get(TAG_CANARY_SHARE), "to": value}})

    def record_release_figures(self, name: str, version: int, step: str,
                               figures: dict[str, float | int | str], actor: str,
                               verdict: str) -> None:
        """Tags `release.<step>.<figure>` with the figures of a shadow or canary analysis,
        floats to 4 significant digits, so the reviewer reads them on the version page; the
        audit log gets them too, with the step's `verdict` as the reason."""
        current = self._get(name, version)
        _require_actor(actor)
        names = [step, *figures]
        if not all(part.strip() and "." not in part for part in names):
            raise ReleaseError(f"release figures of {name} version {version}: step and figure "
                               f"names must be non-empty and without dots, got {names}")
        with self._change() as change:
            for figure, value in figures.items():
                real = isinstance(value, Real) and not isinstance(value, Integral)
                change.tag(current, f"{RELEASE_PREFIX}{step}.{figure}",
                           f"{value:.4g}" if real else str(value))
            change.event(current, ACTION_STEP_JUDGED, None, None, actor, verdict,
                         {"step": step, "figures": figures})

    # -- approval --------------------------------------------------------------------------

    def request_approval(self, name: str, version: int, actor: str, reason: str = "") -> None:
        """Move a canary to awaiting_approval, dropping any decision of an earlier round and the
        canary share: while the reviewer decides, the challenger scores in shadow only."""
        current = self._get(name, version)
        _require_actor(actor)
        check_move(current, STAGE_AWAITING_APPROVAL)
        cleared: dict[str, object] = {tag: current.tags[tag]
                                      for tag in (TAG_APPROVAL, TAG_APPROVED_BY)
                                      if tag in current.tags}
        with self._change() as change:
            for tag in cleared:
                change.tag(current, tag, None)
            cleared.update(change.drop_canary_share(current))
            change.move(current, STAGE_AWAITING_APPROVAL, actor, reason, ACTION_STAGE,
                       {"cleared": cleared} if cleared else {})

    def decide(self, name: str, version: int, decision: str, by: str, reason: str = "") -> None:
        """A reviewer's `approved` or `rejected` (gradeline approve / reject): the `approval`
        and `approved_by` tags. It moves no stage; crown or reject act on it."""
        current = self._get(name, version)
        if not by.strip():
            raise ReleaseError(f"{version_label(current)}: a decision names its reviewer (by)")
        normalized = parse_decision(decision)
        if current.stage != STAGE_AWAITING_APPROVAL:
            raise ReleaseError(f"{version_label(current)} is {current.stage}; a decision is taken "
                               f"on a version in {STAGE_AWAITING_APPROVAL}")
        with self._change() as change:
            change.tag(current, TAG_APPROVAL, normalized)
            change.tag(current, TAG_APPROVED_BY, by.strip())
            change.event(current, ACTION_APPROVAL, None, None, by.strip(), reason,
                         {TAG_APPROVAL: normalized})

    # -- the champion ----------------------------------------------------------------------

    def crown(self, name: str, version: int, actor: str, reason: str, *,
              first: bool = False) -> dict[str, int | None]:
        """Make an approved version the champion: `previous` moves to the current champion,
        then `champion` to the version in one alias call; the old champion retires.

        `first=True` is the bootstrap of a fresh install (the demo's first model): any candidate
        becomes champion without shadow, canary or approval, and only while the model has no
        champion at all; every later champion takes the full path."""
        current = self._get(name, version)
        _require_actor(actor)
        aliases = self.aliases(name)
        if first:
            if ALIAS_CHAMPION in aliases:
                raise ReleaseError(f"{name} has a champion (version {aliases[ALIAS_CHAMPION]}); "
                                   f"first=True only crowns the first one, later ones go "
                                   f"through shadow, canary and approval")
            if current.stage != STAGE_CANDIDATE:
                raise ReleaseError(f"{version_label(current)} is {current.stage}; the first "
                                   f"champion is a {STAGE_CANDIDATE}")
        else:
            check_move(current, STAGE_CHAMPION)
            decided = approval_of(current)
            if decided is None or decided.decision != APPROVED:
                raise ReleaseError(f"{version_label(current)} is not approved ({TAG_APPROVAL}="
                                   f"{decided.decision if decided else 'unset'}); a reviewer "
                                   f"approves it with `gradeline approve` or in the MLflow UI")
        old = self._get(name, aliases[ALIAS_CHAMPION]) if ALIAS_CHAMPION in aliases else None
        if old is not None:
            check_move(old, STAGE_RETIRED)

        moved: dict[str, object] = {}
        with self._change() as change:
            if old is not None:
                change.alias(name, ALIAS_PREVIOUS, old.version)
                moved[ALIAS_PREVIOUS] = _moved(aliases.get(ALIAS_PREVIOUS), old.version)
            change.alias(name, ALIAS_CHAMPION, version)
            moved[ALIAS_CHAMPION] = _moved(old.version if old else None, version)
            details: dict[str, object] = {"aliases": moved, "first": first}
            details.update(self._stand_down(change, current, moved))
            change.move(current, STAGE_CHAMPION, actor, reason, ACTION_ALIAS, details)
            if old is not None:
                change.move(old, STAGE_RETIRED, actor, reason, ACTION_STAGE,
                           {"replaced_by": version})
        return {"champion": version, "previous": old.version if old else None}

    def rollback(self, name: str, actor: str, reason: str) -> dict[str, int]:
        """gradeline rollback: `champion` back to `previous` in one alias call; the demoted
        version is rolled_back, the restored one champion again.

        `previous` is then removed rather than pointed at the demoted version: a second rollback
        would bring back a version just judged bad, so it fails with a clear error instead."""
        _require_actor(actor)
        aliases = self.aliases(name)
        if ALIAS_PREVIOUS not in aliases or ALIAS_CHAMPION not in aliases:
            champion = aliases.get(ALIAS_CHAMPION)
            raise ReleaseError(f"{name} has no {ALIAS_PREVIOUS!r} version to roll back to "
                               f"(champion: {'none' if champion is None else champion})")
        demoted = self._get(name, aliases[ALIAS_CHAMPION])
        restored = self._get(name, aliases[ALIAS_PREVIOUS])
        check_move(demoted, STAGE_ROLLED_BACK)
        check_move(restored, STAGE_CHAMPION)

        moved = {ALIAS_CHAMPION: _moved(demoted.version, restored.version),
                 ALIAS_PREVIOUS: _moved(restored.version, None)}
        with self._change() as change:
            change.alias(name, ALIAS_CHAMPION, restored.version)
            change.alias(name, ALIAS_PREVIOUS, None)
            change.move(demoted, STAGE_ROLLED_BACK, actor, reason, ACTION_ROLLBACK,
                       {"aliases": moved, "restored": restored.version})
            change.move(restored, STAGE_CHAMPION, actor, reason, ACTION_STAGE,
                       {"replaces": demoted.version})
        return {"champion": restored.version, "rolled_back": demoted.version}

    # -- one release at a time, and its interruption ---------------------------------------

    def lock(self, name: str, holder: str) -> AbstractContextManager[None]:
        """The model's release lock (ReleaseLocked while another process holds it)."""
        return release_lock(self.audit.path.parent / "locks", name, holder)

    def take_off_traffic(self, name: str, version: int, actor: str, reason: str) -> None:
        """Drop a canary's share, so that it only scores in shadow until a step sets one
        again: what a resumed release does first."""
        current = self._get(name, version)
        _require_actor(actor)
        with self._change() as change:
            cleared = change.drop_canary_share(current)
            if cleared:
                change.event(current, ACTION_CANARY_SHARE, None, None, actor, reason, cleared)

    def abort(self, name: str, actor: str, reason: str) -> RegisteredVersion:
        """Stop the release in flight (gradeline release abort): a challenger in shadow or
        canary is rolled back, one awaiting approval rejected; it loses `challenger` and its
        canary share at once. Returns the stopped version; ReleaseError if none is in
        flight."""
        _require_actor(actor)
        challenger = self.version_for(name, ALIAS_CHALLENGER)
        if challenger is None or challenger.stage not in IN_FLIGHT:
            holder = f"{challenger.version}, {challenger.stage}" if challenger else "none"
            raise ReleaseError(f"{name} has no release in flight (challenger: {holder})")
        to_stage = STAGE_REJECTED if challenger.stage == STAGE_AWAITING_APPROVAL \
            else STAGE_ROLLED_BACK
        with self._change() as change:
            self._stop(change, challenger, to_stage, actor, reason, ACTION_ABORT, {})
        return self._get(name, challenger.version)

    # -- stopping a challenger -------------------------------------------------------------

    def reject(self, name: str, version: int, actor: str, reason: str) -> None:
        """Stop the version for good (stage rejected), taking away its challenger alias and
        canary share."""
        self.set_stage(name, version, STAGE_REJECTED, actor, reason)

    def roll_back_challenger(self, name: str, version: int, actor: str, reason: str,
                             figures: dict[str, object] | None = None) -> None:
        """The automatic rollback of a challenger in shadow or canary, with the figures that
        triggered it in the audit log."""
        current = self._get(name, version)
        _require_actor(actor)
        if current.stage not in (STAGE_SHADOW, STAGE_CANARY):
            raise ReleaseError(f"{version_label(current)} is {current.stage}; only a challenger in "
                               f"{STAGE_SHADOW} or {STAGE_CANARY} is rolled back this way "
                               f"(a champion goes back with rollback)")
        with self._change() as change:
            self._stop(change, current, STAGE_ROLLED_BACK, actor, reason, ACTION_ROLLBACK,
                       {"figures": dict(figures or {})})

    # -- writing ---------------------------------------------------------------------------

    def _get(self, name: str, version: int) -> RegisteredVersion:
        try:
            return as_registered(self.client.get_model_version(name, str(version)))
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise VersionNotFound(f"{name} has no version {version}") from error
            raise

    @contextmanager
    def _change(self) -> Iterator[RegistryChange]:
        """Collect one change's registry writes and audit events; on leaving the block, the
        events are written first, then the registry."""
        change = RegistryChange(self.client)
        yield change
        change.commit(self.audit)

    def _stop(self, change: RegistryChange, current: RegisteredVersion, to_stage: str, actor: str,
              reason: str, action: str, details: dict[str, object]) -> None:
        moved: dict[str, object] = {}
        extra = self._stand_down(change, current, moved)
        change.move(current, to_stage, actor, reason, action,
                   {**details, **({"aliases": moved} if moved else {}), **extra})

    def _stand_down(self, change: RegistryChange, current: RegisteredVersion,
                    moved: dict[str, object]) -> dict[str, object]:
        """Take `challenger` and the canary share from the version, noting the alias in `moved`;
        returns the cleared share for the audit event."""
        if self.aliases(current.name).get(ALIAS_CHALLENGER) == current.version:
            change.alias(current.name, ALIAS_CHALLENGER, None)
            moved[ALIAS_CHALLENGER] = _moved(current.version, None)
        return change.drop_canary_share(current)


def _require_actor(actor: str) -> None:
    if not actor.strip():
        raise ReleaseError("an actor is required: the audit log names who moved what")


def _moved(before: int | None, after: int | None) -> dict[str, int | None]:
    return {"from": before, "to": after}
