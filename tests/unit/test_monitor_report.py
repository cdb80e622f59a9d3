"""What the monitor leaves behind: the Evidently report and its JSON, the runs in a local
Evidently workspace with a dashboard whose charts find their series, and the contact sheet."""

from __future__ import annotations

import asyncio
import html
import json
from datetime import datetime
from pathlib import Path
from uuid import UUID

import cv2
import numpy as np
import pytest
from evidently.ui.service.base import SeriesFilter
from evidently.ui.service.storage.local.base import InMemoryDataStorage
from evidently.ui.workspace import Workspace
from threadpoolctl import threadpool_limits

from components.monitor.drift import DriftJudgement, judge_window
from components.monitor.params import MonitorParams
from components.monitor.report import (
    CAPTION_HEIGHT,
    SHEET_GAP,
    SHEET_HEIGHT,
    contact_sheet,
    record_in_workspace,
    write_reports,
)
from components.vision.properties import PROPERTY_NAMES
from tests.unit.test_monitor_drift import CAMERA_CHANGE, QUIET, photos

TITLE = "card-grader v3, last 24 h"
T1, T2 = datetime(2026, 11, 23, 4, 0), datetime(2026, 11, 23, 5, 0)


@pytest.fixture(scope="module")
def drifted() -> DriftJudgement:
    """A new camera, every signal measured: 40 photos carry an expert grade (the model's)."""
    window = photos(seed=3, n=120, shift=CAMERA_CHANGE)
    window.loc[:39, "expert_grade"] = window["grade"][:40]
    # Evidently draws the embeddings with t-SNE, whose OpenMP threads crawl on a busy machine.
    with threadpool_limits(limits=1, user_api="openmp"):
        return judge_window(photos(seed=1, n=300), window, QUIET, champion_kappa=0.8)


@pytest.fixture(scope="module")
def too_small() -> DriftJudgement:
    return judge_window(photos(seed=1, n=300), photos(seed=4, n=12), MonitorParams(), None)


def test_the_report_holds_the_evidently_run_and_the_judgement(drifted: DriftJudgement,
                                                              tmp_path: Path) -> None:
    html_path, json_path = write_reports(drifted, tmp_path / "run", TITLE)
    page = html_path.read_text(encoding="utf-8")
    assert TITLE in page and html.escape(drifted.headline()) in page
    assert "Value drift for colour_temperature" in page
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["gradeline"]["status"] == "drift"
    assert data["gradeline"]["drifted"] == ["image_properties"]
    statuses = [test["status"] for test in data["evidently"]["tests"]]
    assert statuses.count("FAIL") == 4  # brightness, contrast, colour_temperature, their share
    assert len(statuses) == 14  # 8 properties and their share, embeddings, 3 predictions, kappa


def test_a_small_window_gets_a_page_that_says_so(too_small: DriftJudgement,
                                                 tmp_path: Path) -> None:
    html_path, json_path = write_reports(too_small, tmp_path, TITLE)
    assert "too small to judge: 12 photos, 50 needed" in html_path.read_text(encoding="utf-8")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["evidently"] is None and data["gradeline"]["status"] == "too_small"


def test_the_workspace_keeps_every_run_of_one_project(drifted: DriftJudgement,
                                                      too_small: DriftJudgement,
                                                      tmp_path: Path) -> None:
    folder = tmp_path / "evidently"
    first = record_in_workspace(drifted, folder, "card-grader", T1)
    assert record_in_workspace(drifted, folder, "card-grader", T2) == first
    assert record_in_workspace(too_small, folder, "card-grader", T2) == first
    space = Workspace(str(folder))
    assert [project.name for project in space.list_projects()] == ["card-grader"]
    runs = [space.get_run(first, run) for run in space.list_runs(first)]
    assert sorted(run.timestamp for run in runs) == [T1, T2]
    assert [run.tags for run in runs] == [["drift"], ["drift"]]
    dashboard = space.get_dashboard(first)
    assert len(dashboard.panels) == 6
    assert dashboard.tabs[0].panels == [panel.id for panel in dashboard.panels]


def test_every_chart_of_the_dashboard_finds_its_series(drifted: DriftJudgement,
                                                       tmp_path: Path) -> None:
    """What `evidently ui` draws: a chart whose filter matches no stored metric stays empty."""
    project = UUID(record_in_workspace(drifted, tmp_path, "card-grader", T1))
    record_in_workspace(drifted, tmp_path, "card-grader", T2)
    storage = InMemoryDataStorage(str(tmp_path))
    points = {}
    for panel in Workspace(str(tmp_path)).get_dashboard(project).panels:
        for value in panel.values:
            wanted = SeriesFilter(metric=value.metric, metric_labels=value.metric_labels,
                                  tags=[], metadata={})
            found = asyncio.run(storage.get_data_series(project, [wanted], None, None)).series
            points[value.legend] = [len(series.values) for series in found]
    assert points == {legend: [2] for legend in [
        *PROPERTY_NAMES, "share", "score", "grade", "set_size", "needs_review", "kappa"]}


def test_the_contact_sheet_is_a_grid_of_captioned_photos(tmp_path: Path) -> None:
    sizes = [(100, 50), (300, 200), (50, 150), (400, 400), (10, 10)]
    images = [(f"req-{i} brightness z={i}.5", np.full((h, w, 3), 40 * (i + 1), np.uint8))
              for i, (h, w) in enumerate(sizes)]
    images[0] = (images[0][0], np.full((100, 50), 40, np.uint8))  # grey photos are welcome too
    path = contact_sheet(images, tmp_path / "sheets" / "most_drifted.png", columns=3)
    sheet = cv2.imread(str(path))
    widest = 600  # 50 x 150 scaled to 200 px high
    assert sheet.shape == (2 * (SHEET_HEIGHT + CAPTION_HEIGHT), 3 * (widest + SHEET_GAP), 3)
    cell = widest + SHEET_GAP
    assert sheet[SHEET_HEIGHT // 2, 10].tolist() == [40, 40, 40]  # first photo, top left
    assert sheet[SHEET_HEIGHT + CAPTION_HEIGHT + 100, cell + 10].tolist() == [200] * 3
    assert (sheet[SHEET_HEIGHT:SHEET_HEIGHT + CAPTION_HEIGHT, :cell] < 100).any()  # caption ink
    with pytest.raises(ValueError, match="no images"):
        contact_sheet([], tmp_path / "empty.png")
