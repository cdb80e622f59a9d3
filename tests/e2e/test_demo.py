"""`gradeline demo` end to end at test scale: the whole lifecycle as a real Prefect flow run on
the embedded defaults (the service as its own process on loopback), every step's figures in the
report, drift found on the new camera's day and gone after the retrained champion took over.
On the state the story leaves, `retrain` also shows its other endings: nothing new to learn
from, and a worse model stopped at its gates. Then the loop runs on a real stack: `gradeline up`
and `deploy` of the real prefect.yaml and flows; studio photos reach a champion whose reference
is the phone camera's; the hourly-monitor deployment's run finds the drift and emits the event,
on which the retrain-on-drift trigger starts the real retrain flow on the worker."""

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

import flows.retrain
from components.cards import synthesize_batch
from components.demo import DemoReport, DemoStep
from components.ingest.store import DatasetStore
from components.release.registry import releases_of
from components.serving.keys import KeyStore, Role
from components.serving.loopback import serve_process
from components.serving.traffic import Traffic, TrafficKeys, photos_of_batch
from components.settings import find_project_root, load_settings
from flows.demo import run_demo
from flows.retrain import run_retrain
from model_registry.names import GRADER
from model_registry.versions import registry_client
from tests.stack import poll, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARAMS = Path(__file__).with_name("demo_params.yaml")
ROOT = find_project_root(Path(__file__).parent)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, prefect_server: None
          ) -> tuple[DemoReport, list[str], Path]:
    """The demo, run once: its report, its printed lines and its home."""
    home = tmp_path_factory.mktemp("demo")
    saved = dict(os.environ)
    lines: list[str] = []
    try:
        report = run_demo(load_settings(home=home), echo=lines.append, params_file=PARAMS)
    finally:  # activate() exported the demo home's settings
        os.environ.clear()
        os.environ.update(saved)
    return report, lines, home / "demo"


@pytest.fixture
def demo_home(story: tuple[DemoReport, list[str], Path], _no_gradeline_env: None) -> Path:
    """The demo's home, its settings active for the test."""
    load_settings(home=story[2]).activate()
    return story[2]


def _step(report: DemoReport, name: str) -> DemoStep:
    return next(step for step in report.steps if step.name == name)


