"""Quarantine: every rejected item is copied, with a reason file, where a person can look at it.

    <quarantine_dir>/<dataset>/<batch_id>/<reason>/<name>.<ext>          the file as received
    <quarantine_dir>/<dataset>/<batch_id>/<reason>/<name>.reason.json    why, every problem
    <quarantine_dir>/<dataset>/<batch_id>/quarantine.csv                 one row per item

A file whose path leaves the batch folder is never copied (that is how `../../etc/passwd` would
leak); its reason file says so.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from components.ingest.formats import inside
from components.ingest.model import Problem, SourceItem

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(position: int, item: SourceItem) -> str:
    """A readable, filesystem-safe name for the item, unique by its position in the batch (two
    rows may share an item_id: that is one of the reasons to be here)."""
    readable = _UNSAFE_NAME.sub("_", item.item_id).strip("._")[:80] or "item"
    return f"{position:06d}-{readable}"


def quarantine_items(
    folder: Path, batch_root: Path, rejected: list[tuple[SourceItem, Problem]]
) -> dict[str, int]:
    """Copy each rejected item under `folder` by its reason and return counts per reason.
    A folder left by an earlier attempt at the same batch is replaced."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rows = []
    for position, (item, reason) in enumerate(rejected):
        target = folder / reason.reason.value
        target.mkdir(exist_ok=True)
        name = _file_name(position, item)
        source = inside(batch_root, item.image)
        copied = None
        if source is not None and source.is_file():
            copied = f"{name}{source.suffix}"
            shutil.copyfile(source, target / copied)
        record = {"item_id": item.item_id, "image": item.image, "copied_as": copied,
                  "reason": reason.reason.value, "detail": reason.detail,
                  "problems": [{**asdict(p), "reason": p.reason.value} for p in item.problems],
                  "labels": {k: str(v) for k, v in item.labels.items()}}
        (target / f"{name}.reason.json").write_text(json.dumps(record, indent=2) + "\n")
        rows.append({"item_id": item.item_id, "image": item.image, "reason": reason.reason.value,
                     "detail": reason.detail})
    with (folder / "quarantine.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=("item_id", "image", "reason", "detail"))
        writer.writeheader()
        writer.writerows(rows)
    return dict(sorted(Counter(reason.reason.value for _, reason in rejected).items()))
