"""The served models: the detector's letterbox is Ultralytics' own and its raw outputs become
defects with boxes in the photo's pixels after NMS; the grader's severity maps become the
defects it graded, boxed in the photo, and its answer names the subgrade that caps the grade; a
graph whose checksum differs is never loaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from components.evaluate.detector import letterbox
from components.train.rubric import CARD_RUBRIC, rubric_metadata
from components.vision.centering import CenteringMeasurement
from components.vision.models import (
    ChecksumMismatch,
    OnnxDetector,
    capping_aspect,
    centering_answer,
    graded_defects,
    letterbox_one,
)
from tests.graphs import DETECTOR_IMGSZ as IMGSZ
from tests.graphs import detector_graph


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_letterbox_is_the_one_the_detector_was_trained_and_evaluated_with() -> None:
    photo = np.random.default_rng(1).integers(0, 255, (90, 150, 3), np.uint8)
    ours, scale, padding = letterbox_one(photo, IMGSZ)
    assert np.array_equal(ours, letterbox([photo], IMGSZ)[0])
    assert scale == pytest.approx(64 / 150) and padding[0] == 0 and padding[1] > 0


def test_raw_outputs_become_defects_in_photo_pixels_after_nms(tmp_path: Path) -> None:
    # Anchors (letterboxed pixels): a confident scratch, an overlapping weaker scratch that
    # NMS removes, and a dent below the confidence threshold.
    raw = np.array([[32, 33, 10], [32, 32, 10], [20, 20, 4], [10, 10, 4],
                    [0.9, 0.6, 0.0], [0.0, 0.0, 0.1]], np.float32)
    graph = detector_graph(tmp_path / "detector.onnx", raw)
    detector = OnnxDetector.load(graph, _sha256(graph), "defect-detector", 3)

    defects = detector.detect([np.zeros((64, 128, 3), np.uint8)])  # 128 wide: scale 0.5

    assert len(defects) == 1 and len(defects[0]) == 1
    found = defects[0][0]
    assert found.label == "scratch" and found.confidence == pytest.approx(0.9)
    # letterbox: x1 = 32 - 10 = 22 -> 44 px; y1 = 32 - 5 - 16 (padding) = 11 -> 22 px
    assert found.box == pytest.approx((44.0, 22.0, 84.0, 42.0))
    assert found.as_dict()["box"] == [44.0, 22.0, 84.0, 42.0]


def test_a_graph_whose_checksum_differs_is_refused(tmp_path: Path) -> None:
    graph = detector_graph(tmp_path / "detector.onnx", np.zeros((6, 1), np.float32))
    with pytest.raises(ChecksumMismatch, match="differs from the registered"):
        OnnxDetector.load(graph, "0" * 64, "defect-detector", 3)
    with pytest.raises(ChecksumMismatch, match="no checksum"):
        OnnxDetector.load(graph, None, "defect-detector", 3)


def test_centering_is_reported_as_graders_write_it() -> None:
    measured = CenteringMeasurement(55.4, 48.6, (2.1, 1.9, 1.7, 2.0), (), ())
    answer = centering_answer(measured)
    assert answer["left_right"] == "55/45" and answer["top_bottom"] == "49/51"
    assert centering_answer(None) is None


def test_severity_maps_become_defects_named_and_boxed_in_the_photo() -> None:
    classes = dict(CARD_RUBRIC.class_aspects)  # corner_wear: corners, ..., stain: surface
    maps = np.zeros((len(classes), 6, 4), np.float32)  # cells of 8 pixels
    scratch = list(classes).index("surface_scratch")
    maps[0, 0, 0] = 0.31                    # a worn top-left corner
    maps[scratch, 2:4, 1] = [0.2, 0.6]      # one scratch over two cells
    maps[scratch, 5, 3] = 0.04              # below the pristine severity: no defect
    to_photo = np.array([[2.0, 0, 10], [0, 2.0, 20], [0, 0, 1]])  # canvas -> photo

    found = graded_defects(maps, classes, to_photo, threshold=0.05, stride=8)

    assert [(d.defect_class, d.aspect, round(d.severity, 2)) for d in found] == [
        ("surface_scratch", "surface", 0.6), ("corner_wear", "corners", 0.31)]
    assert found[0].box == pytest.approx((26.0, 52.0, 42.0, 84.0))  # cells x 1, y 2..3
    assert found[1].as_dict() == {"class": "corner_wear", "aspect": "corners",
                                  "severity": 0.31, "box": [10.0, 20.0, 26.0, 36.0]}


def test_the_answer_names_the_subgrade_that_caps_the_grade() -> None:
    rubric = rubric_metadata(CARD_RUBRIC)  # what evaluation writes into the graph

    def capped_by(**subgrades: int) -> str | None:
        return capping_aspect(rubric, subgrades)

    assert capped_by(centering=10, corners=4, edges=10, surface=10) == "corners"
    assert capped_by(centering=9, corners=8, edges=9, surface=8) is None
    assert capped_by(grade_only=3) is None  # a rubric the answer does not follow
    assert capping_aspect(None, {"corners": 4}) is None  # a graph that names no rubric