def test_the_demo_tells_the_whole_story(story: tuple[DemoReport, list[str], Path]) -> None:
    report, lines, home = story
    assert report.ok, report.error
    assert lines[-1].startswith("demo finished")
    assert lines[-3].startswith("on the new camera, kappa against the experts: ")
    assert lines[-3].endswith("drift: drift, then ok")
    assert report.home == str(home)
    names = [step.name for step in report.steps]
    assert names[:4] == ["day 0: settings the demo changes (demo.overrides, demo.why)",
                         "day 0: synthesize studio batch", "day 0: expert panel agreement",
                         "day 0: contact sheet"]
    changed = report.steps[0]
    assert changed.figures["settings"] == sum(line.count("->") for line in changed.notes) > 0
    note = "monitor.reference_items: default -> 50 (about 15 held out)"
    assert note in changed.notes and f"\n      - {note}\n" in changed.line(1)
    assert names[-2:] == ["day 3: phone traffic", "day 3: monitor"]
    ingests = [s.figures for s in report.steps if s.name.startswith("day 0: ingest")]
    assert [f["status"] for f in ingests] == ["accepted", "already_ingested"]
    assert _step(report, "day 0: first champion").figures == {"champion": 1}

    monitors = {s.name: s for s in report.steps if s.name.endswith("monitor")}
    assert [monitors[f"day {d}: monitor"].figures["status"] for d in (1, 2, 3)] == \
        ["ok", "drift", "ok"]
    drift = monitors["day 2: monitor"]
    assert drift.figures["incident"] == "alert" and drift.figures["version"] == 1
    assert drift.figures["alert"].startswith("[gradeline] drift: card-grader v1")
    assert "<html" in Path(drift.files[0]).read_text().lower()
    # where the model parts from the experts, and thumbnails of the served photos that drifted
    assert [Path(file).name for file in drift.files] == ["drift.html", "discrepancy.html",
                                                         "most_drifted.png"]
    assert "<h2>By camera</h2>" in Path(drift.files[1]).read_text()
    assert drift.figures["queued_for_review"] > 0  # the experts see what changed
    clean = monitors["day 3: monitor"]
    assert clean.figures["version"] == 2 and clean.figures["incident"] == "recovered"

    reviewed = _step(report, "day 2: the expert panel works the review queue (/v1/review/next)")
    assert set(reviewed.figures["by_expert"]) == {"grader_1", "grader_2", "grader_3"}
    exported = _step(report, "day 2: reviewed photos become a labeled batch in the inbox")
    assert exported.figures["items"] > 0
    # The retrained champion learnt from the reviewed phone photos, with their lineage; the
    # audit share among them is test data only.
    dataset = DatasetStore.of(load_settings(home=home), "demo-cards").manifest()
    reviewed_items = dataset[dataset["item_id"].str.startswith("review-")]
    assert len(reviewed_items) == exported.figures["items"]
    assert set(reviewed_items["camera"]) == {"phone"}
    assert reviewed_items["request_id"].notna().all()
    audited = reviewed_items["reasons"].str.split().map(lambda reasons: "audit" in reasons)
    assert (reviewed_items.loc[audited, "split"] == "test").all()
    assert (reviewed_items.loc[~audited, "split"] != "test").all()
    retrained = _step(report, "day 2: retrain, as the drift event triggers it (ingest, train, "
                              "evaluate, release)").figures
    assert retrained["version"] == 2 and retrained["stage"] == "awaiting_approval"
    assert retrained["shadow"].startswith("pass") and retrained["canary_50"].startswith("pass")
    approval = _step(report, "day 2: approval").figures
    assert approval["champion"] == 2 and approval["previous"] == 1
    assert "demo mode" in approval["approved_by"]

    alerts = [json.loads(line) for line in (home / "alerts.jsonl").read_text().splitlines()]
    assert [a["subject"].split(":")[0] for a in alerts] == ["[gradeline] drift",
                                                           "[gradeline] recovered"]
    assert "demo mode" in (home / "audit" / "releases.jsonl").read_text()
    assert any((home / "evidently").rglob("*.json"))  # the runs behind `evidently ui`


