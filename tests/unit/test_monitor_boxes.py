"""The detector's precision and recall per class over time, against reviewers' corrected boxes,
on a hand-built window (issue 16): what counts as found, missed and false, and which classes
need more data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import pandas as pd
import pytest
from evidently.ui.service.base import SeriesFilter
from evidently.ui.service.storage.local.base import InMemoryDataStorage
from evidently.ui.workspace import Workspace

from components.monitor.boxes import (
    box_agreement,
    iou,
    match_boxes,
    needs_more_data,
    recall_over_time_png,
    record_recall_in_workspace,
)

SCRATCH, CREASE = "surface_scratch", "crease"


def _box(name: str, x: float, confidence: float | None = None) -> dict:
    found = {"class": name, "box": [x, 10.0, x + 20.0, 30.0]}
    return found if confidence is None else {**found, "confidence": confidence}


def test_iou_of_boxes() -> None:
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0


def test_a_box_is_found_once_by_the_most_confident_served_box_of_its_class() -> None:
    served = [_box(SCRATCH, 0, 0.6), _box(SCRATCH, 2, 0.9), _box(CREASE, 100, 0.8)]
    reviewed = [_box(SCRATCH, 1), _box(CREASE, 300)]

    counts = match_boxes(served, reviewed, min_iou=0.5)

    assert counts == {(SCRATCH, "tp"): 1, (SCRATCH, "fp"): 1, (CREASE, "fp"): 1,
                      (CREASE, "fn"): 1}


def test_recall_per_class_per_day_and_the_classes_that_need_more_data(tmp_path: Path) -> None:
    day1, day2 = pd.Timestamp("2026-12-01 10:00", tz="UTC"), pd.Timestamp("2026-12-02 09:00",
                                                                           tz="UTC")
    served = pd.DataFrame({
        "request_id": ["a", "b", "c", "d", "e"],
        "time": [day1, day1, day2, day2, day2],
        "boxes": [[_box(SCRATCH, 0, 0.9)], [_box(CREASE, 50, 0.7)], [_box(SCRATCH, 0, 0.9)],
                  [], [_box(CREASE, 50, 0.8)]],
    })
    reviewed = pd.DataFrame({
        "request_id": ["a", "b", "c", "d", "d"],
        "time": [day1, day1, day2, day2, day2 + pd.Timedelta("1h")],
        # d: first reviewed clean, then corrected to hold a missed crease; e: never reviewed
        "boxes": [[_box(SCRATCH, 1)], [_box(CREASE, 50)], [_box(SCRATCH, 0), _box(SCRATCH, 200)],
                  [], [_box(CREASE, 70)]],
    })

    table = box_agreement(served, reviewed, period="1D", min_iou=0.5)

    by = {(row.period.day, row["class"]): row for _, row in table.iterrows()}
    assert by[1, SCRATCH].recall == 1.0 and by[1, CREASE].recall == 1.0
    assert (by[2, SCRATCH].tp, by[2, SCRATCH].fn, by[2, SCRATCH].recall) == (1, 1, 0.5)
    assert by[2, SCRATCH].precision == 1.0
    assert (by[2, CREASE].fn, by[2, CREASE].recall) == (1, 0.0)
    assert pd.isna(by[2, CREASE].precision)  # none of it served on reviewed photos that day
    assert needs_more_data(table, min_recall=0.8) == [CREASE, SCRATCH]
    plot = recall_over_time_png(table, tmp_path / "recall.png", min_recall=0.8)
    assert plot.stat().st_size > 5_000


def test_nothing_reviewed_gives_an_empty_table() -> None:
    served = pd.DataFrame({"request_id": ["a"], "time": [pd.Timestamp("2026-12-01", tz="UTC")],
                           "boxes": [[_box(SCRATCH, 0, 0.9)]]})
    nobody = pd.DataFrame(columns=["request_id", "reviewer", "time", "boxes"])

    assert box_agreement(served, nobody).empty
    assert box_agreement(served.iloc[:0], nobody).empty
    assert needs_more_data(box_agreement(served, nobody), 0.8) == []


def test_each_run_adds_its_last_day_to_the_workspace_dashboard(tmp_path: Path) -> None:
    day = pd.Timestamp("2026-12-01", tz="UTC")
    table = pd.DataFrame({"period": [day, day], "class": [SCRATCH, CREASE], "tp": [3, 0],
                          "fp": [1, 0], "fn": [1, 2], "precision": [0.75, None],
                          "recall": [0.75, 0.0]})
    first = record_recall_in_workspace(table, tmp_path, "defect-detector recall",
                                       day.to_pydatetime())
    again = record_recall_in_workspace(table.assign(recall=[1.0, 0.5]), tmp_path,
                                       "defect-detector recall",
                                       (day + pd.Timedelta("1D")).to_pydatetime())

    assert first == again
    assert record_recall_in_workspace(table.iloc[:0], tmp_path, "x", day.to_pydatetime()) is None
    space, project = Workspace(str(tmp_path)), UUID(first)
    assert len(space.list_runs(project)) == 2
    storage = InMemoryDataStorage(str(tmp_path))
    points = {}
    for panel in space.get_dashboard(project).panels:
        for value in panel.values:
            wanted = SeriesFilter(metric=value.metric, metric_labels=value.metric_labels,
                                  tags=[], metadata={})
            found = asyncio.run(storage.get_data_series(project, [wanted], None, None)).series
            points[value.legend] = [list(series.values) for series in found]
    assert points == {SCRATCH: [[0.75, 1.0]], CREASE: [[0.0, 0.5]]}
