"""How well the classical measurement recovers a factory batch's known centering."""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from components.vision.centering import CenteringError, measure_centering


@dataclass(frozen=True)
class CenteringAccuracy:
    """Absolute errors in percentage points of the left/right and top/bottom ratios."""

    cards: int
    failures: int
    mean_abs_lr: float
    mean_abs_tb: float
    p95_abs: float
    max_abs: float
    within_1pp: float  # share of cards whose both ratios are within one point
    ms_per_image: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def centering_accuracy(batch_dir: Path, limit: int | None = None) -> CenteringAccuracy:
    """Measure every card of a factory batch (or its first `limit`) against its manifest."""
    with (Path(batch_dir) / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))[:limit]
    errors, failures = [], 0
    started = time.perf_counter()
    for row in rows:
        try:
            measured = measure_centering(cv2.imread(str(Path(batch_dir) / row["image_path"])))
        except CenteringError:
            failures += 1
            continue
        errors.append((abs(measured.centering_lr - float(row["centering_lr"])),
                       abs(measured.centering_tb - float(row["centering_tb"]))))
    elapsed = time.perf_counter() - started
    if not errors:
        raise CenteringError(f"no card of {batch_dir} could be measured")
    e = np.array(errors)
    return CenteringAccuracy(
        cards=len(rows),
        failures=failures,
        mean_abs_lr=round(float(e[:, 0].mean()), 3),
        mean_abs_tb=round(float(e[:, 1].mean()), 3),
        p95_abs=round(float(np.percentile(e.max(1), 95)), 3),
        max_abs=round(float(e.max()), 3),
        within_1pp=round(float((e.max(1) <= 1.0).mean()), 4),
        ms_per_image=round(1000 * elapsed / len(rows), 2),
    )
