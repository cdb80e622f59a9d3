"""The review queue on a real SQLite prediction log: which answers are queued and why, how many
expert grades each wants, and leases that hand an item to one expert at a time, expire, and
survive a restart."""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from components.experts import (
    agreement_with_gold,
    agreement_with_panel,
    expert_alert,
    expert_drift,
    expert_history,
)
from components.predlog import PredictionLog
from components.reviews import (
    AUDIT,
    DISAGREEMENT,
    DRIFTED,
    GOLD,
    UNCERTAIN,
    ReviewParams,
    ReviewQueue,
    in_audit_share,
    wanted_grades,
)
from tests.unit.test_predlog import START, _record

NOW = START + timedelta(hours=1)
NO_AUDIT = ReviewParams(audit_share=0.0)


def with_answers(log: PredictionLog) -> PredictionLog:
    """`log` with the answers these tests queue: certain, uncertain, disputed, failed."""
    log.write([
        _record("certain", 0, grade_set_low=8, grade_set_high=8),
        _record("uncertain", 1),  # the set 7..9
        _record("disputed", 2, grade_set_low=8, grade_set_high=8),
        _record("disputed", 2, role="shadow", version=4, answered=False, grade=6),
        _record("failed", 3, grade=None, grade_set_low=None, grade_set_high=None,
                error="RuntimeError: boom"),
    ])
    return log


@pytest.fixture
def log(tmp_path: Path) -> PredictionLog:
    return with_answers(PredictionLog(f"sqlite:///{tmp_path}/p.db"))


def test_answers_are_queued_for_an_uncertain_set_or_a_disagreement_with_why(
        log: PredictionLog) -> None:
    items = ReviewQueue(log, NO_AUDIT).pending(NOW)

    assert [(item.request_id, item.reasons, item.wanted) for item in items] == [
        ("uncertain", (UNCERTAIN,), 3), ("disputed", (DISAGREEMENT,), 3)]


def test_the_audit_share_is_a_fixed_sample_of_all_answers(log: PredictionLog) -> None:
    everything = ReviewQueue(log, ReviewParams(audit_share=1.0)).pending(NOW)

    assert [item.request_id for item in everything] == ["certain", "uncertain", "disputed"]
    assert all(AUDIT in item.reasons for item in everything)
    ids = [f"request-{i}" for i in range(4000)]
    share = sum(in_audit_share(request_id, 0.05) for request_id in ids) / len(ids)
    assert share == pytest.approx(0.05, abs=0.01)
    assert [in_audit_share(i, 0.05) for i in ids] == [in_audit_share(i, 0.05) for i in ids]


@pytest.mark.parametrize(("grades", "wanted"), [
    ([], 3), ([8], 3), ([8, 8, 9], 3), ([6, 8, 8], 4), ([6, 8, 8, 8], 5), ([5, 6, 8, 9], 5),
    ([4, 6, 8, 9, 9], 5)])
def test_an_item_wants_a_panel_and_one_more_expert_while_they_disagree(grades: list[int],
                                                                        wanted: int) -> None:
    assert wanted_grades(grades, ReviewParams(panel=3, max_panel=5), experts=8) == wanted


def test_a_spread_panel_settles_on_the_experts_there_are() -> None:
    """With three experts grading, an item they spread over wants no fourth grade that would
    never come (the demo's four such items a run stayed queued forever); while fewer experts
    than the panel have graded anything, the panel is still wanted."""
    params = ReviewParams(panel=3, max_panel=5)
    assert wanted_grades([6, 8, 8], params, experts=3) == 3
    assert wanted_grades([6, 8, 8], params, experts=4) == 4
    assert wanted_grades([8], params, experts=1) == 3


