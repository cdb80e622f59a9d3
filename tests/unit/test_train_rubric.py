"""The rubric as tensors grades exactly as the factory's rubric does, its probabilities are
proper, the grade it gives can only fall as a defect gets worse, and the grade's probabilities
carry the subgrades' uncertainty through the rubric."""

from __future__ import annotations

import numpy as np
import torch

from components.train.ordinal import predicted_grade
from components.train.rubric import (
    CARD_RUBRIC,
    combination_weights,
    grade_logits,
    hard_subgrades,
    rubric_score,
    subgrade_combinations,
    subgrade_logits,
)
from components.vision.rubric import grade_card

SHARP = torch.tensor(1e-3)


def _grade(shares: np.ndarray, severities: np.ndarray) -> torch.Tensor:
    cumulative = subgrade_logits(CARD_RUBRIC, torch.tensor(shares, dtype=torch.float32),
                                 torch.tensor(severities, dtype=torch.float32), SHARP,
                                 SHARP.repeat(3))
    subgrades = hard_subgrades(cumulative)
    return subgrades, rubric_score(CARD_RUBRIC, subgrades)


def test_subgrades_and_scores_equal_the_factorys_rubric() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    # Shares and severities on and around every step of the tables, and anywhere between.
    shares = np.concatenate([rng.uniform(50, 99, n // 2),
                             rng.choice([55, 60, 65, 70, 80, 85, 90, 95], n // 2)
                             + rng.choice([-0.01, 0, 0.01], n // 2)])
    severities = np.concatenate([rng.uniform(0, 1, (n // 2, 3)),
                                 np.round(rng.uniform(0, 1, (n // 2, 3)), 2)])
    subgrades, scores = _grade(shares, severities)

    for i in range(n):
        # lr carries the worst share; tb is perfect
        truth = grade_card(float(shares[i]), 50.0, *map(float, severities[i]))
        assert subgrades[i].int().tolist() == list(truth.subgrades.as_dict().values()), i
        assert abs(float(scores[i]) - truth.score) < 1e-4, i


def test_subgrade_logits_fall_with_k_and_read_as_the_tables_subgrade() -> None:
    rng = np.random.default_rng(1)
    shares, severities = rng.uniform(50, 99, 200), rng.uniform(0, 1, (200, 3))
    logits = subgrade_logits(CARD_RUBRIC, torch.tensor(shares, dtype=torch.float32),
                             torch.tensor(severities, dtype=torch.float32), torch.tensor(0.5),
                             torch.full((3,), 0.03))
    assert (logits[..., 1:] <= logits[..., :-1]).all()  # P(subgrade > k) never rises with k
    median = torch.stack([predicted_grade(logits[:, a]) for a in range(4)], dim=1)
    assert torch.equal(median.float(), hard_subgrades(logits))


def test_a_worse_defect_never_raises_the_score() -> None:
    rng = np.random.default_rng(2)
    shares = rng.uniform(50, 90, 500)
    severities = rng.uniform(0, 0.9, (500, 3))
    _, base = _grade(shares, severities)
    for aspect in range(3):
        worse = severities.copy()
        worse[:, aspect] += rng.uniform(0, 0.1, 500)
        _, after = _grade(shares, worse)
        assert (after <= base + 1e-6).all()
    _, off_centre = _grade(shares + rng.uniform(0, 9, 500), severities)
    assert (off_centre <= base + 1e-6).all()


def test_a_crease_caps_the_grade_at_six() -> None:
    # The factory's lightest crease has severity 0.55: surface 5, so the card is at most a 6.
    _, scores = _grade(np.full(3, 50.0), np.array([[0.0, 0.0, 0.55], [0.0, 0.0, 0.8],
                                                   [0.0, 0.0, 1.0]]))
    assert (torch.floor(scores + 0.5) <= 6).all()


def _exceedance(shares: np.ndarray, severities: np.ndarray, severity_scale: float,
                grade_scale: float = 0.01) -> torch.Tensor:
    cumulative = subgrade_logits(CARD_RUBRIC, torch.tensor(shares, dtype=torch.float32),
                                 torch.tensor(severities, dtype=torch.float32), SHARP,
                                 torch.full((3,), severity_scale))
    scores = rubric_score(CARD_RUBRIC, subgrade_combinations(CARD_RUBRIC))
    thresholds = torch.arange(1, 10, dtype=torch.float32) + 0.5  # the rubric's rounding
    return torch.sigmoid(grade_logits(cumulative, scores, thresholds,
                                      torch.tensor(grade_scale)))


def test_combination_weights_follow_the_order_of_the_combinations() -> None:
    rng = np.random.default_rng(3)
    probabilities = torch.from_numpy(rng.dirichlet(np.ones(10), (5, 4))).float()
    weights = combination_weights(probabilities)
    combinations = subgrade_combinations(CARD_RUBRIC).long() - 1
    assert torch.allclose(weights.sum(dim=1), torch.ones(5), atol=1e-5)
    for row in rng.integers(0, len(combinations), 20):
        expected = torch.prod(probabilities[:, torch.arange(4), combinations[row]], dim=1)
        assert torch.allclose(weights[:, row], expected, atol=1e-7)


def test_measured_far_from_every_step_the_grade_is_the_rubrics() -> None:
    rng = np.random.default_rng(4)
    # Severities mid-step (0.1 k + 0.1): no step within 0.05, read to 0.005.
    shares, severities = rng.uniform(50, 54, 300), rng.integers(0, 9, (300, 3)) / 10 + 0.1
    above = _exceedance(shares, severities, severity_scale=0.005)
    _, scores = _grade(shares, severities)
    expected = torch.floor(scores + 0.5)
    assert torch.equal(1 + (above > 0.5).sum(dim=1).float(), expected)
    certain = (above - 0.5).abs() > 0.49
    assert certain.float().mean() > 0.95  # one grade, all but sure


def test_a_severity_on_a_step_splits_the_grade_between_its_neighbours() -> None:
    # Corners exactly on the 8/9 step, everything else pristine: subgrades (10, 9, 10, 10)
    # score 9.75 (a 10), (10, 8, 10, 10) score 9.0 (capped at the weakest + 1: a 9).
    on_step = CARD_RUBRIC.pristine_severity + CARD_RUBRIC.severity_per_grade
    above = _exceedance(np.array([50.0]), np.array([[on_step, 0.0, 0.0]]), severity_scale=0.01)
    probabilities = torch.cat([torch.ones(1, 1), above], dim=1) - torch.cat(
        [above, torch.zeros(1, 1)], dim=1)
    assert (above[:, 1:] <= above[:, :-1] + 1e-6).all()
    assert abs(float(probabilities[0, 9]) - 0.5) < 0.05  # a 10
    assert abs(float(probabilities[0, 8]) - 0.5) < 0.05  # a 9
