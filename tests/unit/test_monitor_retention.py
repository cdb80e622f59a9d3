"""Retention's pure parts: which files and cached model folders are past their time, and that
removing them counts what went (and a dry run removes nothing)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from components.monitor.retention import (
    cutoff,
    files_older_than,
    remove_files,
    stale_folders,
)

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def _file(path: Path, days_old: float, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    moment = (NOW - timedelta(days=days_old)).timestamp()
    os.utime(path, (moment, moment))
    return path


def test_only_files_past_the_cutoff_are_chosen_and_a_dry_run_keeps_them(tmp_path: Path) -> None:
    old = _file(tmp_path / "served" / "a.jpg", 40, size=7)
    nested = _file(tmp_path / "served" / "sub" / "b.jpg", 31, size=5)
    _file(tmp_path / "served" / "c.jpg", 2)

    chosen = files_older_than(tmp_path / "served", cutoff(30, NOW))
    dry = remove_files("thumbnails", chosen, dry_run=True)
    done = remove_files("thumbnails", chosen)

    assert sorted(chosen) == sorted([old, nested])
    assert dry.items == done.items == 2 and dry.bytes == done.bytes == 12
    assert [p.name for p in (tmp_path / "served").rglob("*.jpg")] == ["c.jpg"]
    assert files_older_than(tmp_path / "missing", NOW) == []


def test_a_cached_model_is_judged_by_its_newest_file_and_kept_while_aliased(
        tmp_path: Path) -> None:
    cache = tmp_path / "serving"
    _file(cache / "card-grader-1" / "model.onnx", 90)
    _file(cache / "card-grader-2" / "model.onnx", 90)
    _file(cache / "card-grader-3" / "model.onnx", 90)
    _file(cache / "card-grader-3" / "fresh.json", 1)

    stale = stale_folders(cache, cutoff(30, NOW), keep={"card-grader-2"})

    assert [folder.name for folder in stale] == ["card-grader-1"]
    assert remove_files("model_cache", stale).items == 1
    assert sorted(p.name for p in cache.iterdir()) == ["card-grader-2", "card-grader-3"]