def test_an_expert_who_stopped_grading_holds_no_spread_item_open(log: PredictionLog) -> None:
    """Only experts who graded within the expert window count as ones who could still grade:
    a fourth who left a month ago would never come back for the item."""
    queue = ReviewQueue(log, NO_AUDIT)
    log.record_expert_grade("certain", 8, "barbara", NOW - timedelta(days=30))
    for expert, grade in (("ada", 6), ("grace", 8), ("alan", 8)):
        log.record_expert_grade("disputed", grade, expert, NOW)

    assert "disputed" not in {item.request_id for item in queue.pending(NOW)}  # settled on 3
    log.record_expert_grade("certain", 8, "barbara", NOW)  # she is back
    assert [(item.request_id, item.wanted) for item in queue.pending(NOW)
            if item.request_id == "disputed"] == [("disputed", 4)]


def test_an_item_leaves_the_queue_once_its_panel_has_graded(log: PredictionLog) -> None:
    queue = ReviewQueue(log, NO_AUDIT)
    for expert, grade in (("ada", 8), ("grace", 8), ("alan", 9)):
        log.record_expert_grade("uncertain", grade, expert, NOW)
    for expert, grade in (("ada", 6), ("grace", 8), ("alan", 8)):
        log.record_expert_grade("disputed", grade, expert, NOW)
    log.record_expert_grade("certain", 8, "barbara", NOW)  # a fourth expert is grading

    items = queue.pending(NOW)

    assert [(item.request_id, item.graders, item.wanted) for item in items] == [
        ("disputed", ("ada", "grace", "alan"), 4)]  # 6 against 8: one more expert


def test_an_item_is_leased_to_one_expert_at_a_time_and_never_to_one_who_graded_it(
        log: PredictionLog) -> None:
    queue = ReviewQueue(log, NO_AUDIT)

    ada = queue.lease_next("ada", NOW)
    grace = queue.lease_next("grace", NOW)
    again = queue.lease_next("ada", NOW)
    nobody_left = queue.lease_next("alan", NOW)

    assert (ada.request_id, grace.request_id) == ("uncertain", "disputed")
    assert again == ada and queue.holds("uncertain", "ada", NOW)
    assert nobody_left is None  # both items are held
    log.record_expert_grade("uncertain", 8, "ada", NOW)
    queue.release("uncertain", "ada")
    assert queue.lease_next("alan", NOW).request_id == "uncertain"
    assert queue.lease_next("ada", NOW) is None  # ada graded it; grace holds the other


def test_a_lease_expires_and_survives_a_restart(log: PredictionLog) -> None:
    params = ReviewParams(audit_share=0.0, lease_seconds=60)
    ReviewQueue(log, params).lease_next("ada", NOW)

    restarted = ReviewQueue(PredictionLog(log.uri), params)

    assert restarted.holds("uncertain", "ada", NOW + timedelta(seconds=30))
    assert restarted.lease_next("grace", NOW + timedelta(seconds=30)).request_id == "disputed"
    later = NOW + timedelta(seconds=61)
    assert not restarted.holds("uncertain", "ada", later)
    assert restarted.lease_next("alan", later).request_id == "uncertain"


def test_another_stage_queues_answers_for_its_own_reason_once(log: PredictionLog) -> None:
    queue = ReviewQueue(log, NO_AUDIT)

    first = queue.request(["certain", "uncertain", "certain"], DRIFTED, NOW)
    again = queue.request(["certain"], DRIFTED, NOW)
    restarted = ReviewQueue(PredictionLog(log.uri), NO_AUDIT).pending(NOW)

    assert (first, again) == (2, 0)
    assert [(item.request_id, item.reasons) for item in restarted] == [
        ("certain", (DRIFTED,)), ("uncertain", (UNCERTAIN, DRIFTED)),
        ("disputed", (DISAGREEMENT,))]


def test_an_experts_agreement_is_measured_against_the_rest_of_each_panel() -> None:
    panel = pd.DataFrame([("r1", "ada", 7), ("r1", "grace", 8), ("r1", "alan", 8),
                          ("r2", "ada", 9), ("r2", "grace", 9), ("r2", "alan", 10),
                          ("r3", "ada", 4)],  # nobody else graded r3: not compared
                         columns=["request_id", "grader", "grade"])

    agreement = agreement_with_panel(panel, "ada")

    # r1: the others' median 8 (ada one below); r2: median 9.5, rounded half up to 10. The
    # bias is against the others' mean: -1 and -0.5.
    assert agreement == {"expert": "ada", "graded": 3, "compared": 2, "exact": 0.0,
                         "within_one": 1.0, "bias": -0.75}
    assert agreement_with_panel(panel, "nobody")["compared"] == 0


