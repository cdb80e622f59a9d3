"""Check a batch item by item: identity, path, image, labels, duplicates; then say per item
whether it goes on to the batch suite or to quarantine, and why.

    checked = check_batch(batch, TASKS["grade"], accepted, limits, max_bits=20)
    checked.candidates   # (item, facts) pairs that passed every item check
    checked.rejected     # (item, primary problem) pairs, every other item

Each item keeps every problem found (its reason file lists them); its first problem is the one
it is counted under. A batch with refusals (a missing column) rejects every item.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from components.ingest.duplicates import MIN_SIMILARITY, Fingerprints, find_duplicates
from components.ingest.images import ImageFacts, ImageLimits, check_images
from components.ingest.model import Problem, Reason, SourceBatch, SourceItem
from components.ingest.tasks import TaskKind

IMAGE_PROPERTIES = ("width", "height", "aspect", "brightness", "contrast", "sharpness")


@dataclass(frozen=True)
class AcceptedIndex:
    """What the dataset already holds, for identity and duplicate checks across batches."""

    item_ids: frozenset[str] = frozenset()
    fingerprints: Fingerprints = field(default_factory=lambda: Fingerprints([], [], []))
    classes: tuple[str, ...] = ()


@dataclass
class CheckedBatch:
    """Items with their image facts (None where the image was never checked) and refusals."""

    batch: SourceBatch
    facts: list[ImageFacts | None]
    refusals: list[str]
    classes: tuple[str, ...]

    @property
    def received(self) -> int:
        return len(self.batch.items)

    @property
    def candidates(self) -> list[tuple[SourceItem, ImageFacts]]:
        if self.refusals:
            return []
        return [(item, facts) for item, facts in zip(self.batch.items, self.facts, strict=True)
                if item.ok and facts is not None]

    @property
    def rejected(self) -> list[tuple[SourceItem, Problem]]:
        if self.refusals:
            refusal = Problem(Reason.BATCH_REFUSED, "; ".join(self.refusals))
            return [(item, refusal) for item in self.batch.items]
        return [(item, item.problems[0]) for item in self.batch.items if not item.ok]

    def reject_candidates(self, problem: Problem) -> None:
        """Send every remaining candidate to quarantine with `problem`: the batch as a whole
        failed (its suite), so none of it is accepted."""
        for item, _ in self.candidates:
            item.problems.append(problem)

    def items_table(self) -> pd.DataFrame:
        """One row per received item: whether it was quarantined, and why (for the suite's
        batch-level shares)."""
        reasons = {id(item): problem.reason.value for item, problem in self.rejected}
        return pd.DataFrame({
            "item_id": [item.item_id for item in self.batch.items],
            "reason": [reasons.get(id(item), "") for item in self.batch.items],
            "quarantined": [id(item) in reasons for item in self.batch.items],
        })

    def candidates_table(self) -> pd.DataFrame:
        """One row per candidate: its labels, identity and image properties."""
        rows = [{"item_id": item.item_id, **item.labels, "sha256": facts.sha256,
                 "phash": facts.phash, "n_boxes": len(item.boxes or ()),
                 **{name: getattr(facts, name) for name in IMAGE_PROPERTIES}}
                for item, facts in self.candidates]
        return pd.DataFrame(rows)


def _check_identities(batch: SourceBatch, accepted: AcceptedIndex) -> None:
    seen: set[str] = set()
    for item in batch.items:
        if item.item_id in accepted.item_ids:
            item.reject(Reason.DUPLICATE_ITEM_ID,
                        f"{item.item_id}: an accepted item of the dataset already has this id")
        elif item.item_id in seen:
            item.reject(Reason.DUPLICATE_ITEM_ID,
                        f"{item.item_id}: a second row with the same item_id in this batch")
        seen.add(item.item_id)


def _image_to_check(item: SourceItem, unreadable: dict[str, str]) -> Path | None:
    """The file to check for the item, or None with the problem recorded."""
    path = item.path
    if path is None:
        return None  # formats.read_batch recorded the unsafe path
    fetch_error = unreadable.get(posixpath.normpath(item.image))
    if fetch_error is not None:
        item.reject(Reason.UNREADABLE_SOURCE,
                    f"{item.item_id}: {item.image} could not be fetched: {fetch_error}")
        return None
    if not path.is_file():
        item.reject(Reason.MISSING_IMAGE, f"{item.item_id}: {item.image} does not exist")
        return None
    return path


def check_batch(
    batch: SourceBatch,
    kind: TaskKind,
    accepted: AcceptedIndex,
    limits: ImageLimits,
    max_bits: int,
    unreadable: dict[str, str] | None = None,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    *,
    min_similarity: float = MIN_SIMILARITY,
) -> CheckedBatch:
    """Run every item check on `batch` (in place: problems land on its items) and return it
    with its image facts. `unreadable` maps images a source could not fetch to the error;
    near duplicates are hashes within `max_bits` whose pixels agree to `min_similarity`."""
    refusals = [*batch.refusals, *kind.refusals(batch)]
    classes = accepted.classes or batch.classes
    _check_identities(batch, accepted)
    paths = {position: _image_to_check(item, unreadable or {})
             for position, item in enumerate(batch.items) if item.ok}
    to_check = {position: path for position, path in paths.items() if path is not None}
    checked = check_images(list(to_check.values()), limits, workers, on_progress)
    facts: list[ImageFacts | None] = [None] * len(batch.items)
    for position, image_facts in zip(to_check, checked, strict=True):
        facts[position] = image_facts
        if image_facts.problem is not None:
            batch.items[position].problems.append(image_facts.problem)
    for item in batch.items:
        kind.check_labels(item, classes)
    _check_duplicates(batch, facts, accepted, max_bits, min_similarity)
    return CheckedBatch(batch=batch, facts=facts, refusals=refusals, classes=classes)


def _check_duplicates(batch: SourceBatch, facts: list[ImageFacts | None],
                      accepted: AcceptedIndex, max_bits: int, min_similarity: float) -> None:
    positions = [p for p, item in enumerate(batch.items) if item.ok and facts[p] is not None]
    fingerprints = Fingerprints(
        names=[batch.items[p].item_id for p in positions],
        sha256=[facts[p].sha256 for p in positions],
        phash=[facts[p].phash for p in positions],
        paths=[facts[p].path for p in positions],
    )
    found = find_duplicates(fingerprints, accepted.fingerprints, max_bits, min_similarity)
    for index, problem in found.items():
        batch.items[positions[index]].problems.append(problem)
