"""How far predicted labels agree with expected ones: the figures every stage reports the same
way (training's validation, evaluation's gates, the release comparison).

    metrics = grading_metrics(expert_grades, predicted_grades)    # {"qwk": ..., "mae": ...}
    scores = classification_metrics(expected, predicted, ["ok", "scratch"])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support


class MetricsError(ValueError):
    """Inputs a metric or plot cannot be computed from (empty, mismatched, unknown label)."""


def paired_labels(
    expected: Sequence[object] | np.ndarray,
    predicted: Sequence[object] | np.ndarray,
    allowed: Sequence[object],
) -> tuple[np.ndarray, np.ndarray]:
    """Expected and predicted as equal-length, non-empty 1-D arrays holding only allowed labels,
    so every metric below counts the same items."""
    expected_array, predicted_array = np.asarray(expected), np.asarray(predicted)
    if expected_array.ndim != 1 or predicted_array.ndim != 1:
        raise MetricsError("expected and predicted must be flat sequences of labels")
    if len(expected_array) != len(predicted_array):
        raise MetricsError(
            f"expected has {len(expected_array)} items but predicted has {len(predicted_array)}"
        )
    if len(expected_array) == 0:
        raise MetricsError("no items to score: expected and predicted are empty")
    for side, values in (("expected", expected_array), ("predicted", predicted_array)):
        unknown = ~np.isin(values, np.asarray(list(allowed)))
        if unknown.any():
            index = int(np.argmax(unknown))
            raise MetricsError(
                f"{side}[{index}] = {values.tolist()[index]!r} "
                f"is not one of the labels {list(allowed)}"
            )
    return expected_array, predicted_array


def grading_metrics(
    expected: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    grades: Sequence[int] = range(1, 11),
) -> dict[str, float]:
    """Agreement of predicted with expected ordinal grades: {"qwk": quadratic weighted kappa,
    "mae": mean absolute error, "exact": share equal, "within_one": share |diff|<=1, "n": count}.

    QWK uses the fixed label set `grades`, so scores from splits missing some grades compare.
    Kappa is undefined when every expected and predicted grade is one and the same grade: the
    predictions are then all exact, so qwk is 1.0 rather than NaN. (Grades outside `grades` are
    rejected, so undefined never comes with an inexact prediction, which would score 0.0.)
    Raises MetricsError (a ValueError) on empty or mismatched inputs or an unknown grade.
    """
    expected_array, predicted_array = paired_labels(expected, predicted, grades)
    difference = np.abs(expected_array.astype(float) - predicted_array.astype(float))
    exact = float(np.mean(difference == 0))
    if np.unique(np.concatenate([expected_array, predicted_array])).size == 1:
        qwk = 1.0
    else:
        qwk = float(
            cohen_kappa_score(
                expected_array, predicted_array, labels=list(grades), weights="quadratic"
            )
        )
    return {
        "qwk": qwk,
        "mae": float(np.mean(difference)),
        "exact": exact,
        "within_one": float(np.mean(difference <= 1)),
        "n": float(len(expected_array)),
    }


def classification_metrics(
    expected: Sequence[str], predicted: Sequence[str], classes: Sequence[str]
) -> dict[str, float]:
    """{"accuracy":..., "precision.<class>":..., "recall.<class>":..., "f1.<class>": ...,
    "macro_f1": ..., "n": ...}; zero_division=0, so a class never predicted scores 0, not NaN.

    Raises MetricsError (a ValueError) on empty or mismatched inputs or an unknown class.
    """
    expected_array, predicted_array = paired_labels(expected, predicted, classes)
    precision, recall, f1, _ = precision_recall_fscore_support(
        expected_array, predicted_array, labels=list(classes), average=None, zero_division=0
    )
    metrics = {"accuracy": float(np.mean(expected_array == predicted_array))}
    for name, scores in (("precision", precision), ("recall", recall), ("f1", f1)):
        metrics.update({f"{name}.{cls}": float(s) for cls, s in zip(classes, scores, strict=True)})
    metrics["macro_f1"] = float(np.mean(f1))
    metrics["n"] = float(len(expected_array))
    return metrics


def quadratic_kappas(expected: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Quadratic weighted kappa of each row of two equal-shape grade arrays, at once (what a
    bootstrap needs). With squared-distance weights, kappa is 1 - mean squared difference over
    what independent grades with the same marginals would give: var + var + squared mean gap.
    The same number as `grading_metrics`' qwk (which pins the label set) where defined; NaN
    where every grade of a row is one and the same."""
    expected, predicted = np.asarray(expected, float), np.asarray(predicted, float)
    observed = ((expected - predicted) ** 2).mean(axis=-1)
    chance = (expected.var(axis=-1) + predicted.var(axis=-1)
              + (expected.mean(axis=-1) - predicted.mean(axis=-1)) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - observed / chance