def _turning_kind(days: int = 42, kind_from: int = 35) -> pd.DataFrame:
    """Four experts grade the same 4 photos a day; from day `kind_from` ada gives one grade
    more than the others on every photo."""
    rows = []
    for day in range(days):
        for photo in range(4):
            request_id, truth = f"r{day}-{photo}", 4 + (day + photo) % 5
            time = START + timedelta(days=day)
            for expert in ("ada", "grace", "alan", "ida"):
                kind = expert == "ada" and day >= kind_from
                rows.append((request_id, expert, truth + kind, time))
    return pd.DataFrame(rows, columns=["request_id", "grader", "grade", "time"])


def test_an_expert_who_turns_kind_is_found_drifting_and_the_others_are_not() -> None:
    """Six weeks of a panel of four; in the last week ada is one grade kind."""
    panel = _turning_kind()
    params = ReviewParams()

    last_week = {d.expert: d for d in expert_drift(panel, START + timedelta(days=35), params)}
    before = {d.expert: d for d in expert_drift(panel, START + timedelta(days=28), params)}

    assert last_week["ada"].drifted and last_week["ada"].bias == 1.0
    assert last_week["ada"].compared == 28
    # Ada's kindness moves each peer's "rest of the panel" by a third of a grade: not drifted.
    assert not last_week["grace"].drifted and last_week["grace"].bias == -0.333
    assert last_week["ada"].line() == \
        "ada: +1.00 grades against the rest of the panel on 28 photos"
    subject, body = expert_alert(last_week["ada"], "alert", params)
    assert subject == "[gradeline] expert drift: ada" and "+1.00 grades" in body
    assert expert_alert(last_week["grace"], "none", params) is None
    # Over two weeks, 28 of 56 photos are kind (+0.5 on average): at the limit, not past it.
    assert before["ada"].bias == 0.5 and not before["ada"].drifted


def test_a_gold_item_is_handed_to_each_expert_while_gold_is_under_its_share(
        log: PredictionLog) -> None:
    queue = ReviewQueue(log, ReviewParams(audit_share=0.0, gold_share=0.25))
    queue.add_gold("certain", 8, "head grader", NOW)

    first = queue.lease_next("ada", NOW)
    log.record_expert_grade("certain", 7, "ada", NOW)
    queue.release("certain", "ada")
    after_gold = queue.lease_next("ada", NOW)  # 1 gold of 2 graded: not due again
    grace = queue.lease_next("grace", NOW)
    never = ReviewQueue(log, ReviewParams(audit_share=0.0, gold_share=0.0)).lease_next("alan",
                                                                                       NOW)

    assert (first.request_id, first.reasons, first.graders, first.wanted) == (
        "certain", (GOLD,), (), 1)
    assert after_gold.request_id == "uncertain"
    assert (grace.request_id, grace.graders) == ("certain", ("ada",))
    assert never.request_id == "disputed"  # no gold share: the queue as before
    assert queue.gold() == {"certain": 8}


def test_an_expert_who_holds_an_item_keeps_it_when_gold_comes_due(log: PredictionLog) -> None:
    queue = ReviewQueue(log, ReviewParams(audit_share=0.0, gold_share=0.5))
    held = queue.lease_next("ada", NOW)
    queue.add_gold("certain", 8, "head grader", NOW)

    assert queue.lease_next("ada", NOW) == held


