"""Batch inspection without a server: every readable image gets its JSON report, an unreadable
one is listed with why while the rest are inspected, and the summary reconciles (issue 16)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from components.cards import synthesize_batch
from components.evaluate.export import untrained_grader_graph
from components.evaluate.graphs import sha256
from components.inspection import (
    REPORTS,
    SUMMARY_CSV,
    SUMMARY_HTML,
    InspectingModel,
    find_images,
    inspect_folder,
    most_defective,
    write_summary,
)
from components.vision.models import OnnxDetector, OnnxGrader
from tests.graphs import detector_graph

# One confident scratch centred at (32, 32) of the 64-pixel letterbox, 16 x 16.
SCRATCH = np.array([[32], [32], [16], [16], [0.9], [0.0]], np.float32)
REPORT_KEYS = {"image", "sha256", "width", "height", "model", "version", "data_version", "task",
               "inspected_at", "defects"}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Three readable photos (one in a subfolder), a truncated JPEG and text named .png."""
    root = tmp_path / "line-3"
    (root / "shift-2").mkdir(parents=True)
    photo = np.full((64, 96, 3), 200, np.uint8)
    for name in ("a.jpg", "b.png", "shift-2/c.jpg"):
        cv2.imwrite(str(root / name), photo)
    (root / "truncated.jpg").write_bytes((root / "a.jpg").read_bytes()[:200])
    (root / "notes.png").write_text("not an image")
    (root / "readme.txt").write_text("not inspected: no image suffix")
    return root


@pytest.fixture()
def detector(tmp_path: Path) -> InspectingModel:
    graph = detector_graph(tmp_path / "detector.onnx", SCRATCH)
    return InspectingModel(OnnxDetector.load(graph, sha256(graph), "defect-detector", 4),
                           data_version="d-42")


def test_each_readable_image_gets_a_report_and_each_unreadable_one_a_reason(
        folder: Path, detector: InspectingModel, tmp_path: Path) -> None:
    out = tmp_path / "out"

    run = inspect_folder(detector, folder, out, unreadable={}, batch_size=2)

    assert sorted(row["image"] for row in run.rows) == ["a.jpg", "b.png", "shift-2/c.jpg"]
    assert sorted(name for name, _ in run.unreadable) == ["notes.png", "truncated.jpg"]
    assert all(why for _, why in run.unreadable)
    assert len(run.rows) + len(run.unreadable) == len(find_images(folder, {}))
    report = json.loads((out / REPORTS / "shift-2" / "c.jpg.json").read_text())
    assert set(report) == REPORT_KEYS
    assert report["model"] == "defect-detector" and report["version"] == 4
    assert report["data_version"] == "d-42" and report["task"] == "detect"
    assert report["sha256"] == sha256(folder / "shift-2" / "c.jpg")
    assert (report["width"], report["height"]) == (96, 64)
    # the 64-pixel letterbox of a 96 x 64 photo scales by 2/3 with 10 rows of padding above:
    # (32 - 8 - 10) * 1.5 = 21
    assert report["defects"] == [{"class": "scratch", "box": [36.0, 21.0, 60.0, 45.0],
                                  "confidence": 0.9}]
    assert not (out / REPORTS / "truncated.jpg.json").exists()


def test_the_summary_lists_every_image_counts_classes_and_names_the_unreadable(
        folder: Path, detector: InspectingModel, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = inspect_folder(detector, folder, out, unreadable={"lost.jpg": "AccessDenied"})

    figures = write_summary(run, out)

    with (out / SUMMARY_CSV).open() as table:
        rows = list(csv.DictReader(table))
    assert [row["image"] for row in rows] == ["a.jpg", "b.png", "shift-2/c.jpg"]
    assert {row["defects"] for row in rows} == {"1"} and {row["classes"] for row in rows} == {
        "scratch"}
    assert figures["inspected"] == 3 and figures["with_defects"] == 3
    assert figures["per_class"] == {"scratch": 3}
    assert [u["image"] for u in figures["unreadable"]] == ["lost.jpg", "notes.png",
                                                          "truncated.jpg"]
    page = (out / SUMMARY_HTML).read_text()
    assert page.count("<img src=\"data:image/jpeg;base64,") == 3
    assert "AccessDenied" in page and "truncated.jpg" in page


def test_a_folder_without_images_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="holds no image"):
        find_images(tmp_path, {})
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        find_images(tmp_path / "missing", {})


def test_the_sheet_leads_with_the_lowest_grades_then_the_most_defects() -> None:
    rows = [{"image": "few", "defects": 1, "worst": 0.9, "grade": None},
            {"image": "many", "defects": 3, "worst": 0.4, "grade": None},
            {"image": "many-worse", "defects": 3, "worst": 0.8, "grade": None}]
    assert [r["image"] for r in most_defective(rows, 2)] == ["many-worse", "many"]
    graded = [{"image": "nine", "defects": 0, "worst": 0.0, "grade": 9},
              {"image": "four", "defects": 2, "worst": 0.5, "grade": 4}]
    assert [r["image"] for r in most_defective(graded, 5)] == ["four", "nine"]


def test_a_grader_reports_the_grade_and_the_defects_it_read(tmp_path: Path) -> None:
    synthesize_batch(tmp_path / "cards", n=3, seed=5, camera="studio", workers=1)
    graph = untrained_grader_graph(tmp_path / "grader.onnx", size=(96, 128))
    grader = InspectingModel(OnnxGrader.load(graph, sha256(graph), "card-grader", 2))

    run = inspect_folder(grader, tmp_path / "cards" / "images", tmp_path / "out", {})

    assert len(run.rows) == 3 and run.unreadable == []
    report = json.loads(next((tmp_path / "out" / REPORTS).glob("*.json")).read_text())
    assert report["task"] == "grade" and 1 <= report["grade"] <= 10
    assert set(report["subgrades"]) == {"centering", "corners", "edges", "surface"}
    assert report["centering"] is not None and isinstance(report["defects"], list)
    assert "graded_defects" not in report
