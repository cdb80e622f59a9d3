"""Cumulative ordinal outputs: consistent probabilities (even from logits that do not fall),
the right grade from clear logits, and a loss that teaches a tiny model any grade."""

from __future__ import annotations

import torch

from components.train.ordinal import (
    exceedance,
    grade_probabilities,
    ordinal_loss,
    predicted_grade,
)

GRADES = 10


def _sure_of(grade: int) -> torch.Tensor:
    """Logits that are certain the grade is `grade`: pass every threshold below it, no other."""
    thresholds = torch.arange(1, GRADES)
    return torch.where(thresholds < grade, 20.0, -20.0)[None, :].float()


def test_clear_logits_give_their_grade_for_every_grade() -> None:
    logits = torch.cat([_sure_of(grade) for grade in range(1, GRADES + 1)])

    assert predicted_grade(logits).tolist() == list(range(1, GRADES + 1))
    assert grade_probabilities(logits).argmax(dim=1).add(1).tolist() == list(range(1, 11))


def test_probabilities_are_a_distribution_and_exceedance_never_rises() -> None:
    logits = torch.randn(64, GRADES - 1) * 3

    probabilities = grade_probabilities(logits)
    above = exceedance(logits)

    assert probabilities.shape == (64, GRADES)
    assert (probabilities >= 0).all()
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(64))
    assert (above[:, 1:] <= above[:, :-1] + 1e-7).all()


def test_the_loss_is_low_for_the_right_grade_and_high_for_a_far_one() -> None:
    logits = _sure_of(7)

    right = ordinal_loss(logits, torch.tensor([7]))
    near = ordinal_loss(logits, torch.tensor([8]))
    far = ordinal_loss(logits, torch.tensor([2]))

    assert right < 1e-6 < near < far


def test_a_linear_head_learns_grades_from_features() -> None:
    torch.manual_seed(0)
    features = torch.randn(40, 8)
    grades = torch.randint(1, GRADES + 1, (40,))
    features[:, 0] = grades.float()  # one feature carries the grade
    head = torch.nn.Linear(8, GRADES - 1)
    optimiser = torch.optim.Adam(head.parameters(), lr=0.1)

    for _ in range(300):
        optimiser.zero_grad()
        ordinal_loss(head(features), grades).backward()
        optimiser.step()

    assert (predicted_grade(head(features)) == grades).float().mean() >= 0.95


def test_unknown_grades_are_skipped_and_clear_cumulative_logits_read_exactly() -> None:
    logits = torch.tensor([[3.0, 1.0, -2.0]])  # P(> 1), P(> 2), P(> 3) of four grades
    expected = torch.sigmoid(logits[0])
    probabilities = grade_probabilities(logits)[0]
    assert torch.allclose(probabilities, torch.stack([1 - expected[0], expected[0] - expected[1],
                                                      expected[1] - expected[2], expected[2]]))
    assert ordinal_loss(logits, torch.tensor([0])) == 0  # grade unknown: nothing to learn
