"""The rubric: PSA centering steps, severity steps, and how subgrades make the overall grade."""

import pytest

from components.cards.rubric import (
    Subgrades,
    centering_subgrade,
    grade_card,
    overall_score,
    round_grade,
    severity_subgrade,
)


@pytest.mark.parametrize(
    ("share", "subgrade"),
    [(50, 10), (55, 10), (55.01, 9), (60, 9), (65, 8), (70, 7), (75, 6), (80, 6), (85, 5),
     (90, 4), (95, 3), (96, 2)],
)
def test_centering_follows_the_psa_front_table(share: float, subgrade: int) -> None:
    assert centering_subgrade(share, 50) == subgrade
    assert centering_subgrade(100 - share, 50) == subgrade  # 45/55 is 55/45 seen from the left
    assert centering_subgrade(50, share) == subgrade


def test_the_worse_axis_decides_centering() -> None:
    assert centering_subgrade(52, 68) == centering_subgrade(50, 68) == 7


@pytest.mark.parametrize(
    ("severity", "subgrade"),
    [(0.0, 10), (0.05, 10), (0.06, 9), (0.15, 9), (0.16, 8), (0.55, 5), (0.85, 2), (0.86, 1),
     (1.0, 1)],
)
def test_each_tenth_of_severity_costs_a_grade(severity: float, subgrade: int) -> None:
    assert severity_subgrade(severity) == subgrade


@pytest.mark.parametrize("severity", [-0.1, 1.01])
def test_severity_outside_zero_to_one_is_refused(severity: float) -> None:
    with pytest.raises(ValueError, match="severity"):
        severity_subgrade(severity)


def test_one_weak_subgrade_caps_the_card_one_grade_above_it() -> None:
    score = overall_score(Subgrades(centering=10, corners=4, edges=10, surface=10))
    assert score == 5.0  # the weighted mean would be 8.5


def test_a_destroyed_aspect_gives_two_if_the_rest_holds_and_one_otherwise() -> None:
    assert round_grade(overall_score(Subgrades(10, 1, 10, 10))) == 2
    assert round_grade(overall_score(Subgrades(10, 1, 4, 10))) == 1


def test_grade_card_end_to_end() -> None:
    pristine = grade_card(52, 49, corner_severity=0, edge_severity=0, surface_severity=0)
    assert pristine.grade == 10 and pristine.subgrades.as_dict() == {
        "centering": 10, "corners": 10, "edges": 10, "surface": 10}

    # centering 62/38 -> 8, corners 0.2 -> 8, edges 0.1 -> 9, surface 0 -> 10:
    # 0.15*8 + 0.25*8 + 0.25*9 + 0.35*10 = 8.95, rounds to 9, within one of the weakest (8).
    worn = grade_card(62, 50, corner_severity=0.2, edge_severity=0.1, surface_severity=0.0)
    assert worn.score == pytest.approx(8.95) and worn.grade == 9
