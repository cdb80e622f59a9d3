"""Parameters of the ingest flow, read from the `ingest` section of params.yaml, and the label
reference a batch is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.ingest.duplicates import MIN_SIMILARITY
from components.ingest.images import ImageLimits
from components.ingest.tasks import TaskKind


@dataclass(frozen=True)
class SuiteLimits:
    """Bounds of an acceptable batch (params.yaml `ingest.suite`)."""

    max_quarantined_share: float = 0.2
    max_duplicate_share: float = 0.1
    brightness: tuple[float, float] = (20.0, 235.0)
    min_contrast: float = 8.0
    min_sharpness: float = 20.0
    aspect: tuple[float, float] = (0.25, 4.0)
    # Share of images that must fall inside the property ranges above.
    mostly: float = 0.95
    # The label distribution fails when a G-test rejects it at this confidence AND its KL
    # divergence from the reference exceeds the floor (huge batches reject trivial shifts).
    label_confidence: float = 0.999
    label_kl_floor: float = 0.05


class IngestParams(BaseModel):
    """Every knob of ingest; see params.yaml for the values in use and why."""

    model_config = ConfigDict(extra="forbid")

    max_pixels: int = Field(50_000_000, description="Refuse images with more pixels, unread")
    min_width: int = Field(32, description="Smallest acceptable image width in pixels")
    min_height: int = Field(32, description="Smallest acceptable image height in pixels")
    near_duplicate_bits: int = Field(
        20, description="Perceptual hashes this close (of 189 bits) may be the same photo")
    near_duplicate_similarity: float = Field(
        MIN_SIMILARITY, description="... and are when their grey thumbnails correlate this much")
    reference: str | None = Field(
        "data/reference/manifest.csv",
        description="Label reference of a dataset's first batch, relative to the project root")
    workers: int | None = Field(None, description="Processes for image checks; None: all cores")
    suite: SuiteLimits = Field(default_factory=SuiteLimits, description="Batch suite bounds")

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(self.max_pixels, self.min_width, self.min_height)


def reference_labels(
    kind: TaskKind, accepted: pd.DataFrame, fallback: Path | None
) -> pd.Series | None:
    """The label values a new batch is compared with: everything accepted so far, or for a
    dataset's first batch the reference manifest (grades of the DVC reference set), if any."""
    column = kind.label_column
    if column is None:
        return None
    if column in accepted.columns and len(accepted):
        return accepted[column]
    if fallback is not None and fallback.is_file():
        reference = pd.read_csv(fallback)
        if column in reference.columns:
            return reference[column]
    return None
