"""How well the grader's severity maps segment the labeled defects, per defect class: the
overlap of the cells it marks with the cells the labels cover (IoU), the share of labeled
defects of a given severity or worse it finds (recall), the share of cards without the class
where the map reads that severity anyway (false alarms), and how far its severity of each
found defect lies from the label's and how closely it follows it (correlation: a map that reads
every scratch as 0.5 has a fair mean error and measures nothing).

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
    out), the share of judged cards without the class whose map reads `min_severity` or worse
    somewhere (false alarms), and over every defect found, the mean severity error and the
    correlation of the map's severity with the label's (None for fewer than 3)."""
    rows = []
    for index, name in enumerate(classes):
        marked, labeled = maps[:, index] >= threshold, targets[:, index] > 0
        judged = targets[:, index] >= 0
        union = ((marked | labeled) & judged).sum()
        found, graded, pairs = 0, 0, []
        for item in range(len(maps)):
            for cells in _defects(targets[item, index]):
                severity = float(targets[item, index][cells].max())
                reading = float(maps[item, index][cells].max())
                if reading >= threshold:
                    pairs.append((severity, reading))
                if severity >= min_severity:
                    graded += 1
                    found += reading >= threshold
        without = ~labeled.any(axis=(1, 2)) & judged.any(axis=(1, 2))
        alarms = (np.where(judged, maps[:, index], 0) >= min_severity).any(axis=(1, 2))
        labels, readings = np.array(pairs).reshape(-1, 2).T
        rows.append({"class": name, "defects": graded,
                     "recall": round(found / graded, 3) if graded else None,
                     "iou": round(float((marked & labeled).sum() / union), 3) if union else None,
                     "false_alarms": round(float(alarms[without].mean()), 3)
                     if without.any() else None,
                     "severity_mae": round(float(np.abs(readings - labels).mean()), 3)
                     if pairs else None,
                     "severity_r": _correlation(labels, readings)})
    return rows


def _correlation(labels: np.ndarray, readings: np.ndarray) -> float | None:
    """Pearson's r of the map's severities and the labels', None where it is undefined."""
    if len(labels) < 3 or labels.std() == 0 or readings.std() == 0:
        return None
    return round(float(np.corrcoef(labels, readings)[0, 1]), 3)
