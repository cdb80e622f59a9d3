"""The vocabulary of ingest: items as a source describes them, what a check found, and why an
item was rejected.

Every rejection has one `Reason`, a short stable name that the summary counts and the quarantine
folder is organised by, and a detail sentence naming the item and the rule it broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Reason(StrEnum):
    """Why an item was quarantined: one name per rule, so counts per reason mean something."""

    UNSAFE_PATH = "unsafe_path"
    MISSING_IMAGE = "missing_image"
    UNREADABLE_SOURCE = "unreadable_source"
    NOT_IN_MANIFEST = "not_in_manifest"
    EMPTY_FILE = "empty_file"
    NOT_AN_IMAGE = "not_an_image"
    FORMAT_MISMATCH = "format_mismatch"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_SMALL = "too_small"
    CORRUPT_IMAGE = "corrupt_image"
    MISSING_LABEL = "missing_label"
    BAD_LABEL = "bad_label"
    LABEL_OUT_OF_RANGE = "label_out_of_range"
    UNKNOWN_CLASS = "unknown_class"
    BOX_OUTSIDE_IMAGE = "box_outside_image"
    MISSING_MASK = "missing_mask"
    MASK_OUTSIDE_IMAGE = "mask_outside_image"
    DUPLICATE_ITEM_ID = "duplicate_item_id"
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    ALREADY_ACCEPTED = "already_accepted"
    BATCH_REFUSED = "batch_refused"
    BATCH_FAILED_SUITE = "batch_failed_suite"


class IngestError(ValueError):
    """A source cannot be read as any batch format (no manifest, bad JSON, unknown bucket)."""


@dataclass(frozen=True)
class Problem:
    """One broken rule of one item."""

    reason: Reason
    detail: str


@dataclass(frozen=True)
class Box:
    """A labeled box in fractions of the image size (0..1), corners (x0, y0) and (x1, y1).

    A segmentation label also has the region's `outline` (a polygon, x y fractions) and, where
    the labels say, its defect's `severity` (0..1)."""

    class_name: str
    x0: float
    y0: float
    x1: float
    y1: float
    outline: tuple[tuple[float, float], ...] = ()
    severity: float | None = None


@dataclass
class SourceItem:
    """One item as its source describes it, before any check: `image` is the path the source
    gives, relative to the batch root, and `path` that file once known to lie inside the batch
    (None for a path that leaves it); `labels` the label fields of its manifest row or file."""

    item_id: str
    image: str
    labels: dict[str, object] = field(default_factory=dict)
    boxes: list[Box] | None = None
    problems: list[Problem] = field(default_factory=list)
    path: Path | None = None

    def reject(self, reason: Reason, detail: str) -> None:
        self.problems.append(Problem(reason, detail))

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class SourceBatch:
    """A batch read from a source folder in one of the formats; `refusals` are problems of the
    batch as a whole (a required column missing), which quarantine every item; `columns` are the
    manifest's columns where the format has a manifest."""

    root: Path
    format: str
    items: list[SourceItem]
    classes: tuple[str, ...] = ()
    refusals: list[str] = field(default_factory=list)
    columns: tuple[str, ...] = ()
