"""Evaluation metrics and report pictures: grade agreement against sklearn and hand counts,
class scores checked by hand, and PNGs that open, have the right layout and leak no figures."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from components.train.metrics import confusion_matrix_png, prediction_sheet, training_curves_png
from components.vision.agreement import MetricsError, classification_metrics, grading_metrics

HISTORY = [
    {"epoch": 1, "train_loss": 0.9, "val_loss": 1.0, "val_qwk": 0.40},
    {"epoch": 2, "train_loss": 0.6, "val_loss": 0.8, "val_qwk": 0.65},
    {"epoch": 3, "train_loss": 0.4, "val_loss": 0.7, "val_qwk": 0.72},
]


def _read(path: Path) -> np.ndarray:
    """The PNG at path as a BGR array, failing the test if it is missing or unreadable."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image is not None
    return image


def _sheet_shape(tmp_path: Path, images: list[np.ndarray], columns: int) -> tuple[int, int]:
    """(height, width) of the sheet drawn from images, all captioned as correct."""
    path = prediction_sheet(
        images,
        ["pred 7 / expert 8"] * len(images),
        [True] * len(images),
        tmp_path / f"sheet_{len(images)}_{columns}.png",
        columns=columns,
    )
    return _read(path).shape[:2]


def test_perfect_grades_agree_fully() -> None:
    grades = list(range(1, 11))

    assert grading_metrics(grades, grades) == {
        "qwk": 1.0,
        "mae": 0.0,
        "exact": 1.0,
        "within_one": 1.0,
        "n": 10.0,
    }


def test_qwk_matches_sklearn_with_the_fixed_grade_labels() -> None:
    expected = np.array([2, 3, 5, 5, 7, 8, 9])
    predicted = np.array([3, 3, 4, 6, 7, 6, 9])

    metrics = grading_metrics(expected, predicted)

    reference = cohen_kappa_score(expected, predicted, labels=range(1, 11), weights="quadratic")
    assert metrics["qwk"] == pytest.approx(reference)
    assert metrics["mae"] == pytest.approx(5 / 7)
    assert metrics["exact"] == pytest.approx(3 / 7)
    assert metrics["within_one"] == pytest.approx(6 / 7)


def test_off_by_one_is_never_exact_but_always_within_one() -> None:
    metrics = grading_metrics([3, 5, 8, 10], [4, 4, 9, 9])

    assert metrics["exact"] == 0.0
    assert metrics["within_one"] == 1.0
    assert metrics["mae"] == 1.0


@pytest.mark.filterwarnings("error")
def test_one_grade_everywhere_scores_qwk_one_without_warning() -> None:
    assert grading_metrics([7, 7, 7], [7, 7, 7])["qwk"] == 1.0


def test_constant_but_wrong_predictions_score_qwk_zero() -> None:
    metrics = grading_metrics([7, 7, 7], [8, 8, 8])

    assert metrics["qwk"] == 0.0
    assert metrics["exact"] == 0.0


@pytest.mark.parametrize(
    ("expected", "predicted", "message"),
    [
        ([], [], "empty"),
        ([1, 2], [1], "2 items"),
        ([1, 11], [1, 10], r"expected\[1\] = 11"),
    ],
)
def test_unusable_grades_are_rejected_by_name(
    expected: list[int], predicted: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        grading_metrics(expected, predicted)


def test_classification_metrics_match_hand_counts() -> None:
    classes = ["ok", "crease", "stain", "dent"]
    expected = ["ok", "ok", "crease", "stain", "stain"]
    predicted = ["ok", "crease", "crease", "stain", "ok"]

    metrics = classification_metrics(expected, predicted, classes)

    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["precision.ok"] == pytest.approx(1 / 2)
    assert metrics["recall.ok"] == pytest.approx(1 / 2)
    assert metrics["precision.crease"] == pytest.approx(1 / 2)
    assert metrics["recall.crease"] == 1.0
    assert metrics["precision.stain"] == 1.0
    assert metrics["recall.stain"] == pytest.approx(1 / 2)
    assert metrics["f1.crease"] == pytest.approx(2 / 3)
    assert metrics["precision.dent"] == metrics["recall.dent"] == metrics["f1.dent"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3 + 0) / 4)
    assert metrics["n"] == 5.0


