"""A simulated panel of three expert graders, the human reference that models are judged against.

Each expert perceives the card's continuous rubric score, adds a personal bias and some noise,
and rounds to a grade 1..10. Bias plus noise is bounded below one grade, so an expert is never
more than one grade from the rubric; experts disagree where a card sits near a grade boundary,
as real graders do. The consensus is the median of the three.

| expert   | bias  | noise σ | character                         |
|----------|-------|---------|-----------------------------------|
| grader_1 | 0.00  | 0.25    | the reference grader              |
| grader_2 | -0.25 | 0.25    | a little strict                   |
| grader_3 | +0.05 | 0.40    | less consistent from card to card |

Measured on 20,000 factory cards (tests/unit/test_panel.py keeps these true):
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.cards.rubric import round_grade

# Bias plus noise never reaches a full grade.
MAX_DEVIATION = 0.95


@dataclass(frozen=True)
class Grader:
    """One expert: a systematic bias and a card-to-card noise, in grade units."""

    name: str
    bias: float
    noise_sd: float

    def grade(self, score: float, rng: np.random.Generator) -> int:
        """This expert's grade for a card of the given continuous rubric score."""
        deviation = float(np.clip(self.bias + rng.normal(0.0, self.noise_sd), -MAX_DEVIATION,
                                  MAX_DEVIATION))
        return round_grade(score + deviation)


PANEL: tuple[Grader, ...] = (
    Grader("grader_1", bias=0.0, noise_sd=0.25),
    Grader("grader_2", bias=-0.25, noise_sd=0.25),
    Grader("grader_3", bias=0.05, noise_sd=0.40),
)


def grade_by_panel(score: float, rng: np.random.Generator) -> dict[str, int]:
    """Every expert's grade for one card, keyed by expert name."""
    return {grader.name: grader.grade(score, rng) for grader in PANEL}


def consensus(grades: list[int] | tuple[int, ...]) -> int:
    """The panel's consensus: the median grade (the middle one of three)."""
    if not grades:
        raise ValueError("consensus needs at least one grade")
    return int(sorted(grades)[len(grades) // 2])
