"""A grading rubric as data, and the same rubric as differentiable tensor operations, so a model
can grade the way the rubric does from measured severities instead of learning the rubric anew.

    table = CARD_RUBRIC                                   # centering, corners, edges, surface
    logits = subgrade_logits(table, worst_share, severities, scales)   # N x 4 x 9, cumulative
    score = rubric_score(table, hard_subgrades(logits))   # N, continuous 1..10 as graders see it
    scores = rubric_score(table, subgrade_combinations(table))   # every combination's score
    grade = grade_logits(logits, scores, thresholds, scale)     # N x 9, cumulative

A rubric names one aspect measured from geometry (a worst side share graded by a table of
limits) and aspects graded by their worst defect severity (0 pristine .. 1 destroyed), then how
subgrades combine: a weighted mean that may exceed the weakest subgrade by at most a lead, and
a floor rule for an aspect destroyed. A fruit-ripeness or weld rubric is another `RubricTable`,
not other code. Grades run 1..10 (`GRADES`).

Cumulative logits: z_k models P(subgrade > k), k = 1..9, and falls as k rises: the ordinal
outputs every stage downstream reads (`ordinal.py`).

The overall grade's probabilities follow from the subgrades' through the rubric itself: every
combination of subgrades has its rubric score, how likely it is given the measurements, and how
likely the experts give each grade to a card of that score (their own noise around it). So a
card whose severity sits on a step of the table gets the two grades either side, in proportion,
and a card measured far from every step gets one grade: calibrated where the uncertainty lies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from components.train.ordinal import grade_probabilities
from components.vision import rubric as card_rubric

GRADES = 10
# Beyond every limit of the measured aspect's table: P(subgrade > 1) is certain.
_ALWAYS = 1000.0
# Grade probabilities are kept this far from 0, so their logits stay finite, a confidently
# wrong grade still has a gradient, and float32 rounding (about 1e-7 in a subgrade's
# probability) stays a small share of the smallest: at 1e-6, ONNX Runtime and PyTorch differed
# by 1e-3 once a fitted temperature of 8 had softened those logits.
_PROBABILITY_FLOOR = 1e-4


@dataclass(frozen=True)
class RubricTable:
    """Everything a rubric says, as numbers: see the module docstring."""

    measured_aspect: str
    measured_limits: tuple[float, ...]  # ascending: a share within limits[j] keeps 10 - j
    severity_aspects: tuple[str, ...]
    pristine_severity: float  # at most this keeps a 10
    severity_per_grade: float  # each further step costs one grade
    weights: tuple[float, ...]  # per aspect, measured first, then severity aspects in order
    max_lead_over_weakest: int
    good_otherwise: int  # a destroyed aspect leaves a 2 only when the others are at least this
    # (defect class, the aspect it counts towards); none given: each aspect is its own class
    defect_aspects: tuple[tuple[str, str], ...] = ()

    @property
    def defect_classes(self) -> tuple[str, ...]:
        """The defect classes a severity map is drawn for, one map each."""
        return tuple(name for name, _ in self.class_aspects)

    @property
    def class_aspects(self) -> tuple[tuple[str, str], ...]:
        return self.defect_aspects or tuple((a, a) for a in self.severity_aspects)

    def aspect_classes(self) -> list[list[int]]:
        """For each severity aspect, the indices of the defect classes that count towards it."""
        return [[i for i, (_, of) in enumerate(self.class_aspects) if of == aspect]
                for aspect in self.severity_aspects]

    @property
    def aspects(self) -> tuple[str, ...]:
        return (self.measured_aspect, *self.severity_aspects)

    def severity_thresholds(self) -> torch.Tensor:
        """Severity at or below which an aspect's subgrade exceeds k, for k = 1..9."""
        steps = torch.arange(GRADES - 2, -1, -1, dtype=torch.float32)  # 8, 7, ..., 0
        return self.pristine_severity + self.severity_per_grade * steps

    def share_thresholds(self) -> torch.Tensor:
        """Worst side share at or below which the measured subgrade exceeds k, k = 1..9."""
        limits = list(reversed(self.measured_limits))  # k = 2 reads the widest limit
        padding = [_ALWAYS] * (GRADES - 1 - len(limits))
        return torch.tensor(padding + limits, dtype=torch.float32)


