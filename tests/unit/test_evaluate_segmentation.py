"""The severity maps judged as a defect segmentation: recall counts labeled defects of the
minimum severity or worse that the map marks anywhere, false alarms the cards without the class
where it reads that severity anyway, IoU leaves unjudged cells out, and the severity error and
correlation are measured on the defects found; the report's sheet of worst errors shows where
the grader read each defect."""

import numpy as np
import pytest

from components.evaluate import plots
from components.evaluate.plots import severity_overlay, worst_errors_png
from components.evaluate.segmentation import segmentation_report
from components.train.regions import IGNORED

CLASSES = ["scratch", "stain"]


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Two items, two classes, 6 x 6 cells: labeled targets and the model's maps."""
    return np.zeros((2, 2, 6, 6), np.float32), np.zeros((2, 2, 6, 6), np.float32)


def test_recall_iou_and_severity_error_per_class() -> None:
    maps, targets = _grid()
    targets[0, 0, 1, 1:4] = 0.5     # a scratch of 0.5 over three cells: found on two
    maps[0, 0, 1, 2:4] = [0.45, 0.6]
    targets[1, 0, 4, 4] = 0.3       # a scratch of 0.3: missed
    targets[1, 0, 0, 0] = 0.1       # a light scratch: below the recall's minimum, missed
    maps[1, 0, 5, 0] = 0.2          # a scratch marked where none is labeled
    targets[0, 1, 3:5, 3:5] = 0.7   # a stain, found everywhere
    maps[0, 1, 3:5, 3:5] = 0.7

    scratch, stain = segmentation_report(maps, targets, CLASSES, threshold=0.05,
                                         min_severity=0.25)

    assert scratch == {"class": "scratch", "defects": 2, "recall": 0.5,
                       "iou": pytest.approx(2 / 6, abs=1e-3), "false_alarms": None,
                       "severity_mae": 0.1, "severity_r": None}  # every card has a scratch
    assert stain == {"class": "stain", "defects": 1, "recall": 1.0, "iou": 1.0,
                     "false_alarms": 0.0, "severity_mae": 0.0, "severity_r": None}


def test_false_alarms_and_whether_the_severity_follows_the_label() -> None:
    """Measured on the bench grader (issue 15): its surface maps read 0.15 on average where
    the card had no such defect and followed the labeled severity with r of about 0.6."""
    maps, targets = np.zeros((4, 2, 6, 6), np.float32), np.zeros((4, 2, 6, 6), np.float32)
    for item, (severity, stain_read) in enumerate([(0.3, 0.35), (0.5, 0.5), (0.8, 0.75)]):
        targets[item, :, 2, 2] = severity
        maps[item, 0, 2, 2] = 0.5           # every scratch read alike
        maps[item, 1, 2, 2] = stain_read
    maps[3, 1, 5, 5] = 0.3                  # a stain read on the clean fourth card
    maps[3, 0, 0, 0] = 0.2                  # a faint scratch there: under the alarm's 0.25

    scratch, stain = segmentation_report(maps, targets, CLASSES, threshold=0.05,
                                         min_severity=0.25)

    assert scratch["false_alarms"] == 0.0 and stain["false_alarms"] == 1.0
    assert scratch["severity_mae"] == pytest.approx((0.2 + 0.0 + 0.3) / 3, abs=1e-3)
    assert scratch["severity_r"] is None    # a constant reading measures nothing
    assert stain["severity_r"] > 0.99


def test_unjudged_cells_neither_reward_nor_cost_and_no_defects_read_none() -> None:
    maps, targets = _grid()
    targets[0, 0, 2, 2] = 0.4
    targets[0, 0, 1:4, 1:4][targets[0, 0, 1:4, 1:4] == 0] = IGNORED  # the ring around it
    maps[0, 0, 1:4, 1:4] = 0.4  # the model marks the ring too

    scratch, stain = segmentation_report(maps, targets, CLASSES, threshold=0.05,
                                         min_severity=0.25)

    assert scratch["iou"] == 1.0 and scratch["recall"] == 1.0
    assert stain == {"class": "stain", "defects": 0, "recall": None, "iou": None,
                     "false_alarms": 0.0, "severity_mae": None, "severity_r": None}


def test_the_overlay_reddens_where_the_grader_read_a_defect() -> None:
    pixels = np.full((16, 24, 3), 200, np.uint8)
    maps = np.zeros((2, 2, 3), np.float32)
    maps[1, 0, 2] = 1.0  # a severe defect in the top-right cell

    overlaid = severity_overlay(pixels, maps, stride=8)

    assert overlaid[2, 20, 0] > 240 and overlaid[2, 20, 1] < 60  # red there
    assert (overlaid[10, 2] == 200).all()  # untouched elsewhere


def test_the_worst_errors_sheet_shows_the_largest_misses(tmp_path, monkeypatch) -> None:
    shown = {}

    def sheet(images, captions, correct, path):
        shown.update(captions=captions, correct=correct)
        return path

    monkeypatch.setattr(plots, "prediction_sheet", sheet)
    pixels, maps = np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 1, 1, 1), np.float32)

    worst_errors_png(pixels, maps, np.array([7, 3, 9, 5]), np.array([7, 8, 8, 5]), 8,
                     tmp_path / "worst.png", count=2)

    assert shown == {"captions": ["pred 3 / expert 8", "pred 9 / expert 8"],
                     "correct": [False, False]}
