"""Agreement of a grader with the expert panel, and the experts' agreement among themselves:
the human bar a model is measured against.

    report = expert_agreement(test_rows, predicted)        # vs the panel's consensus
    bar = human_bar(test_rows[["grader_1", "grader_2", "grader_3"]])
    bar.verdict(report.overall["qwk"])                     # "within", "above" or "below"

The human bar is leave-one-out: each expert is scored against the consensus of the other
experts, with the same metrics the model gets. With three experts the others are two, whose
consensus is their mean rounded half to even (7 and 8 give 8, 8 and 9 give 8), so neither
the stricter nor the more lenient of a split pair always wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from components.train.model import ORDINAL_TARGETS
from components.train.rubric import GRADES
from components.vision.agreement import grading_metrics

GRADE_RANGE = range(1, GRADES + 1)
SUBGRADES = ORDINAL_TARGETS[1:]


class AgreementError(ValueError):
    """The rows cannot be scored: no expert columns, or too few experts for a human bar."""


def expert_columns(rows: pd.DataFrame) -> list[str]:
    """The panel's columns (`grader_1`, `grader_2`, ...) of a manifest, in order."""
    return sorted((c for c in rows.columns if c.startswith("grader_") and c[7:].isdigit()),
                  key=lambda c: int(c[7:]))  # grader_10 after grader_9, not after grader_1


@dataclass(frozen=True)
class HumanBar:
    """Each expert against the consensus of the others, and the spread of their scores."""

    per_expert: dict[str, dict[str, float]]

    def metric(self, name: str) -> float:
        """The experts' mean of one metric: the bar a model's figure is compared with."""
        return float(np.mean([scores[name] for scores in self.per_expert.values()]))

    def verdict(self, model_qwk: float) -> str:
        """"above" the best expert's QWK, "below" the worst one's, or "within" their range."""
        scores = [s["qwk"] for s in self.per_expert.values()]
        if model_qwk > max(scores):
            return "above"
        return "below" if model_qwk < min(scores) else "within"

    def as_dict(self) -> dict[str, object]:
        return {"per_expert": self.per_expert,
                "mean": {k: self.metric(k) for k in ("qwk", "mae", "exact", "within_one")}}


def human_bar(panel: pd.DataFrame) -> HumanBar:
    """Leave-one-out agreement of a panel: one column of grades per expert, one row per item."""
    if panel.shape[1] < 2:
        raise AgreementError(f"a human bar needs two experts or more, got {list(panel.columns)}")
    grades = panel.to_numpy(dtype=np.float64)
    per_expert = {}
    for i, name in enumerate(panel.columns):
        others = np.delete(grades, i, axis=1)
        # np.median of two is their mean; np.round rounds halves to even.
        consensus = np.round(np.median(others, axis=1)).astype(int)
        per_expert[str(name)] = grading_metrics(consensus, grades[:, i].astype(int), GRADE_RANGE)
    return HumanBar(per_expert)


@dataclass(frozen=True)
class AgreementReport:
    """The model against the labels: overall, per subgrade and per camera (grade only)."""

    overall: dict[str, float]
    per_subgrade: dict[str, dict[str, float]] = field(default_factory=dict)
    per_camera: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def expert_agreement(rows: pd.DataFrame, predicted: np.ndarray,
                     targets: Sequence[str] = ORDINAL_TARGETS) -> AgreementReport:
    """Score predicted grades (N x len(targets), columns in `targets` order) against the rows'
    labels: `grade` is the panel's consensus; subgrades are scored where the rows give them."""
    if len(rows) != len(predicted):
        raise AgreementError(f"{len(rows)} rows but {len(predicted)} predictions")
    predicted = np.asarray(predicted)
    grade_column = list(targets).index("grade")
    overall = grading_metrics(rows["grade"].to_numpy(), predicted[:, grade_column], GRADE_RANGE)
    per_subgrade = {name: grading_metrics(rows[name].to_numpy(), predicted[:, i], GRADE_RANGE)
                    for i, name in enumerate(targets) if name in SUBGRADES and name in rows}
    per_camera = {}
    if "camera" in rows:
        for camera, index in rows.groupby("camera").indices.items():
            per_camera[str(camera)] = grading_metrics(rows["grade"].to_numpy()[index],
                                                      predicted[index, grade_column], GRADE_RANGE)
    return AgreementReport(overall, per_subgrade, per_camera)
