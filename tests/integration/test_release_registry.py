"""The release state machine against a real MLflow registry (a SQLite store in tmp_path):
stages, aliases, approval and the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from model_registry.audit import (
    ACTION_ALIAS,
    ACTION_APPROVAL,
    ACTION_ROLLBACK,
    ACTION_STEP_JUDGED,
)
from model_registry.names import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    ALIAS_PREVIOUS,
    STAGE_AWAITING_APPROVAL,
    STAGE_CANARY,
    STAGE_CANDIDATE,
    STAGE_CHAMPION,
    STAGE_REJECTED,
    STAGE_RETIRED,
    STAGE_ROLLED_BACK,
    STAGE_SHADOW,
    TAG_CANARY_SHARE,
    TAG_STAGE,
)
from model_registry.releases import Releases
from model_registry.stages import Approval, ReleaseError

pytestmark = pytest.mark.integration

MODEL = "card-grader"


def candidate(client: MlflowClient, source: Path, **gates: str) -> int:
    """A new version as evaluation leaves it: stage candidate with its gate tags."""
    tags = {TAG_STAGE: STAGE_CANDIDATE,
            **{f"gate.{gate}": value for gate, value in (gates or {"kappa": "pass"}).items()}}
    return int(client.create_model_version(MODEL, source=str(source), run_id=None,
                                           tags=tags).version)


def stage_of(client: MlflowClient, version: int) -> str:
    return client.get_model_version(MODEL, str(version)).tags[TAG_STAGE]


def snapshot(client: MlflowClient) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    """Aliases and every version's tags: what a refused step must leave as it was."""
    versions = client.search_model_versions(f"name = '{MODEL}'")
    return (dict(client.get_registered_model(MODEL).aliases),
            {int(v.version): dict(v.tags) for v in versions})


def to_approval(releases: Releases, version: int) -> None:
    releases.enter_shadow(MODEL, version, actor="release-flow")
    releases.set_stage(MODEL, version, STAGE_CANARY, "release-flow", "shadow agreed")
    releases.request_approval(MODEL, version, actor="release-flow")


def crowned(releases: Releases, version: int) -> None:
    to_approval(releases, version)
    releases.decide(MODEL, version, "approved", by="alice")
    releases.crown(MODEL, version, actor="release-flow", reason="approved")


def test_happy_path_from_candidate_to_champion(releases: Releases, client: MlflowClient,
                                               tmp_path: Path) -> None:
    first = candidate(client, tmp_path)
    assert releases.crown(MODEL, first, "demo", "fresh install", first=True) == {
        "champion": first, "previous": None}
    second = candidate(client, tmp_path)

    releases.enter_shadow(MODEL, second, actor="release-flow")
    assert releases.aliases(MODEL) == {ALIAS_CHAMPION: first, ALIAS_CHALLENGER: second}
    releases.record_release_figures(MODEL, second, "shadow", {"agreement": 0.976543, "n": 512},
                                    "release-flow", "passed")
    releases.set_stage(MODEL, second, STAGE_CANARY, "release-flow", "shadow agreement 0.977")
    releases.set_canary_share(MODEL, second, 0.05, actor="release-flow")
    assert client.get_model_version(MODEL, str(second)).tags[TAG_CANARY_SHARE] == "0.05"
    releases.set_canary_share(MODEL, second, 0.25, actor="release-flow")
    releases.record_release_figures(MODEL, second, "canary_25", {"p99_ms": 41.23456},
                                    "release-flow", "passed")
    releases.request_approval(MODEL, second, actor="release-flow")
    # While the reviewer decides, the challenger answers nobody: back to shadow scoring.
    assert TAG_CANARY_SHARE not in client.get_model_version(MODEL, str(second)).tags
    releases.decide(MODEL, second, "approved", by="alice", reason="figures fine")
    assert releases.approval(MODEL, second) == Approval(decision="approved", by="alice")

    assert releases.crown(MODEL, second, "release-flow", "approved by alice") == {
        "champion": second, "previous": first}
    assert releases.aliases(MODEL) == {ALIAS_CHAMPION: second, ALIAS_PREVIOUS: first}
    assert stage_of(client, second) == STAGE_CHAMPION and stage_of(client, first) == STAGE_RETIRED
    tags = client.get_model_version(MODEL, str(second)).tags
    assert TAG_CANARY_SHARE not in tags
    assert tags["release.shadow.agreement"] == "0.9765" and tags["release.shadow.n"] == "512"
    assert tags["release.canary_25.p99_ms"] == "41.23"
    champion = releases.version_for(MODEL, ALIAS_CHAMPION)
    assert champion is not None and champion.version == second
    assert releases.version_for(MODEL, ALIAS_CHALLENGER) is None

    events = releases.audit.read(MODEL)
    steps = [(e.version, e.action, e.from_stage, e.to_stage, e.actor) for e in events]
    assert steps == [
        (first, ACTION_ALIAS, STAGE_CANDIDATE, STAGE_CHAMPION, "demo"),
        (second, "stage", STAGE_CANDIDATE, STAGE_SHADOW, "release-flow"),
        (second, ACTION_STEP_JUDGED, None, None, "release-flow"),
        (second, "stage", STAGE_SHADOW, STAGE_CANARY, "release-flow"),
        (second, "canary_share", None, None, "release-flow"),
        (second, "canary_share", None, None, "release-flow"),
        (second, ACTION_STEP_JUDGED, None, None, "release-flow"),
        (second, "stage", STAGE_CANARY, STAGE_AWAITING_APPROVAL, "release-flow"),
        (second, ACTION_APPROVAL, None, None, "alice"),
        (second, ACTION_ALIAS, STAGE_AWAITING_APPROVAL, STAGE_CHAMPION, "release-flow"),
        (first, "stage", STAGE_CHAMPION, STAGE_RETIRED, "release-flow"),
    ]
    assert events[2].details == {"step": "shadow", "figures": {"agreement": 0.976543, "n": 512}}
    assert events[5].details[TAG_CANARY_SHARE] == {"from": "0.05", "to": "0.25"}
    assert events[9].details["aliases"] == {
        ALIAS_PREVIOUS: {"from": None, "to": first},
        ALIAS_CHAMPION: {"from": first, "to": second},
        ALIAS_CHALLENGER: {"from": second, "to": None}}


