"""`gradeline demo` end to end at test scale: the whole lifecycle as a real Prefect flow run on
the embedded defaults (the service as its own process on loopback), every step's figures in the
report, drift found on the new camera's day and gone after the retrained champion took over.
On the state the story leaves, `retrain` also shows its other endings: nothing new to learn
from, and a worse model stopped at its gates."""

import json
import os
from pathlib import Path

import pytest

import flows.retrain
from components.cards import synthesize_batch
from components.release.registry import releases_of
from components.settings import load_settings
from flows.demo import DemoReport, DemoStep, run_demo
from flows.retrain import run_retrain

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARAMS = Path(__file__).with_name("demo_params.yaml")


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
    assert changed.figures["changed"] == sum(line.count("->") for line in changed.notes) > 0
    assert "monitor.reference_items: default -> 50 (about 15 held out)" in changed.notes
    assert "      - monitor.reference_items: default -> 50 (about 15 held out)" in lines[0]
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
    assert Path(drift.files[1]).name == "most_drifted.png"  # thumbnails of served photos
    assert drift.figures["queued_for_review"] > 0  # the experts see what changed
    clean = monitors["day 3: monitor"]
    assert clean.figures["version"] == 2 and clean.figures["incident"] == "recovered"

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
