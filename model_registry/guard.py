"""The guard of a registered model's release state: what the audit log says the aliases, the
canary share and the stages are, against what the registry says now.

    report = check_release(releases, "card-grader")
    report.expected.champion        # the version the last audited move made champion
    report.findings                 # ["champion points at version 5; the audit log says ..."]
    restore_release(releases, report, actor="serving guard")  # back to it, and audited

Everyone who can reach MLflow can move an alias or set a tag, and the registry keeps no history;
the audit log is written by `Releases` with every change it makes. So a state the log cannot
explain was made by hand, and the service serves the audited state instead of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from model_registry.audit import ACTION_RESTORE, AuditEvent, utc_now
from model_registry.names import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    GATE_PREFIX,
    STAGE_CANDIDATE,
    STAGE_REJECTED,
    TAG_CANARY_SHARE,
    TAG_STAGE,
)
from model_registry.releases import Releases
from model_registry.versions import RegisteredVersion, as_registered

GUARDED_ALIASES = (ALIAS_CHAMPION, ALIAS_CHALLENGER)


@dataclass(frozen=True)
class ReleaseState:
    """A model's guarded release state: where the aliases point, the canary share tag of each
    version that has one, and the stage of each version the audit log names."""

    aliases: dict[str, int] = field(default_factory=dict)
    canary_shares: dict[int, str] = field(default_factory=dict)
    stages: dict[int, str | None] = field(default_factory=dict)

    @property
    def champion(self) -> int | None:
        return self.aliases.get(ALIAS_CHAMPION)

    @property
    def challenger(self) -> int | None:
        return self.aliases.get(ALIAS_CHALLENGER)


@dataclass(frozen=True)
class GuardReport:
    """The audited state, the registry's, and each difference in words (none: all is well)."""

    model: str
    expected: ReleaseState
    found: ReleaseState
    findings: list[str]


def audited_state(events: Iterable[AuditEvent]) -> ReleaseState:
    """The release state the audit events of one model leave, replayed in order."""
    aliases: dict[str, int] = {}
    shares: dict[int, str] = {}
    stages: dict[int, str | None] = {}
    for event in events:
        for alias, move in dict(event.details.get("aliases") or {}).items():
            if alias in GUARDED_ALIASES:
                _set(aliases, alias, move["to"])
        cleared = dict(event.details.get("cleared") or {})
        for place in (event.details, cleared):
            if TAG_CANARY_SHARE in place:
                _set(shares, event.version, place[TAG_CANARY_SHARE]["to"])
        if event.to_stage is not None:
            stages[event.version] = event.to_stage
    return ReleaseState(aliases, shares, stages)


def registry_state(aliases: dict[str, int],
                   versions: Iterable[RegisteredVersion]) -> ReleaseState:
    """The same state as the registry holds it now."""
    listed = list(versions)
    return ReleaseState(
        {alias: aliases[alias] for alias in GUARDED_ALIASES if alias in aliases},
        {v.version: v.tags[TAG_CANARY_SHARE] for v in listed if TAG_CANARY_SHARE in v.tags},
        {v.version: v.stage for v in listed})


def compare(model: str, expected: ReleaseState, found: ReleaseState,
            gates_failed: dict[int, bool]) -> GuardReport:
    """Every way `found` differs from `expected`. A version the audit log never names may hold
    only an evaluation stage; `gates_failed` says which versions failed a gate."""
    findings = []
    for alias in GUARDED_ALIASES:
        if found.aliases.get(alias) != expected.aliases.get(alias):
            findings.append(f"{alias} points at {_name(found.aliases.get(alias))}; the audit "
                            f"log says {_name(expected.aliases.get(alias))}")
    for version in sorted(set(found.canary_shares) | set(expected.canary_shares)):
        if found.canary_shares.get(version) != expected.canary_shares.get(version):
            findings.append(f"version {version} has {TAG_CANARY_SHARE}="
                            f"{found.canary_shares.get(version)}; the audit log says "
                            f"{expected.canary_shares.get(version)}")
    for version, stage in sorted(found.stages.items()):
        wanted = expected_stage(expected, version, stage, gates_failed.get(version, False))
        if stage != wanted:
            findings.append(f"version {version} has {TAG_STAGE}={stage}; the audit log says "
                            f"{wanted}")
    return GuardReport(model, expected, found, findings)


def expected_stage(expected: ReleaseState, version: int, stage: str | None,
                   gates_failed: bool) -> str | None:
    """The stage `version` should hold: its last audited one; for a version the log never
    names, its evaluation's verdict (`rejected` is final, and a failed gate makes a
    candidate rejected), so a release stage set on it by hand goes back."""
    if version in expected.stages:
        return expected.stages[version]
    if stage is None or stage == STAGE_REJECTED:
        return stage
    return STAGE_REJECTED if gates_failed else STAGE_CANDIDATE


def failed_a_gate(version: RegisteredVersion) -> bool:
    """Whether any of the version's gate tags is not `pass`."""
    return any(value != "pass" for key, value in version.tags.items()
               if key.startswith(GATE_PREFIX))


def check_release(releases: Releases, name: str) -> GuardReport:
    """The registry's release state of model `name` against its audit log's."""
    versions = [as_registered(found) for found in
                releases.client.search_model_versions(f"name = '{name}'")]
    aliases = releases.aliases(name) if versions else {}
    return compare(name, audited_state(releases.audit.read(name)),
                   registry_state(aliases, versions),
                   {version.version: failed_a_gate(version) for version in versions})


def restore_release(releases: Releases, report: GuardReport, actor: str) -> None:
    """Put the registry back to the audited state `report` holds, and write what was found
    and undone to the audit log (its aliases, shares and stages are left as the log says)."""
    client, name = releases.client, report.model
    expected, found = report.expected, report.found
    for alias in GUARDED_ALIASES:
        wanted = expected.aliases.get(alias)
        if found.aliases.get(alias) != wanted:
            if wanted is None:
                client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, str(wanted))
    for version in set(found.canary_shares) | set(expected.canary_shares):
        _restore_tag(releases, name, version, TAG_CANARY_SHARE,
                     found.canary_shares.get(version), expected.canary_shares.get(version))
    for version, stage in found.stages.items():
        _restore_tag(releases, name, version, TAG_STAGE, stage,
                     expected_stage(expected, version, stage,
                                    failed_a_gate(releases.version(name, version))))
    releases.audit.append(AuditEvent(
        time=utc_now(), model=name, version=expected.champion or 0, action=ACTION_RESTORE,
        from_stage=None, to_stage=None, actor=actor,
        reason="the registry differed from the audit log; put back",
        details={"findings": report.findings}))


def _restore_tag(releases: Releases, name: str, version: int, tag: str, found: str | None,
                 wanted: str | None) -> None:
    if found == wanted:
        return
    if wanted is None:
        releases.client.delete_model_version_tag(name, str(version), tag)
    else:
        releases.client.set_model_version_tag(name, str(version), tag, wanted)


def _set(mapping: dict, key: object, value: object) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _name(version: int | None) -> str:
    return "nothing" if version is None else f"version {version}"
