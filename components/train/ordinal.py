"""Ordinal outputs for grades 1..K as cumulative logits: logit k models P(grade > k), k = 1..K-1.

The grader's heads are measurements against a table's steps (`rubric.py`), which are cumulative
by nature: a severity below a step's limit passes it. Probabilities are differences of
neighbouring exceedances, so a 7 mistaken for an 8 costs one step of one threshold, not a whole
wrong class, and a temperature divides the logits the way it sharpens or softens the
measurement's uncertainty.

    loss = ordinal_loss(logits, grades)          # grades 1..K, 0 = unknown (skipped)
    probabilities = grade_probabilities(logits)  # (batch, K), rows sum to 1
    grades = predicted_grade(logits)             # 1..K
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ordinal_loss(logits: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of every threshold k ("is the grade above k?") over the items
    whose grade is known (grade 0 means unknown and is skipped)."""
    thresholds = torch.arange(1, logits.shape[1] + 1, device=logits.device)
    above = (grades[:, None] > thresholds[None, :]).float()
    known = (grades > 0).float()[:, None].expand_as(above)
    losses = F.binary_cross_entropy_with_logits(logits, above, reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


def exceedance(logits: torch.Tensor) -> torch.Tensor:
    """P(grade > k) for k = 1..K-1, never rising with k: a head whose logits do not fall is
    read at the lowest exceedance so far (unrolled, since ONNX has no cumulative minimum)."""
    probabilities = torch.sigmoid(logits)
    columns = [probabilities[:, 0]]
    for k in range(1, probabilities.shape[1]):
        columns.append(torch.minimum(columns[-1], probabilities[:, k]))
    return torch.stack(columns, dim=1)


def grade_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P(grade = k) for k = 1..K from the K-1 cumulative logits."""
    above = exceedance(logits)
    ones = torch.ones_like(above[:, :1])
    zeros = torch.zeros_like(above[:, :1])
    return torch.cat([ones, above], dim=1) - torch.cat([above, zeros], dim=1)


def predicted_grade(logits: torch.Tensor) -> torch.Tensor:
    """The median grade: 1 plus the number of thresholds passed with P > 0.5."""
    return 1 + (exceedance(logits) > 0.5).sum(dim=1)