def test_illegal_moves_raise_and_change_nothing(releases: Releases, client: MlflowClient,
                                                tmp_path: Path) -> None:
    version = candidate(client, tmp_path)
    before = snapshot(client)
    with pytest.raises(ReleaseError, match=r"version 1 is candidate .*rejected, shadow"):
        releases.set_stage(MODEL, version, STAGE_CANARY, "bob", "skip shadow")
    with pytest.raises(ReleaseError, match="is candidate and may move to .*not to champion"):
        releases.crown(MODEL, version, "bob", "skip the release")
    with pytest.raises(ReleaseError, match="canary share is set on a version in canary"):
        releases.set_canary_share(MODEL, version, 0.05, actor="bob")
    with pytest.raises(ReleaseError, match="awaiting_approval"):
        releases.decide(MODEL, version, "approved", by="alice")
    assert snapshot(client) == before

    releases.enter_shadow(MODEL, version, actor="release-flow")
    before = snapshot(client)
    with pytest.raises(ReleaseError, match="is shadow and may move to .*not to champion"):
        releases.set_stage(MODEL, version, STAGE_CHAMPION, "bob", "shortcut")
    with pytest.raises(ReleaseError, match="shadow and may move to canary, rejected"):
        releases.request_approval(MODEL, version, actor="bob")
    with pytest.raises(ReleaseError, match="actor is required"):
        releases.set_stage(MODEL, version, STAGE_CANARY, " ", "no one")
    assert snapshot(client) == before

    releases.reject(MODEL, version, "bob", "looks wrong")
    assert ALIAS_CHALLENGER not in releases.aliases(MODEL)
    before = snapshot(client)
    with pytest.raises(ReleaseError, match="nowhere"):
        releases.set_stage(MODEL, version, STAGE_SHADOW, "bob", "again")
    assert snapshot(client) == before
    assert stage_of(client, version) == STAGE_REJECTED


def test_failed_gate_and_second_challenger_are_refused(releases: Releases, client: MlflowClient,
                                                       tmp_path: Path) -> None:
    failed = candidate(client, tmp_path, kappa="pass", latency="fail")
    ungated = int(client.create_model_version(MODEL, source=str(tmp_path), run_id=None,
                                              tags={TAG_STAGE: STAGE_CANDIDATE}).version)
    before = snapshot(client)
    with pytest.raises(ReleaseError, match=r"did not pass gate\.latency=fail"):
        releases.enter_shadow(MODEL, failed, actor="release-flow")
    with pytest.raises(ReleaseError, match="no gate"):
        releases.enter_shadow(MODEL, ungated, actor="release-flow")
    assert snapshot(client) == before

    first, second = candidate(client, tmp_path), candidate(client, tmp_path)
    releases.enter_shadow(MODEL, first, actor="release-flow")
    releases.set_stage(MODEL, first, STAGE_CANARY, "release-flow", "shadow agreed")
    before = snapshot(client)
    with pytest.raises(ReleaseError, match=f"version {first} is the challenger already"):
        releases.enter_shadow(MODEL, second, actor="release-flow")
    assert snapshot(client) == before


