"""Task types as small plugins: what labels a grade, detect, segment or classify batch must carry,
and how each item's labels are checked and normalised to typed values.

    kind = TASKS["grade"]
    batch.refusals += kind.refusals(batch)
    kind.check_labels(item, known_classes)

These are ingest's task plugins: flows find one with `vision.tasks.plugin_for(TASKS, ...)` and
never branch on a task's name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from components.ingest.formats import MaskNeed
from components.ingest.model import Reason, SourceBatch, SourceItem
from components.splits import SPLIT_NAMES
from components.vision.labels import MIN_OUTLINE_POINTS

GRADE_RANGE = (1, 10)
SUBGRADES = ("centering", "corners", "edges", "surface")
CENTERING_SHARES = ("centering_lr", "centering_tb")
GRADER_COLUMN = re.compile(r"^grader_\w+$")
# A box may overshoot its image by this share of the side (rounding in labeling tools).
BOX_TOLERANCE = 0.002


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return str(value).strip().lower() in ("", "nan", "na", "null", "none")


def parse_grade(item: SourceItem, column: str, low: int = GRADE_RANGE[0],
                high: int = GRADE_RANGE[1]) -> int | None:
    """The whole number in `column` of the item's labels, or None with the problem recorded."""
    value = item.labels.get(column)
    if _is_missing(value):
        item.reject(Reason.MISSING_LABEL, f"{item.item_id}: {column} is empty")
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        item.reject(Reason.BAD_LABEL, f"{item.item_id}: {column}={value!r} is not a number")
        return None
    if not number.is_integer():
        item.reject(Reason.BAD_LABEL, f"{item.item_id}: {column}={value!r} is not a whole grade")
        return None
    if not low <= number <= high:
        item.reject(Reason.LABEL_OUT_OF_RANGE,
                    f"{item.item_id}: {column}={value!r} is outside {low}..{high}")
        return None
    return int(number)


def _parse_share(item: SourceItem, column: str) -> float | None:
    value = item.labels.get(column)
    try:
        share = float(str(value))
    except ValueError:
        share = math.nan
    if not 0 <= share <= 100:  # also false for NaN
        item.reject(Reason.BAD_LABEL, f"{item.item_id}: {column}={value!r} is not a share 0..100")
        return None
    return share


def _check_split(item: SourceItem) -> None:
    split = item.labels.get("split")
    if not _is_missing(split) and split not in SPLIT_NAMES:
        item.reject(Reason.BAD_LABEL,
                    f"{item.item_id}: split={split!r} is not one of {', '.join(SPLIT_NAMES)}")


@dataclass(frozen=True)
class TaskKind:
    """What one task type needs of a batch; subclasses add their own label rules."""

    name: ClassVar[str]
    needs_boxes: ClassVar[bool] = False
    masks: ClassVar[MaskNeed] = "ignored"
    # The label whose distribution the batch suite compares with the reference, if any, and
    # for an ordinal label its whole range (otherwise the label names one of the classes).
    label_column: ClassVar[str | None] = None
    label_range: ClassVar[tuple[int, int] | None] = None

    def refusals(self, batch: SourceBatch) -> list[str]:
        """Problems that refuse the batch as a whole (a column every item needs is missing)."""
        return []

    def check_labels(self, item: SourceItem, known_classes: tuple[str, ...]) -> None:
        """Record the item's label problems and replace raw label text by typed values."""
        _check_split(item)


def _inside_image(x: float, y: float) -> bool:
    return -BOX_TOLERANCE <= x <= 1 + BOX_TOLERANCE and -BOX_TOLERANCE <= y <= 1 + BOX_TOLERANCE


def check_boxes(item: SourceItem, known_classes: tuple[str, ...]) -> None:
    """Every box of a known class and inside its image."""
    for box in item.boxes or ():
        if box.class_name not in known_classes:
            item.reject(Reason.UNKNOWN_CLASS, f"{item.item_id}: box class "
                        f"{box.class_name!r} is not one of {', '.join(known_classes)}")
        elif not (box.x0 < box.x1 and box.y0 < box.y1 and _inside_image(box.x0, box.y0)
                  and _inside_image(box.x1, box.y1)):
            item.reject(Reason.BOX_OUTSIDE_IMAGE, f"{item.item_id}: {box.class_name} box "
                        f"({box.x0:.3f}, {box.y0:.3f})-({box.x1:.3f}, {box.y1:.3f}) is not "
                        "a box inside the image (fractions 0..1)")


