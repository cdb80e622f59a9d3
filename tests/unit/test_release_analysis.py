"""The analysis of a release step: each rule fails the step on its own, with a message that
names the figures, a step seen on too few requests is never passed, and kappa against the
experts passes, fails or waits for more grades on the evidence of a paired test."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from components.release.analysis import AnalysisParams, analyse_step
from components.release.comparison import RoleComparison

EXPERTS = np.tile(np.arange(1, 11), 6)  # 60 expert-graded photos, every grade alike


def _off_by_one(grades: np.ndarray, every: int) -> np.ndarray:
    """`grades` with every `every`-th one a grade higher (a 10 a grade lower)."""
    changed = grades.copy()
    changed[::every] = np.where(changed[::every] == 10, 9, changed[::every] + 1)
    return changed


def _judged(champion: np.ndarray, challenger: np.ndarray) -> dict[str, object]:
    return {"expert_items": len(EXPERTS),
            "judged": tuple(zip(EXPERTS.tolist(), champion.tolist(), challenger.tolist(),
                                strict=True))}


CHAMPION = _off_by_one(EXPERTS, every=4)
HEALTHY = RoleComparison(
    pairs=60, champion_requests=60, challenger_requests=60, champion_answered=60,
    challenger_answered=60, champion_error_rate=0.0,
    challenger_error_rate=0.0, champion_latency_ms=40.0, challenger_latency_ms=44.0,
    latency_quantile=0.9, agreement_exact=0.8,
    agreement_within_one=0.97, mean_abs_grade_difference=0.2, champion_kappa=0.96,
    challenger_kappa=0.96, **_judged(CHAMPION, CHAMPION))


def test_a_healthy_challenger_passes_with_its_figures() -> None:
    verdict = analyse_step("canary_5", HEALTHY, AnalysisParams(), minimum=50)
    assert verdict.passed and verdict.failures == [] and not verdict.pending
    figures = verdict.as_dict()["figures"]
    assert figures["agreement_within_one"] == 0.97
    assert (figures["kappa_verdict"], figures["kappa_items"]) == ("pass", 60)  # looks: 30, 60
    assert "judged" not in figures


@pytest.mark.parametrize(("change", "message"), [
    ({"challenger_requests": 10}, "only 10 challenger requests, 50 needed"),
    ({"challenger_error_rate": 0.2}, "error rate 0.200 > champion 0.000 + 0.01"),
    ({"challenger_latency_ms": 90.0}, "p90 90.0 ms > 1.5 x champion 40.0 ms"),
    ({"agreement_within_one": 0.5, "expert_items": 5}, "agreement within one grade 0.500 < 0.9"),
    (_judged(CHAMPION, EXPERTS[::-1].copy()), "kappa difference -1.9"),
])
def test_each_rule_fails_the_step_on_its_own(change: dict, message: str) -> None:
    verdict = analyse_step("shadow", replace(HEALTHY, **change), AnalysisParams(), minimum=50)
    assert not verdict.passed and len(verdict.failures) == 1
    assert verdict.failures[0].startswith(message)


def test_kappa_waits_for_enough_expert_grades_and_no_pairs_is_no_agreement_check() -> None:
    few = replace(HEALTHY, expert_items=5, challenger_kappa=0.1, judged=HEALTHY.judged[:5])
    assert analyse_step("shadow", few, AnalysisParams(), minimum=50).passed
    all_failed = replace(HEALTHY, pairs=0, agreement_within_one=None, challenger_error_rate=1.0,
                         expert_items=0, challenger_kappa=None, champion_kappa=None, judged=())
    verdict = analyse_step("shadow", all_failed, AnalysisParams(), minimum=50)
    assert [f.split(" ")[0] for f in verdict.failures] == ["error"]


def test_an_unclear_kappa_waits_for_the_next_look_and_fails_when_time_is_up() -> None:
    noisier = replace(HEALTHY, **_judged(CHAMPION, _off_by_one(_off_by_one(EXPERTS, 2), 3)))

    waiting = analyse_step("shadow", noisier, AnalysisParams(), minimum=50, final=False)
    timed_out = analyse_step("shadow", noisier, AnalysisParams(), minimum=50, final=True)

    assert waiting.pending and not waiting.passed and waiting.failures == []
    assert waiting.figures["kappa_verdict"] == "wait"
    assert waiting.waiting_for.startswith("kappa difference ")
    assert not timed_out.pending and not timed_out.passed
    assert "could not show it is not worse by 0.03" in timed_out.failures[0]


def test_a_canarys_latency_waits_for_enough_answers_and_is_not_judged_if_time_runs_out(
) -> None:
    """A challenger that answered 7 clients at twice the champion's median: too few to judge
    (the first answers on a busy machine vary that much), so the step waits; at its time limit
    latency is left unjudged rather than failed; with 20 answers a side it fails."""
    slow_start = replace(HEALTHY, challenger_answered=7, challenger_latency_ms=180.0,
                         latency_quantile=0.5)

    waiting = analyse_step("canary_25", slow_start, AnalysisParams(), minimum=50, final=False)
    timed_out = analyse_step("canary_25", slow_start, AnalysisParams(), minimum=50)
    enough = analyse_step("canary_25", replace(slow_start, challenger_answered=20),
                          AnalysisParams(), minimum=50)

    assert waiting.pending and waiting.waiting_for == \
        "latency is timed on 7 answers per side, 20 needed"
    assert timed_out.passed and not timed_out.pending
    assert enough.failures == ["p50 180.0 ms > 1.5 x champion 40.0 ms"]


def test_with_enough_expert_grades_kappa_judges_and_disagreeing_with_the_champion_is_allowed(
) -> None:
    # A retrain after drift disagrees with the champion that drifted, and grades better.
    drifted = np.clip(EXPERTS - 3, 1, 10)
    retrained = replace(HEALTHY, agreement_within_one=0.4, **_judged(drifted, CHAMPION))
    assert analyse_step("shadow", retrained, AnalysisParams(), minimum=50).passed
    worse = replace(retrained, **_judged(CHAMPION, drifted))
    assert "worse by more than 0.03" in analyse_step(
        "shadow", worse, AnalysisParams(), minimum=50).failures[0]
