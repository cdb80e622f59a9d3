"""`gradeline demo` end to end at test scale: the whole lifecycle as a real Prefect flow run on
the embedded defaults (the service as its own process on loopback), every step's figures in the
report, drift found on the new camera's day and gone after the retrained champion took over."""

import json
from pathlib import Path

import pytest

from components.settings import load_settings
from flows.demo import run_demo

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PARAMS = Path(__file__).with_name("demo_params.yaml")


def _step(report, name: str):
    return next(step for step in report.steps if step.name == name)


def test_the_demo_tells_the_whole_story(tmp_path: Path, prefect_server: None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.environ", dict(__import__("os").environ))  # activate() must not leak
    lines: list[str] = []
    report = run_demo(load_settings(home=tmp_path), echo=lines.append, params_file=PARAMS)

    assert report.ok, report.error
    assert lines[-1].startswith("demo finished")
    home = tmp_path / "demo"
    assert report.home == str(home)
    names = [step.name for step in report.steps]
    assert names[:3] == ["day 0: synthesize studio batch", "day 0: expert panel agreement",
                         "day 0: contact sheet"]
    assert names[-2:] == ["day 5: phone traffic", "day 5: monitor"]
    ingests = [s.figures for s in report.steps if s.name.startswith("day 0: ingest")]
    assert [f["status"] for f in ingests] == ["accepted", "already_ingested"]
    assert _step(report, "day 0: first champion").figures == {"champion": 1}

    monitors = {s.name: s for s in report.steps if s.name.endswith("monitor")}
    assert [monitors[f"day {d}: monitor"].figures["status"] for d in (1, 2, 3, 4, 5)] == \
        ["ok", "ok", "ok", "drift", "ok"]
    drift = monitors["day 4: monitor"]
    assert drift.figures["incident"] == "alert" and drift.figures["version"] == 1
    assert drift.figures["alert"].startswith("[gradeline] drift: card-grader v1")
    assert "<html" in Path(drift.files[0]).read_text().lower()
    assert Path(drift.files[1]).name == "most_drifted.png"  # thumbnails of served photos
    clean = monitors["day 5: monitor"]
    assert clean.figures["version"] == 2 and clean.figures["incident"] == "recovered"

    retrained = _step(report, "day 4: retrain, as the drift event triggers it (ingest, train, "
                              "evaluate, release)").figures
    assert retrained["version"] == 2 and retrained["stage"] == "awaiting_approval"
    assert retrained["shadow"].startswith("pass") and retrained["canary_50"].startswith("pass")
    approval = _step(report, "day 4: approval").figures
    assert approval["champion"] == 2 and approval["previous"] == 1
    assert "demo mode" in approval["approved_by"]

    alerts = [json.loads(line) for line in (home / "alerts.jsonl").read_text().splitlines()]
    assert [a["subject"].split(":")[0] for a in alerts] == ["[gradeline] drift",
                                                           "[gradeline] recovered"]
    audit = (home / "audit" / "releases.jsonl").read_text()
    assert "demo mode" in audit
    assert any((home / "evidently").rglob("*.json"))  # the runs behind `evidently ui`


def test_the_demo_reports_a_failed_step_instead_of_crashing(tmp_path: Path, prefect_server: None,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr("os.environ", dict(__import__("os").environ))
    broken = tmp_path / "params.yaml"
    broken.write_text(PARAMS.read_text().replace("studio_cards: 50", "studio_cards: 0"))
    report = run_demo(load_settings(home=tmp_path), echo=None, params_file=broken)

    assert not report.ok
    assert "studio_cards" in report.error