def check_masks(item: SourceItem, required: bool) -> None:
    """Every region's mask outline (where it has one, or always when `required`) inside its
    image, and its severity, where given, within 0..1."""
    for box in item.boxes or ():
        if len(box.outline) < MIN_OUTLINE_POINTS:
            if required:
                item.reject(Reason.MISSING_MASK, f"{item.item_id}: the {box.class_name} region "
                            "has a box but no mask outline (3 points or more)")
        elif not all(_inside_image(x, y) for x, y in box.outline):
            x, y = next(p for p in box.outline if not _inside_image(*p))
            item.reject(Reason.MASK_OUTSIDE_IMAGE, f"{item.item_id}: the {box.class_name} "
                        f"mask has the point ({x:.3f}, {y:.3f}) outside the image (0..1)")
        if box.severity is not None and not 0 <= box.severity <= 1:  # NaN fails too
            item.reject(Reason.LABEL_OUT_OF_RANGE, f"{item.item_id}: the {box.class_name} "
                        f"region has severity {box.severity}, outside 0..1")


@dataclass(frozen=True)
class GradeTask(TaskKind):
    """Ordinal grades 1..10 with the experts' own grades beside the consensus; the defects'
    masks and severities are kept where the batch has them (the grader's severity maps learn
    where each defect lies from them)."""

    name: ClassVar[str] = "grade"
    label_column: ClassVar[str | None] = "grade"
    label_range: ClassVar[tuple[int, int] | None] = GRADE_RANGE
    masks: ClassVar[MaskNeed] = "optional"

    def refusals(self, batch: SourceBatch) -> list[str]:
        if batch.format != "manifest":
            return [f"a grade batch needs a manifest.csv with grades; this is a {batch.format} "
                    "batch (use --task detect or classify)"]
        problems = ["manifest.csv has no 'grade' column"] if "grade" not in batch.columns else []
        if not any(GRADER_COLUMN.match(column) for column in batch.columns):
            problems.append("manifest.csv has no grader_* column: the grade task needs each "
                            "expert's own grade to measure agreement and calibration")
        return problems

    def check_labels(self, item: SourceItem, known_classes: tuple[str, ...]) -> None:
        super().check_labels(item, known_classes)
        graders = [c for c in item.labels if GRADER_COLUMN.match(c)]
        for column in ("grade", *graders, *(s for s in SUBGRADES if s in item.labels)):
            grade = parse_grade(item, column)
            if grade is not None:
                item.labels[column] = grade
        for column in CENTERING_SHARES:
            if column in item.labels and not _is_missing(item.labels[column]):
                share = _parse_share(item, column)
                if share is not None:
                    item.labels[column] = share
        check_boxes(item, known_classes)
        check_masks(item, required=False)


@dataclass(frozen=True)
class DetectTask(TaskKind):
    """Boxes of known classes inside their image."""

    name: ClassVar[str] = "detect"
    needs_boxes: ClassVar[bool] = True

    def refusals(self, batch: SourceBatch) -> list[str]:
        return [] if batch.classes else ["the batch names no classes for its boxes"]

    def check_labels(self, item: SourceItem, known_classes: tuple[str, ...]) -> None:
        super().check_labels(item, known_classes)
        check_boxes(item, known_classes)


@dataclass(frozen=True)
class SegmentTask(DetectTask):
    """Regions of known classes with a pixel mask (an outline) inside their image and, where
    the labels give one, a severity 0..1: what a defect segmenter and the grader's severity
    maps learn from."""

    name: ClassVar[str] = "segment"
    masks: ClassVar[MaskNeed] = "required"

    def check_labels(self, item: SourceItem, known_classes: tuple[str, ...]) -> None:
        super().check_labels(item, known_classes)
        check_masks(item, required=True)


@dataclass(frozen=True)
class ClassifyTask(TaskKind):
    """One class label per image, from a known set once the dataset has one."""

    name: ClassVar[str] = "classify"
    label_column: ClassVar[str | None] = "label"

    def refusals(self, batch: SourceBatch) -> list[str]:
        if batch.format == "manifest" and "label" not in batch.columns:
            return ["manifest.csv has no 'label' column with each image's class"]
        return []

    def check_labels(self, item: SourceItem, known_classes: tuple[str, ...]) -> None:
        super().check_labels(item, known_classes)
        label = item.labels.get("label")
        if _is_missing(label):
            item.reject(Reason.MISSING_LABEL, f"{item.item_id}: label is empty")
        elif known_classes and str(label) not in known_classes:
            item.reject(Reason.UNKNOWN_CLASS, f"{item.item_id}: label {label!r} is not one of "
                        f"the dataset's classes {', '.join(known_classes)}")


TASKS: dict[str, TaskKind] = {kind.name: kind for kind in (GradeTask(), DetectTask(),
                                                          SegmentTask(), ClassifyTask())}