def test_unknown_class_is_rejected() -> None:
    with pytest.raises(MetricsError, match=r"predicted\[0\] = 'scratch'"):
        classification_metrics(["ok"], ["scratch"], ["ok", "crease"])


def test_confusion_matrix_png_opens(tmp_path: Path) -> None:
    path = confusion_matrix_png(
        [1, 5, 5, 9, 10], [2, 5, 6, 9, 10], range(1, 11), tmp_path / "deep" / "cm.png", "val"
    )

    assert path == tmp_path / "deep" / "cm.png"
    assert _read(path).shape[1] > 100


def test_confusion_matrix_png_takes_class_names(tmp_path: Path) -> None:
    path = confusion_matrix_png(
        ["ok", "stain"], ["ok", "ok"], ["ok", "stain"], tmp_path / "cm.png", "val", "defect"
    )

    assert _read(path).shape[1] > 100


def test_training_curves_put_metrics_on_a_second_axes(tmp_path: Path) -> None:
    losses_only = [{k: v for k, v in entry.items() if k != "val_qwk"} for entry in HISTORY]

    both = _read(training_curves_png(HISTORY, tmp_path / "both.png", "grader"))
    one = _read(training_curves_png(losses_only, tmp_path / "one.png", "grader"))

    assert one.shape[1] > 100
    assert both.shape[1] > 1.5 * one.shape[1]


def test_training_curves_need_something_to_plot(tmp_path: Path) -> None:
    with pytest.raises(MetricsError, match="no numeric keys"):
        training_curves_png([{"epoch": 1}], tmp_path / "curves.png", "grader")


def test_plots_leave_no_open_figures(tmp_path: Path) -> None:
    for i in range(10):
        confusion_matrix_png([1, 2], [1, 3], [1, 2, 3], tmp_path / f"cm{i}.png", "val")
        training_curves_png(HISTORY, tmp_path / f"curves{i}.png", "grader")

    assert plt.get_fignums() == []


def test_sheet_rows_and_columns_follow_the_image_count(tmp_path: Path) -> None:
    image = np.full((40, 80, 3), 128, dtype=np.uint8)

    def shape(count: int, columns: int = 3) -> tuple[int, int]:
        return _sheet_shape(tmp_path, [image] * count, columns)

    row = shape(6)[0] - shape(3)[0]
    assert row > 0
    assert shape(7) == shape(9)
    assert shape(7)[0] - shape(6)[0] == row
    assert shape(7)[1] == shape(3)[1] > 100
    assert shape(3)[1] - shape(2)[1] == shape(2)[1] - shape(1)[1]


def test_sheet_scales_images_to_the_tile_width_keeping_aspect(tmp_path: Path) -> None:
    tall = np.full((200, 100, 3), 128, dtype=np.uint8)
    wide = np.full((40, 80, 3), 128, dtype=np.uint8)
    square = np.full((64, 64, 3), 128, dtype=np.uint8)

    tall_height = _sheet_shape(tmp_path / "tall", [tall], columns=3)[0]
    wide_height = _sheet_shape(tmp_path / "wide", [wide], columns=3)[0]
    mixed = _sheet_shape(tmp_path / "mixed", [wide, tall, square, wide], columns=3)

    assert tall_height - wide_height == 320 - 80
    assert mixed[0] > tall_height


@pytest.mark.parametrize(("correct", "channel"), [(True, 1), (False, 2)])
def test_sheet_captions_are_green_when_correct_else_red(
    tmp_path: Path, correct: bool, channel: int
) -> None:
    grey = np.full((40, 80, 3), 128, dtype=np.uint8)

    path = prediction_sheet([grey], ["pred 7 / expert 8"], [correct], tmp_path / "s.png")

    bgr = _read(path).astype(int)
    other = 2 if channel == 1 else 1
    assert ((bgr[..., channel] - bgr[..., other]) > 80).any()
    assert not ((bgr[..., other] - bgr[..., channel]) > 80).any()


def test_sheet_rejects_bad_inputs(tmp_path: Path) -> None:
    grey = np.full((40, 80), 128, dtype=np.uint8)

    with pytest.raises(MetricsError, match=r"images\[0\]"):
        prediction_sheet([grey], ["pred 7"], [True], tmp_path / "s.png")
    with pytest.raises(MetricsError, match="one caption"):
        prediction_sheet([grey], [], [True], tmp_path / "s.png")
