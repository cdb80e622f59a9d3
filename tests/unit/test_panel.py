"""The simulated expert panel behaves as its documentation says (components/cards/panel.py)."""

import itertools

import numpy as np
import pytest

from components.cards.factory import LabeledCard, label_card
from components.cards.panel import PANEL, consensus, panel_agreement

CARDS = 4000
TOLERANCE = 0.025


@pytest.fixture(scope="module")
def labeled() -> list[LabeledCard]:
    return [label_card(seed=3, index=i) for i in range(CARDS)]


def test_agreement_is_what_the_docs_say(labeled: list[LabeledCard]) -> None:
    agreement = panel_agreement([card.experts for card in labeled])

    assert agreement.cards == CARDS
    assert agreement.all_agree == pytest.approx(0.60, abs=TOLERANCE)
    documented = {"grader_1": 0.93, "grader_2": 0.83, "grader_3": 0.82}
    assert set(agreement.exact_with_consensus) == set(documented)
    for expert, rate in documented.items():
        assert agreement.exact_with_consensus[expert] == pytest.approx(rate, abs=TOLERANCE)
        assert agreement.within_one_of_consensus[expert] > 0.999
    assert agreement.spread_over_one == pytest.approx(0.02, abs=TOLERANCE)


def test_every_expert_is_within_one_grade_of_the_truth(labeled: list[LabeledCard]) -> None:
    for card in labeled:
        assert set(card.experts) == {grader.name for grader in PANEL}
        assert all(abs(g - card.truth.grade) <= 1 for g in card.experts.values()), card.spec


def test_the_strict_expert_grades_lower_on_average(labeled: list[LabeledCard]) -> None:
    mean = {name: np.mean([card.experts[name] for card in labeled]) for name in labeled[0].experts}
    assert mean["grader_2"] < mean["grader_1"] - 0.1


def test_consensus_is_the_median() -> None:
    assert consensus([7, 9, 8]) == 8
    assert consensus([6, 6, 7]) == 6
    assert consensus((10,)) == 10
    for grades in itertools.product(range(1, 11), repeat=3):
        assert consensus(list(grades)) == int(np.median(grades))
    with pytest.raises(ValueError):
        consensus([])


def test_agreement_needs_cards() -> None:
    with pytest.raises(ValueError, match="at least one card"):
        panel_agreement([])
