"""Retention: what the platform keeps and for how long, so that a home (or its database) does not
grow without bound.

    params = load_params("retention", RetentionParams)
    old = files_older_than(settings.thumbnails_dir, cutoff(params.thumbnails_days))
    pruned = remove_files("thumbnails", old)         # Pruned("thumbnails", items=812, bytes=...)

Files are judged by their modification time; a folder of one cached model is judged as a whole
and kept while an alias names its version. The prediction log prunes its own rows
(`PredictionLog.prune`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import Field

from components.params import StrictParams


class RetentionParams(StrictParams):
    """The `retention:` section of params.yaml: days each kind of record is kept."""

    prediction_log_days: float = Field(90, gt=0, description="prediction log rows and expert "
                                       "grades; monitoring reads hours, releases days")
    thumbnails_days: float = Field(30, gt=0, description="small copies of served photos")
    reports_days: float = Field(180, gt=0, description="evaluation and drift reports on disk "
                                "(each version's report also stays in MLflow)")
    prefect_results_days: float = Field(30, gt=0, description="persisted flow and task results")
    model_cache_days: float = Field(30, gt=0, description="downloaded models and graphs of "
                                    "versions no alias names any more")


@dataclass(frozen=True)
class Pruned:
    """What one kind of record lost: how many items and bytes."""

    what: str
    items: int
    bytes: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def cutoff(days: float, now: datetime | None = None) -> datetime:
    """The moment before which records `days` old or more were made."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


def files_older_than(folder: Path, before: datetime) -> list[Path]:
    """Every file under `folder` last modified before `before` (none when it is missing)."""
    if not folder.is_dir():
        return []
    limit = before.timestamp()
    return [path for path in folder.rglob("*") if path.is_file() and path.stat().st_mtime < limit]


def stale_folders(folder: Path, before: datetime, keep: Iterable[str]) -> list[Path]:
    """The folders directly under `folder` whose newest file is older than `before`, except
    those named in `keep` (a cached model's folder, `<model>-<version>`, while aliased)."""
    if not folder.is_dir():
        return []
    kept, limit = set(keep), before.timestamp()
    stale = []
    for child in folder.iterdir():
        if not child.is_dir() or child.name in kept:
            continue
        times = [path.stat().st_mtime for path in child.rglob("*") if path.is_file()]
        if max(times, default=child.stat().st_mtime) < limit:
            stale.append(child)
    return stale


def remove_files(what: str, paths: Iterable[Path], dry_run: bool = False) -> Pruned:
    """Delete files or whole folders (unless `dry_run`) and count what went."""
    items = size = 0
    for path in paths:
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        items += len(files)
        size += sum(file.stat().st_size for file in files)
        if not dry_run:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    return Pruned(what, items, size)
