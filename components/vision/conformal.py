"""Conformal grade sets: for each card, the grades that together hold the experts' grade with a
chosen probability (90% by default), whatever the model.

    conformal = fit_conformal(calibration_probabilities, calibration_grades, coverage=0.9)
    sets = conformal.sets(test_probabilities)          # N x K booleans, grade k at column k-1
    conformal_report(conformal, test_probabilities, test_grades)["coverage"]   # about 0.9

Split conformal prediction: on the calibration split, score each card by one minus the
probability of its expert grade, and take the score quantile that leaves `coverage` of cards at
or below it. A grade enters a set when its probability is at least one minus that quantile. The
guarantee holds on average over cards that resemble the calibration split; a new camera breaks
the resemblance, which monitoring watches for.

Grades are ordinal, so a set is made a range: the grades between its lowest and highest member
are added (which can only raise coverage). A set of one grade is a confident answer; a card
whose set holds two or more grades is one to send to a human reviewer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ConformalGrades:
    """A fitted threshold: grades at least this probable enter a card's set."""

    threshold: float
    coverage: float  # the target the threshold was fitted for
    calibration_items: int

    def sets(self, probabilities: np.ndarray) -> np.ndarray:
        """Grade sets (N x K booleans) as contiguous ranges, never empty."""
        members = probabilities >= self.threshold
        members[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = True
        grades = np.arange(probabilities.shape[1])
        low = np.where(members, grades, grades.size).min(axis=1)
        high = np.where(members, grades, -1).max(axis=1)
        return (grades >= low[:, None]) & (grades <= high[:, None])

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def fit_conformal(probabilities: np.ndarray, grades: np.ndarray,
                  coverage: float = 0.9) -> ConformalGrades:
    """The split-conformal threshold for `coverage` from calibration probabilities (N x K) and
    the experts' grades (1..K). Too few items for the target give the full set of grades."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie between 0 and 1, got {coverage}")
    grades = np.asarray(grades, int)
    n = len(grades)
    if n == 0:
        raise ValueError("no calibration items to fit conformal sets on")
    scores = np.sort(1.0 - probabilities[np.arange(n), grades - 1])
    rank = math.ceil((n + 1) * coverage)  # the finite-sample correction of split conformal
    quantile = 1.0 if rank > n else float(scores[rank - 1])
    return ConformalGrades(threshold=1.0 - quantile, coverage=coverage, calibration_items=n)


def _coverage_and_size(sets: np.ndarray, grades: np.ndarray) -> dict[str, float]:
    return {"coverage": float(sets[np.arange(len(grades)), grades - 1].mean()),
            "mean_set_size": float(sets.sum(axis=1).mean()), "n": float(len(grades))}


def conformal_report(conformal: ConformalGrades, probabilities: np.ndarray,
                     grades: np.ndarray) -> dict[str, object]:
    """Empirical coverage and mean set size on held-out items, overall and per expert grade,
    and the share of items with more than one grade (those a human should review)."""
    grades = np.asarray(grades, int)
    sets = conformal.sets(probabilities)
    return {**_coverage_and_size(sets, grades),
            "needs_review": float((sets.sum(axis=1) > 1).mean()),
            "per_grade": {int(g): _coverage_and_size(sets[grades == g], grades[grades == g])
                          for g in np.unique(grades)}}
