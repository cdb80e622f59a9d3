"""The two sides monitoring compares: the reference graded by the champion (once, then read from
its cache), and a window of the prediction log in the same columns, with experts' grades joined
where they arrived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from components.monitor.reference import (
    ReferenceError,
    cached_reference,
    grade_reference,
    held_out_items,
    served_window,
)
from components.predlog import PredictionLog, PredictionRecord
from components.vision.models import GradeAnswer, GraderInput
from components.vision.properties import PROPERTY_NAMES


class BrightnessGrader:
    """Grades a photo by its mean grey level; a set of two grades for dark photos."""

    def prepare(self, bgr: np.ndarray) -> GraderInput:
        return GraderInput(bgr, np.zeros(4, np.float32), None, np.eye(3))

    def grade(self, inputs: list[GraderInput]) -> list[GradeAnswer]:
        answers = []
        for item in inputs:
            grade = 1 + int(item.pixels.mean() // 26)
            grade_set = [grade] if grade > 3 else [grade, grade + 1]
            answers.append(GradeAnswer(grade, [0.1] * 10, grade_set, {}, embedding=[grade, 1.0]))
        return answers


def test_the_reference_is_the_newest_held_out_items_graded_by_the_champion(
        tmp_path: Path) -> None:
    rows = []
    for i, (grey, split) in enumerate(((30, "test"), (60, "train"), (90, "val"), (200, "test"))):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((40, 30, 3), grey, np.uint8))
        rows.append({"image_path": f"{i}.png", "split": split})
    images = held_out_items(pd.DataFrame(rows), 3, tmp_path)
    assert images == [tmp_path / "2.png", tmp_path / "3.png"]  # never one training read

    reference = grade_reference(images, BrightnessGrader())

    assert list(reference.columns) == [*PROPERTY_NAMES, "grade", "set_size", "needs_review",
                                       "embedding"]
    assert reference["grade"].tolist() == [4, 8]
    assert reference["set_size"].tolist() == [1, 1]
    assert reference["width"].tolist() == [30, 30]
    assert reference["embedding"].tolist() == [[4, 1.0], [8, 1.0]]


def test_an_empty_dataset_or_an_unreadable_image_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReferenceError, match="no held-out items among its 5 newest"):
        held_out_items(pd.DataFrame({"image_path": ["a.png"], "split": ["train"]}), 5, tmp_path)
    with pytest.raises(ReferenceError, match="missing.png cannot be read"):
        grade_reference([tmp_path / "missing.png"], BrightnessGrader())


def test_the_window_keeps_answered_rows_and_joins_experts_grades(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path}/p.db")
    start = datetime(2026, 11, 23, 4, tzinfo=UTC)
    properties = dict.fromkeys(PROPERTY_NAMES, 1.0)

    def record(request_id: str, minutes: int, grade: int | None, error: str | None = None
               ) -> PredictionRecord:
        return PredictionRecord(
            request_id=request_id, time=start + timedelta(minutes=minutes), model="card-grader",
            version=1, role="champion", answered=True, data_version="d1", grade=grade,
            grade_set_low=grade, grade_set_high=grade + 2 if grade else None,
            needs_review=bool(grade), probabilities=None, subgrades=None, latency_ms=5.0,
            error=error, properties=properties, embedding=[0.5, 0.25] if grade else None)

    log.write([record("a", 1, 7), record("b", 2, None, "non-finite"), record("c", 3, 4)])
    log.record_expert_grade("c", 5, "panel", start + timedelta(minutes=4))

    window = served_window(log.window(start, start + timedelta(hours=1)), log.expert_grades())

    assert window["request_id"].tolist() == ["a", "c"]  # the erring answer is not a photo seen
    assert window["set_size"].tolist() == [3, 3]
    assert window["expert_grade"].isna().tolist() == [True, False]
    assert window.loc[1, "expert_grade"] == 5.0
    assert window["embedding"].tolist() == [[0.5, 0.25], [0.5, 0.25]]  # float16-exact


def test_the_reference_is_graded_once_then_read_back_from_its_cache(tmp_path: Path) -> None:
    built = []

    def build() -> pd.DataFrame:
        built.append(1)
        return pd.DataFrame({"grade": [3, 9], "embedding": [[0.5, 1.0], [0.25, 2.0]]})

    path = tmp_path / "monitor" / "card-grader-3" / "reference-200.pkl"
    first = cached_reference(path, build)
    again = cached_reference(path, build)

    assert len(built) == 1
    pd.testing.assert_frame_equal(again, first)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left


def test_a_reference_that_fails_to_build_leaves_no_cache_behind(tmp_path: Path) -> None:
    def broken() -> pd.DataFrame:
        raise ReferenceError("no held-out items")

    path = tmp_path / "reference-200.pkl"
    with pytest.raises(ReferenceError):
        cached_reference(path, broken)

    assert not path.exists()
