"""Incidents and drift alert texts: one alert per incident, the cooldown, new signals, recovery,
silences (during an incident and announced in advance), the state file, and the figures on-call
reads. Every time is explicit: nothing sleeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from components.monitor.alerts import drift_alert, recovery_alert
from components.monitor.incidents import (
    IncidentBook,
    IncidentStateError,
    Verdict,
    format_duration,
)

MODEL = "card-grader"
T0 = datetime(2026, 11, 23, 4, 5, tzinfo=UTC)
COOLDOWN = timedelta(hours=6)
JUDGEMENT = {"status": "drift", "window_size": 120, "reference_size": 300, "signals": [
    {"name": "grades", "kind": "prediction", "score": 0.02, "threshold": 0.1,
     "method": "jensenshannon", "drifted": False, "note": ""},
    {"name": "brightness", "kind": "image", "score": 0.84, "threshold": 0.1,
     "method": "wasserstein", "drifted": True, "note": ""},
    {"name": "embeddings", "kind": "embedding", "score": 0.91, "threshold": 0.55,
     "method": "model", "drifted": True, "note": "5 principal components"},
    {"name": "contrast", "kind": "image", "score": 0.002, "threshold": 0.01, "method": "ks",
     "direction": "below", "drifted": True, "note": ""},
    {"name": "kappa", "kind": "performance", "score": None, "threshold": None,
     "method": "quadratic kappa", "direction": "below", "drifted": False,
     "note": "12 expert grades, 30 needed"},
]}


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.fixture()
def book(tmp_path: Path) -> IncidentBook:
    return IncidentBook(tmp_path / "monitor" / "incidents.json", COOLDOWN)


def test_drift_opens_an_incident_and_alerts(book: IncidentBook) -> None:
    verdict = book.observe(MODEL, "drift", ["embeddings", "brightness"], T0)

    assert verdict.action == "alert"
    assert verdict.incident_id == "card-grader-20261123T0405"
    assert verdict.incident.opened == verdict.incident.last_alert == T0
    assert verdict.incident.signals == ("brightness", "embeddings")
    assert "opened" in verdict.reason


def test_ok_without_an_incident_is_nothing(book: IncidentBook) -> None:
    verdict = book.observe(MODEL, "ok", [], T0)

    assert (verdict.action, verdict.incident_id, verdict.incident) == ("none", None, None)


def test_ongoing_drift_is_quiet_until_the_cooldown_has_passed(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)

    quiet = book.observe(MODEL, "drift", ["brightness"], hours(5.99))
    reminder = book.observe(MODEL, "drift", ["brightness"], hours(6))
    after = book.observe(MODEL, "drift", ["brightness"], hours(7))

    assert quiet.action == "quiet" and "2026-11-23 10:05 UTC" in quiet.reason
    assert reminder.action == "alert" and "cooldown" in reminder.reason
    assert reminder.incident_id == quiet.incident_id == "card-grader-20261123T0405"
    assert reminder.incident.last_alert == hours(6)
    assert after.action == "quiet"


def test_a_signal_the_incident_had_not_seen_alerts_within_the_cooldown(
        book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)

    verdict = book.observe(MODEL, "drift", ["brightness", "embeddings"], hours(1))
    again = book.observe(MODEL, "drift", ["embeddings"], hours(2))

    assert verdict.action == "alert" and "embeddings" in verdict.reason
    assert "brightness" not in verdict.reason
    assert verdict.incident.signals == ("brightness", "embeddings")
    assert again.action == "quiet"


def test_ok_closes_the_incident_with_how_long_it_lasted(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)

    verdict = book.observe(MODEL, "ok", [], hours(7.5))
    later = book.observe(MODEL, "ok", [], hours(8))
    reopened = book.observe(MODEL, "drift", ["brightness"], hours(9))

    assert verdict.action == "recovered" and verdict.incident_id == "card-grader-20261123T0405"
    assert verdict.incident.closed == hours(7.5)
    assert verdict.incident.duration == timedelta(hours=7.5) and "7h 30m" in verdict.reason
    assert later.action == "none"
    assert reopened.action == "alert" and reopened.incident_id == "card-grader-20261123T1305"


def test_too_small_never_opens_closes_or_realerts(book: IncidentBook) -> None:
    assert book.observe(MODEL, "too_small", [], T0).action == "none"
    opened = book.observe(MODEL, "drift", ["brightness"], hours(1))

    small = book.observe(MODEL, "too_small", [], hours(12))
    still = book.observe(MODEL, "drift", ["brightness"], hours(12.5))

    assert small.action == "none" and "too small" in small.reason
    assert small.incident == opened.incident
    assert still.action == "alert" and still.incident_id == opened.incident_id


def test_silenced_incident_is_silenced_until_the_silence_ends(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)
    incident = book.silence(MODEL, until=hours(12), reason="new lamp in studio 2", by="ada",
                            now=hours(1))

    new_signal = book.observe(MODEL, "drift", ["brightness", "grades"], hours(2))
    quiet = book.observe(MODEL, "drift", ["brightness", "grades"], hours(3))
    due = book.observe(MODEL, "drift", ["brightness", "grades"], hours(8))
    ended = book.observe(MODEL, "drift", ["brightness", "grades"], hours(12))

    assert incident.silenced_until == hours(12) and incident.silenced_by == "ada"
    assert new_signal.action == "silenced" and "grades" in new_signal.reason
    assert "ada" in new_signal.reason and "new lamp in studio 2" in new_signal.reason
    assert quiet.action == "quiet"
    assert due.action == "silenced" and due.incident.last_alert == T0
    assert ended.action == "alert" and ended.incident.last_alert == hours(12)


def test_recovery_is_announced_through_a_silence_and_clears_it(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)
    book.silence(MODEL, until=hours(24), reason="new lamp", by="ada", now=hours(1))

    recovered = book.observe(MODEL, "ok", [], hours(2))
    next_one = book.observe(MODEL, "drift", ["brightness"], hours(3))

    assert recovered.action == "recovered" and recovered.incident.silenced_until is None
    assert next_one.action == "alert"


def test_silence_in_advance_holds_back_an_incident_that_opens_before_it_ends(
        book: IncidentBook) -> None:
    planned = book.silence(MODEL, until=hours(10), reason="camera swap", by="bob", now=T0)

    nothing = book.observe(MODEL, "ok", [], hours(1))
    opened = book.observe(MODEL, "drift", ["brightness"], hours(2))
    ended = book.observe(MODEL, "drift", ["brightness"], hours(10))

    assert planned.id is None and planned.opened is None and planned.silenced_until == hours(10)
    assert nothing.action == "none"
    assert opened.action == "silenced" and opened.incident_id == "card-grader-20261123T0605"
    assert opened.incident.silenced_by == "bob" and opened.incident.last_alert is None
    assert ended.action == "alert" and "no alert sent yet" in ended.reason


def test_a_silence_in_advance_that_ran_out_does_not_hold_back_a_later_incident(
        book: IncidentBook) -> None:
    book.silence(MODEL, until=hours(1), reason="camera swap", by="bob", now=T0)

    verdict = book.observe(MODEL, "drift", ["brightness"], hours(2))

    assert verdict.action == "alert" and verdict.incident.silenced_until is None


def test_silence_refuses_a_time_in_the_past(book: IncidentBook) -> None:
    with pytest.raises(ValueError, match="2026-11-23T03:05:00"):
        book.silence(MODEL, until=hours(-1), reason="late", by="ada", now=T0)


def test_silence_needs_a_reason_and_who(book: IncidentBook) -> None:
    with pytest.raises(ValueError, match="reason"):
        book.silence(MODEL, until=hours(1), reason=" ", by="ada", now=T0)


def test_times_without_a_zone_are_refused(book: IncidentBook) -> None:
    with pytest.raises(ValueError, match="time zone"):
        book.observe(MODEL, "drift", ["brightness"], datetime(2026, 11, 23, 4, 5))


def test_models_have_their_own_incidents(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)

    other = book.observe("corner-detector", "drift", ["brightness"], hours(1))

    assert other.action == "alert" and other.incident_id == "corner-detector-20261123T0505"
    assert book.observe(MODEL, "drift", ["brightness"], hours(2)).action == "quiet"


def test_state_survives_a_new_book_on_the_same_file(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)
    book.silence(MODEL, until=hours(12), reason="new lamp", by="ada", now=hours(1))

    reopened = IncidentBook(book.path, COOLDOWN)
    verdict = reopened.observe(MODEL, "drift", ["brightness"], hours(7))

    assert verdict.action == "silenced" and verdict.incident_id == "card-grader-20261123T0405"
    assert verdict.incident.opened == T0 and verdict.incident.silence_reason == "new lamp"
    stored = json.loads(book.path.read_text())["models"][MODEL]
    assert stored["opened"] == "2026-11-23T04:05:00+00:00"
    assert {p.name for p in book.path.parent.iterdir()} == {"incidents.json",
                                                            "incidents.json.lock"}


def test_a_corrupt_state_file_is_an_error_naming_it(book: IncidentBook) -> None:
    book.path.parent.mkdir(parents=True)
    book.path.write_text('{"version": 1, "models": {"card-grader": {"opened": "yesterday"')

    with pytest.raises(IncidentStateError, match=str(book.path)):
        book.observe(MODEL, "ok", [], T0)
    assert book.path.read_text().startswith('{"version": 1')  # left as it was


def test_a_state_file_with_bad_fields_is_an_error(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)
    document = json.loads(book.path.read_text())
    document["models"][MODEL]["opened"] = "yesterday"
    book.path.write_text(json.dumps(document))

    with pytest.raises(IncidentStateError, match="corrupt"):
        book.observe(MODEL, "ok", [], hours(1))


def test_verdict_as_dict_is_json_safe(book: IncidentBook) -> None:
    verdict = book.observe(MODEL, "drift", ["brightness"], T0)

    document = json.loads(json.dumps(verdict.as_dict()))

    assert document["action"] == "alert"
    assert document["incident"]["last_alert"] == "2026-11-23T04:05:00+00:00"
    assert document["incident"]["signals"] == ["brightness"]


@pytest.mark.parametrize(("span", "text"), [(timedelta(minutes=40), "40m"),
                                            (timedelta(hours=5, minutes=12), "5h 12m"),
                                            (timedelta(days=2, hours=3), "2d 3h")])
def test_durations_read_as_on_call_reads_them(span: timedelta, text: str) -> None:
    assert format_duration(span) == text


def test_drift_alert_gives_the_figures_and_what_to_do(book: IncidentBook) -> None:
    verdict = book.observe(MODEL, "drift", ["brightness", "embeddings"], T0)

    subject, body = drift_alert(MODEL, 3, "last 24h", JUDGEMENT, "/gl/reports/drift.html",
                                "/gl/reports/sheet.png", verdict)

    assert subject == "[gradeline] drift: card-grader v3 (brightness, contrast, embeddings)"
    assert "card-grader version 3: 3 of 5 signals drifted" in body
    assert "contrast (image): 0.002 < 0.01 (ks)" in body  # a p-value drifts downwards
    assert "kappa (performance): not judged (quadratic kappa), 12 expert grades" in body
    assert "last 24h, 120 served photos vs 300 reference" in body
    assert "brightness (image): 0.84 > 0.1 (wasserstein)" in body
    assert "embeddings (embedding): 0.91 > 0.55 (model), 5 principal components" in body
    assert "grades (prediction): 0.02 <= 0.1 (jensenshannon)" in body
    drifted, within = body.index("brightness (image)"), body.index("grades (prediction)")
    # most drifted first: 8.4x, then 5x (a p-value 5x below), then 1.65x
    assert drifted < body.index("contrast (image)") < body.index("embeddings (embedding)")
    assert within > drifted
    assert "/gl/reports/drift.html" in body and "/gl/reports/sheet.png" in body
    assert "card-grader-20261123T0405" in body
    assert 'gradeline silence --model card-grader --hours 12 --by <you> --reason "..."' in body
    assert 'gradeline rollback --model card-grader --by <you> --reason "..."' in body


def test_a_reminder_says_how_long_the_drift_has_lasted(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness"], T0)
    reminder = book.observe(MODEL, "drift", ["brightness"], hours(6.5))

    subject, body = drift_alert(MODEL, 3, "last 24h", JUDGEMENT, "r.html", None, reminder)

    assert subject.startswith("[gradeline] drift ongoing 6h 30m: card-grader v3")
    assert "cooldown" in body and "Most drifted photos: no contact sheet" in body


def test_recovery_alert_says_how_long_the_incident_lasted(book: IncidentBook) -> None:
    book.observe(MODEL, "drift", ["brightness", "embeddings"], T0)
    verdict = book.observe(MODEL, "ok", [], hours(7.5))

    subject, body = recovery_alert(MODEL, 3, "last 24h", verdict)

    assert subject == "[gradeline] recovered: card-grader v3 after 7h 30m"
    assert "card-grader-20261123T0405 lasted 7h 30m" in body
    assert "brightness, embeddings" in body


def test_texts_need_an_incident() -> None:
    with pytest.raises(ValueError, match="no incident"):
        recovery_alert(MODEL, 3, "last 24h", Verdict("none", None, "no drift", None))