@pytest.mark.parametrize(("request_id", "grade", "error", "message"), [
    ("nobody-sent-this", 8, KeyError, "only a served photo can be a gold item"),
    ("certain", 11, ValueError, "not in 1..10"),
])
def test_gold_is_refused_for_a_photo_never_served_or_a_grade_off_the_scale(
        log: PredictionLog, request_id: str, grade: int, error: type, message: str) -> None:
    queue = ReviewQueue(log, NO_AUDIT)
    with pytest.raises(error, match=message):
        queue.add_gold(request_id, grade, "head grader", NOW)
    assert queue.gold() == {}


def test_gold_set_again_corrects_its_grade_and_measures_each_expert(log: PredictionLog) -> None:
    queue = ReviewQueue(log, NO_AUDIT)
    queue.add_gold("certain", 8, "head grader", NOW)
    queue.add_gold("certain", 9, "head grader", NOW)
    queue.add_gold("uncertain", 6, "head grader", NOW)
    for request_id, grade in (("certain", 9), ("uncertain", 8), ("disputed", 3)):
        log.record_expert_grade(request_id, grade, "ada", NOW)

    assert queue.gold() == {"certain": 9, "uncertain": 6}
    assert agreement_with_gold(log.expert_panel(), queue.gold(), "ada") == {
        "compared": 2, "exact": 0.5, "within_one": 0.5, "bias": 1.0}


def test_a_panel_that_turns_kind_together_is_seen_only_against_the_gold() -> None:
    """Three experts grade the same 4 photos a day for two weeks, one of them gold; in the
    second week all three give one grade more: against each other nothing changed."""
    rows, gold = [], {}
    for day in range(14):
        for photo in range(4):
            request_id, truth = f"r{day}-{photo}", 4 + (day + photo) % 5
            if photo == 0:
                gold[request_id] = truth
            for expert in ("ada", "grace", "alan"):
                rows.append((request_id, expert, truth + (day >= 7), START + timedelta(days=day)))
    panel = pd.DataFrame(rows, columns=["request_id", "grader", "grade", "time"])
    params = ReviewParams(expert_min_gold=7)
    second_week = START + timedelta(days=7)

    with_gold = {d.expert: d for d in expert_drift(panel, second_week, params, gold)}
    without = expert_drift(panel, second_week, params)
    first_week = expert_drift(panel, START, params, gold)

    assert all(d.drifted and d.bias == 0.0 and (d.gold_compared, d.gold_bias) == (7, 1.0)
               for d in with_gold.values())
    assert not any(d.drifted for d in without)
    assert not any(d.drifted for d in first_week)  # 14 gold items, half kind: +0.5
    assert with_gold["ada"].line() == ("ada: +0.00 grades against the rest of the panel on 28 "
                                       "photos, +1.00 against 7 gold items")


def test_each_expert_is_followed_day_by_day_against_the_panel_and_the_gold() -> None:
    panel = _turning_kind(days=3, kind_from=2)
    gold = {"r0-0": 4, "r2-1": 7}  # ada graded them 4 and 8

    history = expert_history(panel, gold)

    ada = history[history["expert"] == "ada"].reset_index(drop=True)
    assert list(ada["period"]) == [pd.Timestamp(START.date(), tz="UTC") + pd.Timedelta(days=d)
                                   for d in range(3)]
    assert ada[["compared", "exact", "bias"]].to_dict("records") == [
        {"compared": 4, "exact": 1.0, "bias": 0.0}, {"compared": 4, "exact": 1.0, "bias": 0.0},
        {"compared": 4, "exact": 0.0, "bias": 1.0}]
    assert ada["gold_compared"].tolist() == [1, 0, 1]
    assert ada["gold_bias"].tolist()[::2] == [0.0, 1.0] and pd.isna(ada["gold_bias"][1])
    grace = history[history["expert"] == "grace"]
    assert grace["bias"].tolist() == [0.0, 0.0, -0.333]  # ada moves the rest by a third
    assert expert_history(panel.iloc[:0], {}).empty


def test_history_without_gold_items_has_empty_gold_columns() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas warned of a silent downcast of the empty columns
        history = expert_history(_turning_kind(days=2, kind_from=1), gold={})

    assert (history["gold_compared"] == 0).all() and history["gold_bias"].isna().all()
