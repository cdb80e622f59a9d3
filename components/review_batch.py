"""Reviewed photos as the next labeled batch: every queued answer whose expert panel reached a
consensus becomes an item of a manifest batch, with where it came from, for ingest's checks.

    exports = ReviewExports(queue, settings.thumbnails_dir)
    batch = exports.export(inbox / "reviewed-20261206T010000", now, min_items=50)
    batch.items, batch.test_items, batch.skipped     # 180, 9, {"no large photo kept": 3}

An item is the large copy the service kept for review (the photo the experts graded); its
`grade` is the panel's consensus (median, rounded half up), `grader_1..grader_<panel>` the
first grades given (the seats a human bar is measured on), `experts` every expert's grade by
name, and the rest its lineage: request and correlation id, when it was served, by which model
version, with which grade, and why it was queued. A subgrade column is written when the experts
gave that subgrade for every item (ingest needs every cell of a column it reads).

Items of the audit share go to the `test` split and never to training: they are production's
one unbiased sample (the others were queued because the model was unsure, a release
disagreed, or the photo drifted). The others fall in train, val or calibration by a hash of
their id. An answer is exported once (a ledger table beside the queue), and a batch is written
whole or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from components.predlog import create_tables, open_database
from components.reviews import AUDIT, ReviewQueue, SettledItem
from components.splits import stable_split
from components.thumbnails import read_review_copy
from components.vision.agreement import grading_metrics
from components.vision.rubric import SUBGRADE_WEIGHTS

SUBGRADES = tuple(SUBGRADE_WEIGHTS)  # the rubric's subgrades: the columns ingest reads

NO_PHOTO = "no large photo kept"  # the service kept only a thumbnail (queued after serving)
LINEAGE = "lineage.json"


@dataclass(frozen=True)
class ReviewedBatch:
    """What an export did: the batch written (None when too few items were ready), its items,
    how many of them are the audit share's (its test split), why others were left out, and
    how far the answers served for its items agreed with the experts' consensus (QWK)."""

    folder: Path | None
    items: int
    test_items: int
    skipped: dict[str, int] = field(default_factory=dict)
    answered_qwk: float | None = None  # the served answers against the consensus

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "folder": str(self.folder) if self.folder else None}


