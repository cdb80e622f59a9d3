"""The card grading rubric: physical measurements of a card -> four subgrades -> overall grade
1..10, and the defect classes whose severities it reads. The factory labels cards with it and
the grader's structure follows it, so it is part of the core every stage stands on.

Centering follows the public PSA front-of-card standard (worst side share of the border):
55/45 or better is a 10, 60/40 a 9, 65/35 an 8, 70/30 a 7, 80/20 a 6, 85/15 a 5, 90/10 a 4,
95/5 a 3, anything worse a 2. Corners, edges and surface come from defect severity (0 = pristine,
1 = destroyed): at most 0.05 keeps a 10, and every further 0.1 costs one grade.

The overall grade is a weighted mean of the subgrades (surface weighs most, centering least) that
may exceed the weakest subgrade by at most one grade, as graders do: one bad corner caps a card.
A card with an aspect destroyed (a subgrade of 1) is a 2 (Good) while its other aspects hold at 5
or better, and a 1 (Poor) otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.vision.centering import worst_side_share

# The defect classes a card is inspected for; YOLO class ids follow this order.
DEFECT_CLASSES: tuple[str, ...] = (
    "corner_wear",
    "edge_whitening",
    "surface_scratch",
    "crease",
    "stain",
    "print_line",
)
# The rubric aspect each defect class counts towards.
DEFECT_ASPECTS: dict[str, str] = {
    kind: {"corner_wear": "corners", "edge_whitening": "edges"}.get(kind, "surface")
    for kind in DEFECT_CLASSES}

# (worst-side share in percent, subgrade): the first row whose share is not exceeded wins.
CENTERING_STEPS: tuple[tuple[float, int], ...] = (
    (55.0, 10),
    (60.0, 9),
    (65.0, 8),
    (70.0, 7),
    (80.0, 6),
    (85.0, 5),
    (90.0, 4),
    (95.0, 3),
)
CENTERING_FLOOR = 2

PRISTINE_SEVERITY = 0.05
SEVERITY_PER_GRADE = 0.1

SUBGRADE_WEIGHTS = {"centering": 0.15, "corners": 0.25, "edges": 0.25, "surface": 0.35}
# An overall grade never exceeds the weakest subgrade by more than this.
MAX_LEAD_OVER_WEAKEST = 1
# A destroyed aspect leaves a 2 only when every other subgrade is at least this.
GOOD_OTHERWISE = 5


@dataclass(frozen=True)
class Subgrades:
    """The four integer subgrades 1..10 of one card."""

    centering: int
    corners: int
    edges: int
    surface: int

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in SUBGRADE_WEIGHTS}


@dataclass(frozen=True)
class Grade:
    """The rubric's verdict: subgrades, the overall grade and the continuous score behind it."""

    subgrades: Subgrades
    score: float  # continuous overall score before rounding; experts perceive this
    grade: int


def centering_subgrade(centering_lr: float, centering_tb: float) -> int:
    """PSA front centering: the worst axis decides."""
    worst = worst_side_share(centering_lr, centering_tb)
    for limit, subgrade in CENTERING_STEPS:
        if worst <= limit + 1e-9:
            return subgrade
    return CENTERING_FLOOR


def severity_subgrade(severity: float) -> int:
    """Map the worst defect severity (0..1) of one aspect to its subgrade 1..10."""
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must lie in [0, 1], got {severity}")
    if severity <= PRISTINE_SEVERITY:
        return 10
    lost = math.ceil((severity - PRISTINE_SEVERITY) / SEVERITY_PER_GRADE - 1e-9)
    return max(1, 10 - lost)


def overall_score(subgrades: Subgrades) -> float:
    """Weighted mean of the subgrades, capped at the weakest subgrade plus one."""
    values = sorted(subgrades.as_dict().items())
    weighted = sum(SUBGRADE_WEIGHTS[name] * value for name, value in values)
    grades = sorted(value for _, value in values)
    weakest = grades[0]
    if weakest == 1 and grades[1] < GOOD_OTHERWISE:
        return 1.0
    return min(weighted, weakest + MAX_LEAD_OVER_WEAKEST)


def round_grade(score: float) -> int:
    """Round a continuous score half up to a grade 1..10."""
    return int(min(10, max(1, math.floor(score + 0.5))))


def grade_card(
    centering_lr: float,
    centering_tb: float,
    corner_severity: float,
    edge_severity: float,
    surface_severity: float,
) -> Grade:
    """Grade one card from its measurements: the single source of truth for labels."""
    subgrades = Subgrades(
        centering=centering_subgrade(centering_lr, centering_tb),
        corners=severity_subgrade(corner_severity),
        edges=severity_subgrade(edge_severity),
        surface=severity_subgrade(surface_severity),
    )
    score = overall_score(subgrades)
    return Grade(subgrades=subgrades, score=score, grade=round_grade(score))
