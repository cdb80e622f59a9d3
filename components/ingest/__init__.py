"""Ingest: read a labeled batch in any supported format, check every image and label, validate
the batch with Great Expectations, quarantine what fails with reasons, and version the rest
with DVC. Pure components; the Prefect flow `ingest` (flows/ingest.py) composes them."""

from components.ingest.checks import AcceptedIndex, CheckedBatch, check_batch
from components.ingest.formats import detect_format, read_batch
from components.ingest.images import ImageFacts, ImageLimits, check_image, check_images
from components.ingest.model import IngestError, Problem, Reason, SourceBatch, SourceItem
from components.ingest.params import IngestParams, reference_labels
from components.ingest.quarantine import quarantine_items
from components.ingest.store import DatasetStore, batch_fingerprint
from components.ingest.suite import SuiteLimits, SuiteResult, validate_batch
from components.ingest.tasks import TASKS, TaskKind
from components.ingest.versioning import DataRepo, VersioningError

__all__ = [
    "TASKS", "AcceptedIndex", "CheckedBatch", "DataRepo", "DatasetStore", "ImageFacts",
    "ImageLimits", "IngestError", "IngestParams", "Problem", "Reason", "SourceBatch",
    "SourceItem", "SuiteLimits", "SuiteResult", "TaskKind", "VersioningError",
    "batch_fingerprint", "check_batch", "check_image", "check_images", "detect_format",
    "quarantine_items", "read_batch", "reference_labels", "validate_batch",
]