def _exports(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "review_exports", metadata,
        sa.Column("request_id", sa.String(128), primary_key=True),  # exported once
        sa.Column("batch", sa.String(256), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    )


def since_time(text: str | None) -> datetime | None:
    """`--since` as a time: ISO with a UTC offset (a naive time would be read in the machine's
    zone and silently shift the window), or None."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"since={text!r} needs a UTC offset, e.g. 2026-12-06T00:00:00+00:00")
    return moment


def item_id(request_id: str) -> str:
    """The batch item of a served answer: named by a hash, so no request id becomes a path."""
    return f"review-{hashlib.sha256(request_id.encode()).hexdigest()[:16]}"


class ReviewExports:
    """The settled items of `queue` not exported yet, written as labeled batches; the photos
    are the review copies under `thumbnails` (the service's folder)."""

    def __init__(self, queue: ReviewQueue, thumbnails: Path) -> None:
        self.queue, self.thumbnails = queue, thumbnails
        self._engine = open_database(queue.log.uri)
        metadata = sa.MetaData()
        self._exports = _exports(metadata)
        create_tables(self._engine, metadata)

    def exported(self) -> dict[str, str]:
        """The batch each exported answer went to, by request id."""
        with self._engine.connect() as connection:
            return dict(connection.execute(sa.select(self._exports.c.request_id,
                                                     self._exports.c.batch)).all())

    def ready(self, now: datetime, since: datetime | None = None
              ) -> tuple[list[tuple[SettledItem, Path]], dict[str, int]]:
        """The settled items served since `since` that no batch holds yet, each with its
        photo, and how many others were left out and why."""
        exported, skipped = self.exported(), {}
        chosen = []
        for settled in self.queue.settled(now):
            if settled.item.request_id in exported or (
                    since is not None and settled.item.time < since):
                continue
            kept = read_review_copy(self.thumbnails, settled.item.request_id)
            if kept is None:
                skipped[NO_PHOTO] = skipped.get(NO_PHOTO, 0) + 1
                continue
            chosen.append((settled, kept[0]))
        return chosen, skipped

    def export(self, folder: Path, now: datetime, since: datetime | None = None,
               min_items: int = 1) -> ReviewedBatch:
        """Write the ready items (`ready`) as a manifest batch at `folder` when there are at
        least `min_items`, and record them as exported; nothing is written otherwise."""
        if folder.exists():
            raise FileExistsError(f"{folder} exists: a batch is written once, under a new name")
        chosen, skipped = self.ready(now, since)
        if len(chosen) < max(min_items, 1):
            return ReviewedBatch(None, len(chosen), 0, skipped)
        rows = manifest_rows([settled for settled, _ in chosen], self.queue.params.panel)
        partial = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            (partial / "images").mkdir(parents=True)
            for row, (_, photo) in zip(rows, chosen, strict=True):
                shutil.copyfile(photo, partial / str(row["image_path"]))
            _write_manifest(partial / "manifest.csv", rows)
            test_items = sum(row["split"] == "test" for row in rows)
            (partial / LINEAGE).write_text(json.dumps({
                "source": "review queue",
                "prediction_log": sa.engine.make_url(self.queue.log.uri).render_as_string(
                    hide_password=True),
                "exported_at": now.isoformat(), "since": since.isoformat() if since else None,
                "items": len(rows), "test_items": test_items, "skipped": skipped,
                "requests": [row["request_id"] for row in rows]}, indent=2))
            with self._engine.begin() as connection:  # the rename fails: nothing is recorded
                connection.execute(self._exports.insert(), [
                    {"request_id": row["request_id"], "batch": folder.name, "time": now}
                    for row in rows])
                os.replace(partial, folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        agreement = grading_metrics([row["grade"] for row in rows],
                                    [row["answered_grade"] for row in rows])
        return ReviewedBatch(folder, len(rows), test_items, skipped,
                             round(agreement["qwk"], 3))


def manifest_rows(items: list[SettledItem], panel: int) -> list[dict[str, object]]:
    """One manifest row per settled item (see the module docstring)."""
    rows = []
    for settled in items:
        answer, grades = settled.answer, settled.panel
        name = item_id(settled.item.request_id)
        rows.append({
            "item_id": name, "image_path": f"images/{name}.jpg", "grade": settled.consensus,
            **{f"grader_{seat}": int(grade)
               for seat, grade in enumerate(grades["grade"].iloc[:panel], start=1)},
            **_subgrade_consensus(grades),
            "camera": answer.camera if isinstance(answer.camera, str) else "",
            "experts": " ".join(f"{grader}={int(grade)}" for grader, grade
                                in zip(grades["grader"], grades["grade"], strict=True)),
            "request_id": settled.item.request_id,
            "correlation_id": answer.correlation_id
            if isinstance(answer.correlation_id, str) else "",
            "served_at": pd.Timestamp(answer.time).isoformat(),
            "served_by": f"{answer.model} v{answer.version}",
            "answered_grade": int(answer.grade), "reasons": " ".join(settled.item.reasons),
            "split": "test" if AUDIT in settled.item.reasons
            else stable_split(name, leave_out=("test",))})
    whole = [aspect for aspect in SUBGRADES if all(aspect in row for row in rows)]
    return [{key: value for key, value in row.items()
             if key not in SUBGRADES or key in whole} for row in rows]


def _subgrade_consensus(grades: pd.DataFrame) -> dict[str, int]:
    """Each subgrade's median over the experts who gave it, rounded half up."""
    given: dict[str, list[int]] = {}
    for subgrades in grades["subgrades"]:
        for aspect, value in (subgrades if isinstance(subgrades, dict) else {}).items():
            given.setdefault(aspect, []).append(int(value))
    return {aspect: int(np.floor(np.median(values) + 0.5)) for aspect, values in given.items()
            if aspect in SUBGRADES}


def _write_manifest(path: Path, rows: list[dict[str, object]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