def test_approval_parsing(releases: Releases, client: MlflowClient, tmp_path: Path) -> None:
    version = candidate(client, tmp_path)
    to_approval(releases, version)
    assert releases.approval(MODEL, version) is None
    with pytest.raises(ReleaseError, match=r"not approved \(approval=unset\)"):
        releases.crown(MODEL, version, "release-flow", "no review")
    # A reviewer typing in the MLflow UI
    client.set_model_version_tag(MODEL, str(version), "approval", " Approved ")
    client.set_model_version_tag(MODEL, str(version), "approved_by", "carol")
    assert releases.approval(MODEL, version) == Approval(decision="approved", by="carol")

    client.set_model_version_tag(MODEL, str(version), "approval", "yes")
    before = snapshot(client)
    with pytest.raises(ReleaseError, match="'yes' is neither 'approved' nor 'rejected'"):
        releases.approval(MODEL, version)
    with pytest.raises(ReleaseError, match="'yes' is neither"):
        releases.crown(MODEL, version, "release-flow", "approved?")
    with pytest.raises(ReleaseError, match="'yes' is neither"):
        releases.decide(MODEL, version, "yes", by="alice")
    with pytest.raises(ReleaseError, match="reviewer"):
        releases.decide(MODEL, version, "approved", by="  ")
    assert snapshot(client) == before

    releases.decide(MODEL, version, " Rejected", by="alice")
    with pytest.raises(ReleaseError, match="not approved .approval=rejected"):
        releases.crown(MODEL, version, "release-flow", "approved?")
    releases.reject(MODEL, version, "release-flow", "reviewer refused")
    assert stage_of(client, version) == STAGE_REJECTED
    assert releases.aliases(MODEL) == {}


def test_request_approval_clears_an_earlier_decision(releases: Releases, client: MlflowClient,
                                                     tmp_path: Path) -> None:
    version = candidate(client, tmp_path)
    releases.enter_shadow(MODEL, version, actor="release-flow")
    releases.set_stage(MODEL, version, STAGE_CANARY, "release-flow", "shadow agreed")
    client.set_model_version_tag(MODEL, str(version), "approval", "approved")
    releases.request_approval(MODEL, version, actor="release-flow")
    assert releases.approval(MODEL, version) is None
    releases.decide(MODEL, version, "approved", by="alice")
    before = snapshot(client)
    with pytest.raises(ReleaseError, match="goes with the champion alias; use crown"):
        releases.set_stage(MODEL, version, STAGE_CHAMPION, "bob", "without the alias")
    assert snapshot(client) == before


def test_roll_back_challenger(releases: Releases, client: MlflowClient, tmp_path: Path) -> None:
    champion, challenger = candidate(client, tmp_path), candidate(client, tmp_path)
    releases.crown(MODEL, champion, "demo", "fresh install", first=True)
    releases.enter_shadow(MODEL, challenger, actor="release-flow")
    releases.set_stage(MODEL, challenger, STAGE_CANARY, "release-flow", "shadow agreed")
    releases.set_canary_share(MODEL, challenger, 0.05, actor="release-flow")

    releases.roll_back_challenger(MODEL, challenger, "canary-watch", "p99 above budget",
                                  {"p99_ms": 180.0, "budget_ms": 120})
    assert releases.aliases(MODEL) == {ALIAS_CHAMPION: champion}
    assert stage_of(client, challenger) == STAGE_ROLLED_BACK
    assert TAG_CANARY_SHARE not in client.get_model_version(MODEL, str(challenger)).tags
    last = releases.audit.read(MODEL)[-1]
    assert (last.action, last.actor, last.to_stage) == (ACTION_ROLLBACK, "canary-watch",
                                                        STAGE_ROLLED_BACK)
    assert last.details["figures"] == {"p99_ms": 180.0, "budget_ms": 120}
    assert last.details["aliases"] == {ALIAS_CHALLENGER: {"from": challenger, "to": None}}

    with pytest.raises(ReleaseError, match="only a challenger in shadow or canary"):
        releases.roll_back_challenger(MODEL, champion, "canary-watch", "wrong version")
    # The slot is free again.
    releases.enter_shadow(MODEL, candidate(client, tmp_path), actor="release-flow")


