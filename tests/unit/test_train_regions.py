"""Labeled regions onto the severity maps' grid: each cell a region touches reads the worst
severity of its defect class, the ring around a region is not judged, clean cells read 0, and the
homography from canvas to photo is followed; the grade task reads them from a dataset's label
files and its loss prefers maps that match them."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from components.train.regions import IGNORED, severity_targets
from components.train.rubric import CARD_RUBRIC
from components.train.severity import GraderOutputs
from components.train.tasks import Canvases, GradeTask
from components.vision.labels import yolo_seg_line

CLASSES = ("corner_wear", "edge_whitening", "surface_scratch", "logo")
CANVAS = (80, 64)  # 10 x 8 cells of 8 pixels
IDENTITY = np.eye(3)


def _square(class_id: int, x0: float, y0: float, x1: float, y1: float) -> str:
    """A YOLO-seg line of a rectangle given in canvas pixels (the photo is the canvas)."""
    width, height = CANVAS
    return yolo_seg_line(class_id, ((x0 / width, y0 / height), (x1 / width, y0 / height),
                                    (x1 / width, y1 / height), (x0 / width, y1 / height)))


def _targets(lines: list[str], severities: list[float], to_photo=IDENTITY) -> np.ndarray:
    return severity_targets(lines, severities, CLASSES, CARD_RUBRIC, CANVAS, to_photo, CANVAS, 8)


def test_a_region_sets_its_cells_and_leaves_a_ring_unjudged() -> None:
    maps = _targets([_square(0, 17, 17, 30, 30)], [0.4])  # cells (2..3, 2..3)

    corners, edges = maps[:2]
    assert maps.shape == (len(CARD_RUBRIC.defect_classes), 8, 10)
    assert np.allclose(corners[2:4, 2:4], 0.4)
    ring = np.zeros((8, 10), bool)
    ring[1:5, 1:5] = True
    ring[2:4, 2:4] = False
    assert (corners[ring] == IGNORED).all()
    assert (corners[~ring & ~np.isclose(corners, 0.4)] == 0).all()
    assert (edges == 0).all() and (maps[1:] == 0).all()  # every other class clean


def test_overlapping_regions_of_a_class_keep_the_worst() -> None:
    maps = _targets([_square(2, 1, 1, 40, 6), _square(2, 30, 1, 70, 6)], [0.2, 0.7])

    scratches = maps[CARD_RUBRIC.defect_classes.index("surface_scratch")]
    assert scratches[0, 0] == pytest.approx(0.2) and scratches[0, 4] == pytest.approx(0.7)
    assert scratches[0, 8] == pytest.approx(0.7)


def test_unknown_severities_and_ungraded_classes_teach_nothing() -> None:
    maps = _targets([_square(1, 17, 17, 30, 30), _square(3, 50, 40, 60, 50)],
                    [float("nan"), 0.9])

    assert (maps[1][1:5, 1:5] == IGNORED).all()  # where it lies is known, how bad is not
    assert (maps[1] != IGNORED).sum() == 80 - 16 and maps.max() == 0


def test_the_outline_is_drawn_where_the_homography_puts_it_on_the_canvas() -> None:
    """The photo is the canvas at twice the scale: a region at photo (40..60) lands at 20..30."""
    to_photo = np.diag([2.0, 2.0, 1.0])
    line = yolo_seg_line(0, ((40 / 160, 40 / 128), (60 / 160, 40 / 128), (60 / 160, 60 / 128)))

    maps = severity_targets([line], [0.5], CLASSES, CARD_RUBRIC, (160, 128), to_photo, CANVAS, 8)

    assert maps[0][2, 2] == pytest.approx(0.5) and maps[0][3, 3] == pytest.approx(0.5)
    assert maps[0][0, 0] == 0


def test_a_sliver_outline_still_marks_its_cells() -> None:
    """A scratch a pixel wide may arrive as an outline of no area; its cells are still set."""
    width, height = CANVAS
    line = yolo_seg_line(2, ((4 / width, 30 / height), (75 / width, 30 / height),
                             (4 / width, 30 / height)))

    scratches = _targets([line], [0.3])[CARD_RUBRIC.defect_classes.index("surface_scratch")]

    assert np.isclose(scratches[3, :], 0.3).sum() >= 9


def test_a_canvas_of_partial_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="not whole cells"):
        severity_targets([], [], CLASSES, CARD_RUBRIC, (81, 64), IDENTITY, (81, 64), 8)


# --- the grade task's targets and loss ---------------------------------------------------


def _dataset(root: Path) -> pd.DataFrame:
    """Three items as the store keeps a grade dataset with masks: one with a corner region,
    one clean (an empty label file), one never labeled for regions (no label file)."""
    (root / "labels" / "b1").mkdir(parents=True)
    (root / "labels" / "b1" / "a.txt").write_text(_square(0, 17, 17, 30, 30) + "\n")
    (root / "labels" / "b1" / "b.txt").write_text("")
    return pd.DataFrame({
        "image_path": ["images/b1/a.jpg", "images/b1/b.jpg", "images/b1/c.jpg"],
        "grade": [7, 10, 9], "severities": ["0.4000", "", ""],
        "width": [CANVAS[0]] * 3, "height": [CANVAS[1]] * 3})


def test_grade_targets_carry_the_regions_of_the_items_labeled_with_them(tmp_path: Path) -> None:
    manifest = _dataset(tmp_path)
    task = GradeTask(classes=CLASSES)

    plain = task.targets(manifest)
    with_maps = task.targets(manifest, Canvases(tmp_path, np.stack([IDENTITY] * 3), CANVAS))

    assert plain.shape == (3, 8)
    assert with_maps.shape == (3, 8 + len(CARD_RUBRIC.defect_classes) * 8 * 10)
    assert torch.equal(with_maps[:, :5], plain[:, :5])
    maps = with_maps[:, 8:].reshape(3, -1, 8, 10)
    assert maps[0, 0, 2, 2] == pytest.approx(0.4)
    assert (maps[1] == 0).all()  # labeled clean
    assert (maps[2] == IGNORED).all()  # nothing known


def test_the_map_loss_prefers_maps_that_match_the_regions(tmp_path: Path) -> None:
    task = GradeTask(classes=CLASSES)
    targets = task.targets(_dataset(tmp_path),
                           Canvases(tmp_path, np.stack([IDENTITY] * 3), CANVAS))
    truth = targets[:, 8:].reshape(3, -1, 8, 10).clamp(min=0)
    logits = torch.zeros(3, 5, 9)
    worst = torch.zeros(3, 3)

    matching = task.loss(GraderOutputs(logits, worst, truth), targets)
    blurred = task.loss(GraderOutputs(logits, worst, truth.mean() + 0 * truth), targets)
    shifted = task.loss(GraderOutputs(logits, worst, truth.roll(3, dims=3)), targets)

    assert matching < blurred and matching < shifted


def test_a_defect_smeared_over_the_clean_paper_around_it_costs_more_than_one_misread(
        tmp_path: Path) -> None:
    """A mean over every clean cell hardly charged a map that lit the paper around its defect
    (the surface maps did, on 2 to 6 times their defects' cells); the defect mass does."""
    task = GradeTask(classes=CLASSES)
    targets = task.targets(_dataset(tmp_path),
                           Canvases(tmp_path, np.stack([IDENTITY] * 3), CANVAS))
    truth = targets[:, 8:].reshape(3, -1, 8, 10).clamp(min=0)
    smeared = truth.clone()
    smeared[0, 0, 4:8, 4:10] = 0.4  # 24 clean cells around the defect read like it
    misread = torch.where(truth > 0, truth / 2, truth)  # the defect read 0.2, not 0.4
    logits, worst = torch.zeros(3, 5, 9), torch.zeros(3, 3)

    matching = task.loss(GraderOutputs(logits, worst, truth), targets)
    smeared_loss = task.loss(GraderOutputs(logits, worst, smeared), targets)
    misread_loss = task.loss(GraderOutputs(logits, worst, misread), targets)

    assert smeared_loss > misread_loss > matching


def test_a_map_pushed_far_below_its_defects_is_still_pulled_up(tmp_path: Path) -> None:
    """A class's map that clean paper drove deep into the sigmoid's flat tail must still learn
    where its defects are: one seed's edge map never did under a distance loss (issue 15)."""
    task = GradeTask(classes=CLASSES)
    targets = task.targets(_dataset(tmp_path),
                           Canvases(tmp_path, np.stack([IDENTITY] * 3), CANVAS))
    covered = targets[:, 8:].reshape(3, -1, 8, 10) > 0
    logits = torch.full(covered.shape, -12.0, requires_grad=True)

    task.loss(GraderOutputs(torch.zeros(3, 5, 9), torch.zeros(3, 3), torch.sigmoid(logits)),
              targets).backward()

    pull = -logits.grad[covered]
    assert covered.any() and (pull > 0.1).all()  # a distance pulled by 8e-6
