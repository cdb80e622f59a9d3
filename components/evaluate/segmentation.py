"""How well the grader's severity maps segment the labeled defects, per defect class: the
overlap of the cells it marks with the cells the labels cover (IoU), the share of labeled
defects of a given severity or worse it finds (recall), and how far its severity of each found
defect lies from the label's.

    rows = segmentation_report(maps, targets, classes, threshold=0.05, min_severity=0.25)

`maps` and `targets` are N x classes x h x w on the same grid; targets are what
`components/train/regions.py` draws (0 clean, > 0 a defect's severity, < 0 not judged). A
labeled defect is a connected group of cells of its class; it is found when the map reads at
least `threshold` (the severity that is still pristine) somewhere on it.
"""

from __future__ import annotations

import cv2
import numpy as np


def _defects(target: np.ndarray) -> list[np.ndarray]:
    """The labeled defects of one class map: one boolean cell mask per connected group."""
    count, labels = cv2.connectedComponents((target > 0).astype(np.uint8), connectivity=8)
    return [labels == index for index in range(1, count)]


def segmentation_report(maps: np.ndarray, targets: np.ndarray, classes: list[str],
                        threshold: float, min_severity: float) -> list[dict[str, object]]:
    """One row per class: how many labeled defects are at `min_severity` or worse and the
    share of them found (recall), the IoU of marked and labeled cells (unjudged cells left
    out) and the mean severity error over every defect found."""
    rows = []
    for index, name in enumerate(classes):
        marked, labeled = maps[:, index] >= threshold, targets[:, index] > 0
        judged = targets[:, index] >= 0
        union = ((marked | labeled) & judged).sum()
        found, graded, errors = 0, 0, []
        for item in range(len(maps)):
            for cells in _defects(targets[item, index]):
                severity = float(targets[item, index][cells].max())
                reading = float(maps[item, index][cells].max())
                if reading >= threshold:
                    errors.append(abs(reading - severity))
                if severity >= min_severity:
                    graded += 1
                    found += reading >= threshold
        rows.append({"class": name, "defects": graded,
                     "recall": round(found / graded, 3) if graded else None,
                     "iou": round(float((marked & labeled).sum() / union), 3) if union else None,
                     "severity_mae": round(float(np.mean(errors)), 3) if errors else None})
    return rows