def test_rollback_restores_previous(releases: Releases, client: MlflowClient,
                                    tmp_path: Path) -> None:
    first, second = candidate(client, tmp_path), candidate(client, tmp_path)
    releases.crown(MODEL, first, "demo", "fresh install", first=True)
    with pytest.raises(ReleaseError, match="no 'previous' version to roll back to"):
        releases.rollback(MODEL, "bob", "bad night")
    crowned(releases, second)

    assert releases.rollback(MODEL, "bob", "p99 doubled") == {"champion": first,
                                                             "rolled_back": second}
    assert releases.aliases(MODEL) == {ALIAS_CHAMPION: first}
    assert stage_of(client, first) == STAGE_CHAMPION
    assert stage_of(client, second) == STAGE_ROLLED_BACK
    rollback, restored = releases.audit.read(MODEL)[-2:]
    assert (rollback.version, rollback.action, rollback.actor, rollback.reason) == (
        second, ACTION_ROLLBACK, "bob", "p99 doubled")
    assert (restored.version, restored.from_stage, restored.to_stage) == (
        first, STAGE_RETIRED, STAGE_CHAMPION)

    before = snapshot(client)
    with pytest.raises(ReleaseError, match="no 'previous'.*champion: 1"):
        releases.rollback(MODEL, "bob", "again")
    assert snapshot(client) == before


def test_first_champion_only_on_a_fresh_install(releases: Releases, client: MlflowClient,
                                                tmp_path: Path) -> None:
    rejected = candidate(client, tmp_path)
    releases.reject(MODEL, rejected, "bob", "not this one")
    with pytest.raises(ReleaseError, match="the first champion is a candidate"):
        releases.crown(MODEL, rejected, "demo", "fresh install", first=True)
    first, second = candidate(client, tmp_path), candidate(client, tmp_path)
    releases.crown(MODEL, first, "demo", "fresh install", first=True)
    assert stage_of(client, first) == STAGE_CHAMPION
    before = snapshot(client)
    with pytest.raises(ReleaseError, match="has a champion .version 2.; first=True only"):
        releases.crown(MODEL, second, "demo", "again", first=True)
    assert snapshot(client) == before


def test_audit_file_only_grows(releases: Releases, client: MlflowClient, tmp_path: Path) -> None:
    path = releases.audit.path
    first, second = candidate(client, tmp_path), candidate(client, tmp_path)
    releases.crown(MODEL, first, "demo", "fresh install", first=True)
    seen = path.read_bytes()
    for step in (lambda v: releases.enter_shadow(MODEL, v, actor="release-flow"),
                 lambda v: releases.set_stage(MODEL, v, STAGE_CANARY, "release-flow", "ok"),
                 lambda v: releases.request_approval(MODEL, v, actor="release-flow"),
                 lambda v: releases.decide(MODEL, v, "approved", by="alice"),
                 lambda v: releases.crown(MODEL, v, "release-flow", "approved"),
                 lambda v: releases.rollback(MODEL, "bob", "bad night")):
        step(second)
        now = path.read_bytes()
        assert len(now) > len(seen) and now.startswith(seen)
        seen = now
    assert len(releases.audit.read()) == len(seen.splitlines())
    assert releases.audit.read("defect-detector") == []


def test_abort_takes_a_canary_off_traffic_and_refuses_when_nothing_is_in_flight(
        client: MlflowClient, releases: Releases, tmp_path: Path) -> None:
    champion, challenger = candidate(client, tmp_path), candidate(client, tmp_path)
    releases.crown(MODEL, champion, "release-flow", "first", first=True)
    with pytest.raises(ReleaseError, match="no release in flight"):
        releases.abort(MODEL, "bob", "nothing to stop")
    releases.enter_shadow(MODEL, challenger, "release-flow")
    releases.set_stage(MODEL, challenger, STAGE_CANARY, "release-flow", "shadow passed")
    releases.set_canary_share(MODEL, challenger, 0.5, "release-flow")

    stopped = releases.abort(MODEL, "bob", "promote was killed")

    assert stopped.stage == STAGE_ROLLED_BACK == stage_of(client, challenger)
    assert TAG_CANARY_SHARE not in client.get_model_version(MODEL, str(challenger)).tags
    assert ALIAS_CHALLENGER not in client.get_registered_model(MODEL).aliases
    event = releases.audit.read(MODEL)[-1]
    assert (event.action, event.actor, event.to_stage) == ("abort", "bob", STAGE_ROLLED_BACK)
    assert event.details[TAG_CANARY_SHARE] == {"from": "0.5", "to": None}