def test_a_retrain_with_nothing_new_or_a_worse_model_leaves_the_champion(
        story: tuple[DemoReport, list[str], Path], demo_home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert story[0].ok, story[0].error
    settings = load_settings(home=demo_home)
    # The new camera's batch is still the newest in the inbox, and champion 2 learnt from it.
    repeat = run_retrain(settings, dataset="demo-cards", params_file=str(PARAMS))
    assert repeat["status"] == "nothing_new" and repeat["ingest"]["status"] == "already_ingested"

    # A worse model: training and evaluation stand in (a tiny model failing its kappa gate is
    # the evaluate flow's own test); the batch, the ingest and the registry are real.
    monkeypatch.setattr(flows.retrain, "train", lambda **_: {"version": 3})
    monkeypatch.setattr(flows.retrain, "evaluate", lambda **_: {
        "stage": "rejected", "kappa": 0.1, "report_file": "report.html",
        "gates": [{"name": "kappa", "passed": False}, {"name": "ece", "passed": True}]})
    monkeypatch.setattr(flows.retrain, "promote", _never_promote)
    synthesize_batch(settings.inbox_dir / "batch-more", n=12, seed=31, camera="phone")
    worse = run_retrain(settings, dataset="demo-cards", reason="a test")
    assert worse["status"] == "stopped_at_gates" and worse["version"] == 3
    assert worse["ingest"]["status"] == "accepted" and worse["gates"] == {"kappa": False,
                                                                          "ece": True}
    assert "release" not in worse
    assert releases_of(settings).aliases("card-grader") == {"champion": 2, "previous": 1}


def _never_promote(*_: object) -> None:
    raise AssertionError("a model that failed its gates was handed to promote")


def test_the_demo_reports_a_failed_step_instead_of_crashing(tmp_path: Path, prefect_server: None,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr("os.environ", dict(os.environ))
    broken = tmp_path / "params.yaml"
    broken.write_text(PARAMS.read_text().replace("studio_cards: 50", "studio_cards: 0"))
    report = run_demo(load_settings(home=tmp_path), echo=None, params_file=broken)

    assert not report.ok
    assert "studio_cards" in report.error


def _project(home: Path, folder: Path) -> Path:
    """The repository's prefect.yaml and flows, with the story's params (tiny budgets) but
    production's evaluation gates, which a test-scale model fails: deployed flows read the
    params.yaml of the folder they run in."""
    folder.mkdir()
    (folder / "flows").symlink_to(ROOT / "flows", target_is_directory=True)
    shutil.copy(ROOT / "prefect.yaml", folder / "prefect.yaml")
    params = yaml.safe_load((home / "data" / "demo" / "params.yaml").read_text())
    production = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["evaluate"]["gates"] = production["evaluate"]["gates"]
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def _served_studio_day(home: Path, params: Path, batch: Path) -> tuple[datetime, datetime]:
    """Studio photos answered by the service, with the experts' grades: the window they span."""
    keys = TrafficKeys(client=KeyStore(load_settings(home=home).keys_file).create(
        "loop client", Role.CLIENT)[1])
    with serve_process(home, params, batch.parent / "serve.log") as url:
        since = datetime.now(UTC)
        figures = Traffic(url, photos_of_batch(batch), "loop", keys).run(30)
        until = datetime.now(UTC)
    assert not figures.failures, figures.failures[:3]
    return since, until


def test_on_a_stack_drift_found_by_the_monitor_deployment_starts_the_real_retrain(
        story: tuple[DemoReport, list[str], Path], tmp_path: Path) -> None:
    report, _, home = story
    assert report.ok, report.error
    project = _project(home, tmp_path / "project")
    synthesize_batch(tmp_path / "studio", n=30, seed=51, camera="studio")
    # The labeled batch retraining will learn from, newest in the inbox.
    synthesize_batch(home / "inbox" / "batch-loop", n=20, seed=52, camera="studio")
    releases = releases_of(load_settings(home=home))
    champion = releases.aliases(GRADER)["champion"]
    since, until = _served_studio_day(home, project / "params.yaml", tmp_path / "studio")

    with running_stack(home, project) as stack:
        monitored = stack.finished(stack.start("hourly-monitor", {
            "since": since.isoformat(), "until": until.isoformat()})["id"], timeout=300)
        assert monitored["state_type"] == "COMPLETED", monitored["state"]
        [triggered] = poll("a retrain-on-drift flow run", lambda: stack.runs("retrain-on-drift"),
                           120)
        retrained = stack.finished(triggered["id"], timeout=600)

    assert retrained["state_type"] == "COMPLETED", retrained["state"]
    assert triggered["parameters"]["model"] == GRADER
    assert triggered["parameters"]["reason"].startswith("drift: ")
    alert = json.loads((home / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["subject"].startswith(f"[gradeline] drift: {GRADER} v{champion}")
    client = registry_client(str(load_settings(home=home).mlflow_tracking_uri))
    newest = releases.version(GRADER, max(int(v.version) for v in
                                          client.search_model_versions(f"name = '{GRADER}'")))
    assert newest.version > champion and newest.stage == "rejected"  # stopped at its gates
    assert newest.data_version != releases.version(GRADER, champion).data_version
    assert releases.aliases(GRADER)["champion"] == champion
