"""The two sides monitoring compares, as frames of the same columns: the reference (images the
champion was trained on, graded by the champion) and a window of served photos.

    reference = grade_reference(held_out_items(manifest, 1000, root), grader)
    window = served_window(log.window(since, until, model="card-grader", roles=["champion"]),
                           log.expert_grades())

Columns of both: the image properties (PROPERTY_NAMES), `grade`, `set_size` (conformal set),
`needs_review`, `embedding` (the backbone's pooled features); the window adds `request_id`,
`time` and `expert_grade` (NaN where no expert has graded the photo).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import pandas as pd

from components.vision.models import GradeAnswer, GraderInput
from components.vision.properties import PROPERTY_NAMES, image_properties

REFERENCE_BATCH = 16


class Grader(Protocol):
    """What grading the reference needs of a grader (the vision core's OnnxGrader)."""

    def prepare(self, bgr: np.ndarray) -> GraderInput: ...
    def grade(self, inputs: list[GraderInput]) -> list[GradeAnswer]: ...


class ReferenceError(ValueError):
    """The reference cannot be built: no images, or images that cannot be read."""


def held_out_items(manifest: pd.DataFrame, count: int, root: Path) -> list[Path]:
    """The image files of the held-out items (splits training never read) among the `count`
    newest items of a dataset's manifest (rows are appended in ingest order): what production
    looked like when the champion's newest data was labelled. Held out, because a model answers
    the photos it was trained on more confidently than any new photo: a reference of those made
    a day of the same camera's traffic drift in its grades and set sizes (p < 0.004)."""
    newest = manifest.tail(count)
    held_out = newest[newest["split"] != "train"]
    if held_out.empty:
        raise ReferenceError(f"the dataset at {root} has no held-out items among its {count} "
                             "newest to form a reference")
    return [root / path for path in held_out["image_path"]]


def grade_reference(images: list[Path], grader: Grader,
                    progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Properties, the grader's answers and embeddings for each image, in batches."""
    rows: list[dict[str, object]] = []
    for start in range(0, len(images), REFERENCE_BATCH):
        photos = [_read(path) for path in images[start:start + REFERENCE_BATCH]]
        answers = grader.grade([grader.prepare(photo) for photo in photos])
        rows += [{**image_properties(photo), **_answer_columns(answer)}
                 for photo, answer in zip(photos, answers, strict=True)]
        if progress:
            progress(len(rows), len(images))
    return pd.DataFrame(rows, columns=[*PROPERTY_NAMES, *_ANSWER_COLUMNS])


def cached_reference(path: Path, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """The reference stored at `path`; built by `build()` and stored there when missing (written
    to a temporary file first, so a crash never leaves a half reference to be read later)."""
    if path.is_file():
        return pd.read_pickle(path)
    frame = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    frame.to_pickle(partial)
    partial.replace(path)
    return frame


def served_window(predictions: pd.DataFrame, expert_grades: pd.DataFrame) -> pd.DataFrame:
    """The rows of a prediction-log window that the judged model answered without error, in
    the reference's columns, with each photo's expert grade where one arrived."""
    answered = predictions[predictions["error"].isna() & predictions["grade"].notna()]
    frame = answered[["request_id", "time", *PROPERTY_NAMES, "grade", "needs_review",
                      "embedding"]].copy()
    frame["grade"] = frame["grade"].astype(int)
    frame["needs_review"] = frame["needs_review"].astype(bool)
    frame["set_size"] = (answered["grade_set_high"] - answered["grade_set_low"] + 1).astype(int)
    experts = expert_grades.set_index("request_id")["grade"]
    frame["expert_grade"] = frame["request_id"].map(experts).astype(float)
    return frame.reset_index(drop=True)


_ANSWER_COLUMNS = ("grade", "set_size", "needs_review", "embedding")


def _answer_columns(answer: GradeAnswer) -> dict[str, object]:
    return {"grade": answer.grade, "set_size": len(answer.grade_set),
            "needs_review": answer.needs_review, "embedding": answer.embedding}


def _read(path: Path) -> np.ndarray:
    photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if photo is None:
        raise ReferenceError(f"reference image {path} cannot be read")
    return photo
