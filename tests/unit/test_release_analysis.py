"""The analysis of a release step: each rule fails the step on its own, with a message that
names the figures, and a step seen on too few requests is never passed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.release.analysis import AnalysisParams, analyse_step
from components.release.comparison import RoleComparison

HEALTHY = RoleComparison(
    pairs=60, champion_requests=60, challenger_requests=60, champion_error_rate=0.0,
    challenger_error_rate=0.0, champion_p99_ms=40.0, challenger_p99_ms=44.0, agreement_exact=0.8,
    agreement_within_one=0.97, mean_abs_grade_difference=0.2, expert_items=40,
    champion_kappa=0.81, challenger_kappa=0.82)


def test_a_healthy_challenger_passes_with_its_figures() -> None:
    verdict = analyse_step("canary_5", HEALTHY, AnalysisParams(), minimum=50)
    assert verdict.passed and verdict.failures == []
    assert verdict.as_dict()["figures"]["agreement_within_one"] == 0.97


@pytest.mark.parametrize(("change", "message"), [
    ({"challenger_requests": 10}, "only 10 challenger requests, 50 needed"),
    ({"challenger_error_rate": 0.2}, "error rate 0.200 > champion 0.000 + 0.01"),
    ({"challenger_p99_ms": 90.0}, "p99 90.0 ms > 1.5 x champion 40.0 ms"),
    ({"agreement_within_one": 0.5, "expert_items": 5}, "agreement within one grade 0.500 < 0.9"),
    ({"challenger_kappa": 0.7}, "kappa against 40 expert grades 0.700 < champion 0.810"),
])
def test_each_rule_fails_the_step_on_its_own(change: dict, message: str) -> None:
    verdict = analyse_step("shadow", replace(HEALTHY, **change), AnalysisParams(), minimum=50)
    assert not verdict.passed and len(verdict.failures) == 1
    assert verdict.failures[0].startswith(message)


def test_kappa_waits_for_enough_expert_grades_and_no_pairs_is_no_agreement_check() -> None:
    few = replace(HEALTHY, expert_items=5, challenger_kappa=0.1)
    assert analyse_step("shadow", few, AnalysisParams(), minimum=50).passed
    all_failed = replace(HEALTHY, pairs=0, agreement_within_one=None, challenger_error_rate=1.0,
                         expert_items=0, challenger_kappa=None, champion_kappa=None)
    verdict = analyse_step("shadow", all_failed, AnalysisParams(), minimum=50)
    assert [f.split(" ")[0] for f in verdict.failures] == ["error"]


def test_with_enough_expert_grades_kappa_judges_and_disagreeing_with_the_champion_is_allowed(
) -> None:
    # A retrain after drift disagrees with the champion that drifted, and grades better.
    retrained = replace(HEALTHY, agreement_within_one=0.4, champion_kappa=0.3,
                        challenger_kappa=0.7)
    assert analyse_step("shadow", retrained, AnalysisParams(), minimum=50).passed
    worse = replace(retrained, challenger_kappa=0.2)
    assert analyse_step("shadow", worse, AnalysisParams(), minimum=50).failures[0].startswith(
        "kappa against 40 expert grades 0.200 < champion 0.300")
