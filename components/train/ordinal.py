"""Ordinal outputs for grades 1..K, CORN style (conditional ordinal regression).

A head gives K-1 logits; logit k models P(grade > k+1 | grade > k). Multiplying the conditional
probabilities gives P(grade > k), which can only fall as k rises, so the grade distribution is
always consistent and neighbouring grades stay close: a 7 mistaken for an 8 costs one step of
one task, not a whole wrong class.

    loss = corn_loss(logits, grades)             # grades 1..K
    probabilities = grade_probabilities(logits)  # (batch, K), rows sum to 1
    grades = predicted_grade(logits)             # 1..K
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def corn_loss(logits: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of each conditional task over the items it applies to: task k
    (k = 1..K-1) sees the items with grade >= k and asks whether grade > k."""
    thresholds = torch.arange(1, logits.shape[1] + 1, device=logits.device)
    applies = grades[:, None] >= thresholds[None, :]
    above = (grades[:, None] > thresholds[None, :]).float()
    losses = F.binary_cross_entropy_with_logits(logits, above, reduction="none")
    return (losses * applies).sum() / applies.sum().clamp(min=1)


def exceedance(logits: torch.Tensor) -> torch.Tensor:
    """P(grade > k) for k = 1..K-1: cumulative products of the conditional probabilities,
    summed as logarithms (ONNX has no cumulative product, and the graph must export)."""
    return torch.exp(torch.cumsum(F.logsigmoid(logits), dim=1))


def grade_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P(grade = k) for k = 1..K from the K-1 CORN logits."""
    above = exceedance(logits)
    ones = torch.ones_like(above[:, :1])
    zeros = torch.zeros_like(above[:, :1])
    return torch.cat([ones, above], dim=1) - torch.cat([above, zeros], dim=1)


def predicted_grade(logits: torch.Tensor) -> torch.Tensor:
    """The grade CORN predicts: 1 plus the number of thresholds passed with P > 0.5."""
    return 1 + (exceedance(logits) > 0.5).sum(dim=1)
