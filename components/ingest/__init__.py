"""Ingest: read a labeled batch in any supported format, check every image and label, validate
the batch with Great Expectations, quarantine what fails with reasons, and version the rest
with DVC. Pure components; the Prefect flow `ingest` (flows/ingest.py) composes them. The
batch suite (`components.ingest.suite`) is imported on its own: Great Expectations is slow to
load, and nothing else here needs it."""

from components.ingest.checks import AcceptedIndex, CheckedBatch, check_batch
from components.ingest.formats import detect_format, read_batch
from components.ingest.images import ImageFacts, ImageLimits, check_image, check_images
from components.ingest.model import IngestError, Problem, Reason, SourceBatch, SourceItem
from components.ingest.params import IngestParams, SuiteLimits, reference_labels
from components.ingest.quarantine import quarantine_items
from components.ingest.store import DatasetStore, batch_fingerprint
from components.ingest.tasks import TASKS, TaskKind
from components.ingest.versioning import DataRepo, VersioningError

__all__ = [
    "TASKS", "AcceptedIndex", "CheckedBatch", "DataRepo", "DatasetStore", "ImageFacts",
    "ImageLimits", "IngestError", "IngestParams", "Problem", "Reason", "SourceBatch",
    "SourceItem", "SuiteLimits", "TaskKind", "VersioningError",
    "batch_fingerprint", "check_batch", "check_image", "check_images", "detect_format",
    "quarantine_items", "read_batch", "reference_labels",
]