CARD_RUBRIC = RubricTable(
    measured_aspect="centering",
    measured_limits=tuple(limit for limit, _ in card_rubric.CENTERING_STEPS),
    severity_aspects=("corners", "edges", "surface"),
    pristine_severity=card_rubric.PRISTINE_SEVERITY,
    severity_per_grade=card_rubric.SEVERITY_PER_GRADE,
    weights=tuple(card_rubric.SUBGRADE_WEIGHTS[a] for a in
                  ("centering", "corners", "edges", "surface")),
    max_lead_over_weakest=card_rubric.MAX_LEAD_OVER_WEAKEST,
    good_otherwise=card_rubric.GOOD_OTHERWISE,
    defect_aspects=tuple(card_rubric.DEFECT_ASPECTS.items()),
)


def subgrade_logits(table: RubricTable, worst_share: torch.Tensor, severities: torch.Tensor,
                    share_scale: torch.Tensor, severity_scales: torch.Tensor) -> torch.Tensor:
    """Cumulative logits N x aspects x 9 of every subgrade: how far the measurement lies inside
    each step of the table, in units of its uncertainty (`*_scale`, > 0)."""
    measured = (table.share_thresholds()[None, :] - worst_share[:, None]) / share_scale
    graded = (table.severity_thresholds()[None, None, :] - severities[:, :, None]) \
        / severity_scales[None, :, None]
    return torch.cat([measured[:, None], graded], dim=1)


def hard_subgrades(cumulative: torch.Tensor) -> torch.Tensor:
    """The subgrades the table gives (1 + steps passed), N x aspects, as floats."""
    return 1.0 + (cumulative >= 0).float().sum(dim=-1)


def rubric_score(table: RubricTable, subgrades: torch.Tensor) -> torch.Tensor:
    """The continuous overall score: weighted mean capped at weakest + lead, and the floor
    rule for a destroyed aspect."""
    weights = torch.tensor(table.weights, dtype=subgrades.dtype)
    weighted = (subgrades * weights).sum(dim=1)
    ordered = torch.sort(subgrades, dim=1).values
    weakest, runner_up = ordered[:, 0], ordered[:, 1]
    capped = torch.minimum(weighted, weakest + table.max_lead_over_weakest)
    destroyed = (weakest <= 1) & (runner_up < table.good_otherwise)
    return torch.where(destroyed, torch.ones_like(capped), capped)



def subgrade_combinations(table: RubricTable) -> torch.Tensor:
    """Every combination of subgrades, GRADES ** aspects x aspects, the last aspect varying
    fastest (the order `combination_weights` multiplies in)."""
    grades = torch.arange(1, GRADES + 1, dtype=torch.float32)
    grid = torch.meshgrid(*[grades] * len(table.aspects), indexing="ij")
    return torch.stack([axis.reshape(-1) for axis in grid], dim=1)


def combination_weights(probabilities: torch.Tensor) -> torch.Tensor:
    """N x GRADES ** aspects: the probability of each combination of subgrades, from each
    aspect's own (N x aspects x GRADES), measured independently."""
    weights = probabilities[:, 0]
    for aspect in range(1, probabilities.shape[1]):
        weights = (weights[:, :, None] * probabilities[:, aspect, None, :]).flatten(1)
    return weights


def grade_logits(subgrades: torch.Tensor, combination_scores: torch.Tensor,
                 thresholds: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Cumulative logits of the overall grade, N x 9, from the subgrades' (N x aspects x 9):
    P(grade > k) sums, over every combination of subgrades (`combination_scores`, their rubric
    scores), its probability times that of the experts grading a card of that score above k, a
    logistic step at `thresholds[k]` as wide as `scale` (one number, or one per card).
    P(grade <= k) is summed apart rather than taken from 1: near 1, float32 keeps too few
    digits of the difference for its logit."""
    count, aspects, steps = subgrades.shape
    per_aspect = grade_probabilities(subgrades.reshape(-1, steps)).reshape(count, aspects, -1)
    weights = combination_weights(per_aspect)[:, None, :]
    margins = (combination_scores[None, :, None] - thresholds[None, None, :]) \
        / scale.reshape(-1, 1, 1)
    above = torch.matmul(weights, torch.sigmoid(margins))[:, 0]
    below = torch.matmul(weights, torch.sigmoid(-margins))[:, 0]
    return torch.log(above + _PROBABILITY_FLOOR) - torch.log(below + _PROBABILITY_FLOOR)


def rubric_metadata(table: RubricTable) -> dict[str, object]:
    """How subgrades combine, as plain data for a server that reads no PyTorch: the weights per
    aspect, the lead over the weakest subgrade, and the aspect each defect class counts to."""
    return {"weights": dict(zip(table.aspects, table.weights, strict=True)),
            "max_lead_over_weakest": table.max_lead_over_weakest,
            "defect_aspects": dict(table.class_aspects)}
