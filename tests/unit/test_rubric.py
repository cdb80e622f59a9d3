"""The rubric: PSA centering steps, severity steps, and how subgrades make the overall grade."""

import itertools

import numpy as np
import pytest

from components.vision.rubric import (
    Subgrades,
    centering_subgrade,
    grade_card,
    overall_score,
    round_grade,
    severity_subgrade,
)

# Centering never drops below 2; the other aspects reach 1.
ALL_SUBGRADES = [
    Subgrades(*combo)
    for combo in itertools.product(range(2, 11), range(1, 11), range(1, 11), range(1, 11))
]


def _overall(subgrades: Subgrades) -> int:
    return round_grade(overall_score(subgrades))


@pytest.mark.parametrize(
    ("share", "subgrade"),
    [(50, 10), (55, 10), (55.01, 9), (60, 9), (65, 8), (70, 7), (75, 6), (80, 6), (85, 5),
     (90, 4), (95, 3), (96, 2), (100, 2)],
)
def test_centering_follows_the_psa_front_table(share: float, subgrade: int) -> None:
    assert centering_subgrade(share, 50) == subgrade
    assert centering_subgrade(100 - share, 50) == subgrade  # 45/55 is 55/45 seen from the left
    assert centering_subgrade(50, share) == subgrade
    assert centering_subgrade(50, 100 - share) == subgrade


def test_the_worse_axis_decides_centering() -> None:
    assert centering_subgrade(52, 68) == centering_subgrade(50, 68) == 7
    assert centering_subgrade(21, 56) == centering_subgrade(21, 50) == 6  # 79/21


@pytest.mark.parametrize(
    ("severity", "subgrade"),
    [(0.0, 10), (0.05, 10), (0.06, 9), (0.15, 9), (0.16, 8), (0.25, 8), (0.35, 7), (0.55, 5),
     (0.85, 2), (0.86, 1), (1.0, 1)],
)
def test_each_tenth_of_severity_costs_a_grade(severity: float, subgrade: int) -> None:
    assert severity_subgrade(severity) == subgrade


def test_more_severity_never_grades_higher() -> None:
    grades = [severity_subgrade(s) for s in np.linspace(0.0, 1.0, 1001)]
    assert all(a >= b for a, b in itertools.pairwise(grades))
    assert set(grades) == set(range(1, 11))


@pytest.mark.parametrize("severity", [-0.1, 1.01, float("nan")])
def test_severity_outside_zero_to_one_is_refused(severity: float) -> None:
    with pytest.raises(ValueError, match="severity"):
        severity_subgrade(severity)


def test_one_weak_subgrade_caps_the_card_one_grade_above_it() -> None:
    score = overall_score(Subgrades(centering=10, corners=4, edges=10, surface=10))
    assert score == 5.0  # the weighted mean would be 8.5


def test_the_overall_grade_never_leads_the_weakest_subgrade_by_more_than_one() -> None:
    for subgrades in ALL_SUBGRADES:
        weakest = min(subgrades.as_dict().values())
        assert weakest <= _overall(subgrades) <= weakest + 1, subgrades


def test_a_destroyed_aspect_gives_two_if_the_rest_holds_and_one_otherwise() -> None:
    assert _overall(Subgrades(centering=10, corners=1, edges=10, surface=10)) == 2
    assert _overall(Subgrades(centering=5, corners=5, edges=5, surface=1)) == 2
    assert _overall(Subgrades(centering=10, corners=1, edges=4, surface=10)) == 1
    for subgrades in ALL_SUBGRADES:
        values = sorted(subgrades.as_dict().values())
        if values[0] == 1:
            assert _overall(subgrades) == (2 if values[1] >= 5 else 1), subgrades


def test_grade_card_end_to_end() -> None:
    pristine = grade_card(52, 49, corner_severity=0, edge_severity=0, surface_severity=0)
    assert pristine.grade == 10 and pristine.subgrades.as_dict() == {
        "centering": 10, "corners": 10, "edges": 10, "surface": 10}

    # centering 62/38 -> 8, corners 0.2 -> 8, edges 0.1 -> 9, surface 0 -> 10:
    # 0.15*8 + 0.25*8 + 0.25*9 + 0.35*10 = 8.95, rounds to 9, within one of the weakest (8).
    worn = grade_card(62, 50, corner_severity=0.2, edge_severity=0.1, surface_severity=0.0)
    assert worn.subgrades == Subgrades(centering=8, corners=8, edges=9, surface=10)
    assert worn.score == pytest.approx(8.95) and worn.grade == 9


def test_grade_card_caps_and_floors_end_to_end() -> None:
    # surface 0.5 -> 5; the weighted mean 1.5 + 2.5 + 2.5 + 1.75 = 8.25 is capped at 5 + 1.
    scratched = grade_card(50, 50, corner_severity=0, edge_severity=0, surface_severity=0.5)
    assert scratched.subgrades.surface == 5 and scratched.grade == 6

    # corners 1.0 -> 1 with everything else 10 -> a 2; with edges 0.6 -> 4 as well -> a 1.
    bent = grade_card(50, 50, corner_severity=1.0, edge_severity=0, surface_severity=0)
    assert bent.subgrades.corners == 1 and bent.grade == 2
    wrecked = grade_card(50, 50, corner_severity=1.0, edge_severity=0.6, surface_severity=0)
    assert wrecked.subgrades.edges == 4 and wrecked.grade == 1

    # 88/12 left/right -> 4: the rest is pristine, so the card is a 5.
    off_centre = grade_card(88, 50, corner_severity=0, edge_severity=0, surface_severity=0)
    assert off_centre.subgrades.centering == 4 and off_centre.grade == 5
