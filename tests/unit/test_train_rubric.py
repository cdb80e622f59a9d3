"""The rubric as tensors grades exactly as the factory's rubric does, its probabilities are
proper, and the grade it gives can only fall as a defect gets worse."""

from __future__ import annotations

import numpy as np
import torch

from components.cards.rubric import grade_card
from components.train.ordinal import predicted_grade
from components.train.rubric import (
    CARD_RUBRIC,
    hard_subgrades,
    rubric_score,
    subgrade_logits,
)

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
