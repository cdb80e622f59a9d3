"""The release guard against a real MLflow registry: a state the audit log cannot explain (an
alias moved, a canary share or a stage set by hand in the MLflow UI or API) is found, put back
and audited; a rejected version stays rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.oncall import ALERTS_FILE
from components.serving.app import put_back_and_tell
from components.serving.metrics import ServiceMetrics
from components.settings import load_settings
from model_registry.audit import ACTION_RESTORE
from model_registry.evaluation import record_gates
from model_registry.guard import check_release, restore_release
from model_registry.names import ALIAS_CHALLENGER, ALIAS_CHAMPION, TAG_CANARY_SHARE, TAG_STAGE
from model_registry.releases import Releases
from tests.integration.test_release_registry import MODEL, candidate, snapshot, stage_of

pytestmark = pytest.mark.integration


def test_a_hand_moved_champion_is_found_put_back_and_audited(
        client: MlflowClient, releases: Releases, tmp_path: Path) -> None:
    champion = candidate(client, tmp_path)
    releases.crown(MODEL, champion, "release-flow", "first", first=True)
    rejected = candidate(client, tmp_path, kappa="fail")
    client.set_model_version_tag(MODEL, str(rejected), TAG_STAGE, "rejected")
    audited = snapshot(client)
    assert check_release(releases, MODEL).findings == []

    client.set_registered_model_alias(MODEL, ALIAS_CHAMPION, str(rejected))
    client.set_model_version_tag(MODEL, str(rejected), TAG_STAGE, "champion")
    report = check_release(releases, MODEL)

    assert report.expected.champion == champion and report.found.champion == rejected
    assert any(f"champion points at version {rejected}" in f for f in report.findings)
    assert any(f"version {rejected} has stage=champion" in f for f in report.findings)
    restore_release(releases, report, actor="guard")
    assert snapshot(client) == audited and check_release(releases, MODEL).findings == []
    restored = releases.audit.read(MODEL)[-1]
    assert restored.action == ACTION_RESTORE and restored.actor == "guard"
    assert restored.details["findings"] == report.findings


def test_a_canary_share_set_by_hand_is_found_while_the_flow_s_own_is_not(
        client: MlflowClient, releases: Releases, tmp_path: Path) -> None:
    champion = candidate(client, tmp_path)
    releases.crown(MODEL, champion, "release-flow", "first", first=True)
    challenger = candidate(client, tmp_path)
    releases.enter_shadow(MODEL, challenger, "release-flow")

    client.set_model_version_tag(MODEL, str(challenger), TAG_CANARY_SHARE, "1")
    report = check_release(releases, MODEL)
    assert report.findings == [f"version {challenger} has canary_share=1; the audit log says "
                               "None"]
    restore_release(releases, report, actor="guard")
    assert TAG_CANARY_SHARE not in client.get_model_version(MODEL, str(challenger)).tags

    releases.set_stage(MODEL, challenger, "canary", "release-flow", "shadow passed")
    releases.set_canary_share(MODEL, challenger, 0.05, "release-flow")
    assert check_release(releases, MODEL).findings == []
    assert check_release(releases, MODEL).expected.canary_shares == {challenger: "0.05"}
    client.delete_registered_model_alias(MODEL, ALIAS_CHALLENGER)
    assert check_release(releases, MODEL).findings == [
        f"challenger points at nothing; the audit log says version {challenger}"]


def test_a_rejected_version_stays_rejected_however_it_is_evaluated_or_tagged(
        client: MlflowClient, releases: Releases, uri: str, tmp_path: Path) -> None:
    run = client.create_run(client.create_experiment("evaluations")).info.run_id
    rejected = int(client.create_model_version(MODEL, str(tmp_path), run_id=run,
                                               tags={TAG_STAGE: "candidate"}).version)
    assert record_gates(uri, MODEL, rejected, {"kappa": (False, 0.81)}) == "rejected"

    assert record_gates(uri, MODEL, rejected, {"kappa": (True, 0.99)}) == "rejected"
    assert stage_of(client, rejected) == "rejected"
    client.set_model_version_tag(MODEL, str(rejected), TAG_STAGE, "candidate")
    client.set_model_version_tag(MODEL, str(rejected), "gate.kappa", "fail")
    report = check_release(releases, MODEL)
    assert report.findings == [f"version {rejected} has stage=candidate; the audit log says "
                               "rejected"]


def test_a_change_cut_off_after_its_audit_line_is_completed_not_lost(
        client: MlflowClient, releases: Releases, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    champion, challenger = candidate(client, tmp_path), candidate(client, tmp_path)
    releases.crown(MODEL, champion, "release-flow", "first", first=True)

    def cut_off(*_: object) -> None:
        raise ConnectionError("the registry went away mid-change")

    monkeypatch.setattr(releases.client, "set_registered_model_alias", cut_off)
    with pytest.raises(ConnectionError):
        releases.enter_shadow(MODEL, challenger, "release-flow")
    monkeypatch.undo()

    report = check_release(releases, MODEL)
    assert report.expected.challenger == challenger and report.found.challenger is None
    restore_release(releases, report, actor="guard")  # what the serving guard does
    assert int(client.get_registered_model(MODEL).aliases[ALIAS_CHALLENGER]) == challenger
    assert stage_of(client, challenger) == "shadow"
    assert check_release(releases, MODEL).findings == []


def test_the_service_puts_a_hand_moved_champion_back_and_tells_on_call(
        client: MlflowClient, releases: Releases, tmp_path: Path,
        receiver: tuple[int, list[dict]]) -> None:
    champion, other = candidate(client, tmp_path), candidate(client, tmp_path)
    releases.crown(MODEL, champion, "release-flow", "first", first=True)
    port, received = receiver
    settings = load_settings(home=tmp_path / "home", alert_url=f"json://127.0.0.1:{port}/")
    metrics = ServiceMetrics()
    client.set_registered_model_alias(MODEL, ALIAS_CHAMPION, str(other))

    put_back_and_tell(settings, releases, metrics)(check_release(releases, MODEL))

    assert int(client.get_registered_model(MODEL).aliases[ALIAS_CHAMPION]) == champion
    alert = json.loads((settings.home / ALERTS_FILE).read_text().splitlines()[-1])
    assert "changed outside the release flow" in alert["subject"]
    assert f"champion points at version {other}" in alert["body"]
    assert received and "changed outside the release flow" in received[-1]["title"]
    assert 'gradeline_release_tampering_total{model="card-grader"} 1.0' in \
        metrics.exposition()[0].decode()
