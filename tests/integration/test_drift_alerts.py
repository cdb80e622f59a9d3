"""Drift alerts reach on-call over real HTTP: an incident's judgements go through the incident
book, the alert texts and `tell_on_call` to Apprise's json:// webhook on a loopback receiver.
Four judgements (drift, drift within the cooldown, drift after it, ok) make exactly three messages:
the alert, one reminder and the recovery; the home's alert log holds the same three.
No Prefect API is involved: flows, CLI and service all tell on-call through components/oncall.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from components.monitor.alerts import drift_alert, recovery_alert
from components.monitor.incidents import IncidentBook, Verdict
from components.oncall import ALERTS_FILE, tell_on_call
from components.settings import GradelineSettings, load_settings

pytestmark = pytest.mark.integration

MODEL = "card-grader"
T0 = datetime(2026, 11, 23, 4, 5, tzinfo=UTC)
JUDGEMENT = {"status": "drift", "window_size": 120, "reference_size": 300, "signals": [
    {"name": "brightness", "kind": "image", "score": 0.84, "threshold": 0.1,
     "method": "wasserstein", "drifted": True, "note": ""},
    {"name": "embeddings", "kind": "embedding", "score": 0.91, "threshold": 0.55,
     "method": "model", "drifted": True, "note": ""},
    {"name": "grades", "kind": "prediction", "score": 0.02, "threshold": 0.1,
     "method": "jensenshannon", "drifted": False, "note": ""},
]}


def _tell(settings: GradelineSettings, verdict: Verdict, report: Path, sheet: Path) -> None:
    """What the monitor flow does with a verdict: alert, remind or announce the recovery."""
    if verdict.action == "alert":
        tell_on_call(settings, *drift_alert(MODEL, 3, "last 24h", JUDGEMENT, str(report),
                                            str(sheet), verdict))
    elif verdict.action == "recovered":
        tell_on_call(settings, *recovery_alert(MODEL, 3, "last 24h", verdict))


def test_one_incident_makes_an_alert_a_reminder_and_a_recovery(
        tmp_path: Path, receiver: tuple[int, list[dict]]) -> None:
    port, received = receiver
    settings = load_settings(home=tmp_path / "home", alert_url=f"json://127.0.0.1:{port}/")
    book = IncidentBook(settings.home / "monitor" / "incidents.json", timedelta(hours=6))
    report, sheet = settings.reports_dir / "drift.html", settings.reports_dir / "sheet.png"
    judgements = [("drift", T0), ("drift", T0 + timedelta(hours=1)),
                  ("drift", T0 + timedelta(hours=6)), ("ok", T0 + timedelta(hours=7))]

    actions = []
    for status, now in judgements:
        drifted = ["brightness", "embeddings"] if status == "drift" else []
        verdict = book.observe(MODEL, status, drifted, now)
        actions.append(verdict.action)
        _tell(settings, verdict, report, sheet)

    assert actions == ["alert", "quiet", "alert", "recovered"]
    assert [m["title"] for m in received] == [
        "[gradeline] drift: card-grader v3 (brightness, embeddings)",
        "[gradeline] drift ongoing 6h 0m: card-grader v3 (brightness, embeddings)",
        "[gradeline] recovered: card-grader v3 after 7h 0m",
    ]
    assert all(m["type"] == "info" for m in received)
    alert, reminder, recovery = (m["message"] for m in received)
    for body in (alert, reminder):
        assert "brightness (image): 0.84 > 0.1 (wasserstein)" in body
        assert "embeddings (embedding): 0.91 > 0.55 (model)" in body
        assert "last 24h, 120 served photos vs 300 reference" in body
        assert str(report) in body and str(sheet) in body
        assert "card-grader-20261123T0405" in body
        assert "gradeline silence --model card-grader" in body
    assert "cooldown" in reminder
    assert "card-grader-20261123T0405 lasted 7h 0m" in recovery

    logged = [json.loads(line) for line in (settings.home / ALERTS_FILE).read_text().splitlines()]
    assert [(e["subject"], e["body"]) for e in logged] == [(m["title"], m["message"])
                                                           for m in received]
