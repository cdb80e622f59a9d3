"""What `gradeline monitor` leaves behind about one window for the on-call engineer: the Evidently
report (HTML with its test suite, and JSON), the run in a local Evidently workspace whose
dashboard draws every signal's history, and a contact sheet of the most drifted photos.

    html, data = write_reports(judgement, run_folder, title="card-grader v3, last 24 h")
    project_id = record_in_workspace(judgement, home / "evidently", "card-grader", started)
    contact_sheet([("req-12 brightness z=5.1", bgr), ...], run_folder / "most_drifted.png")

`evidently ui --workspace <folder>` serves the workspace. Evidently 0.7's dashboards plot metric
values only, there is no panel for test results: each run's test suite shows on the run's own
page, and every run is tagged with its status ("ok" or "drift").
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from evidently.core.report import Snapshot
from evidently.sdk.models import (
    DashboardModel,
    DashboardPanelPlot,
    DashboardTabModel,
    PanelMetric,
)
from evidently.sdk.panels import line_plot_panel
from evidently.ui.workspace import Project, Workspace

from components.monitor.drift import DriftJudgement, QuadraticKappa
from components.vision.properties import PROPERTY_NAMES

REPORT_NAME = "drift"
DASHBOARD_TAB = "Drift"
SHEET_HEIGHT = 200  # every photo on the contact sheet is scaled to this height
CAPTION_HEIGHT = 28
SHEET_GAP = 6  # white pixels right of each photo
_BANNER = ('<div style="font-family: system-ui, sans-serif; margin: 1em 2em;">'
           '<h1 style="margin: 0 0 0.2em">{title}</h1><p style="margin: 0">{headline}</p></div>')


def write_reports(judgement: DriftJudgement, folder: Path, title: str) -> tuple[Path, Path]:
    """Write the window's Evidently report with its tests (HTML) and the JSON of Evidently's
    results and the judgement (under "gradeline") into `folder`; both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    banner = _BANNER.format(title=html.escape(title), headline=html.escape(judgement.headline()))
    if judgement.snapshot is None:
        page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                f"<title>{html.escape(title)}</title></head><body>{banner}</body></html>")
        evidently = None
    else:
        # Snapshot.save_html writes nothing when given a Path, so the page is taken as text.
        page = judgement.snapshot.get_html_str(as_iframe=False).replace("<body>",
                                                                        "<body>" + banner, 1)
        evidently = json.loads(judgement.snapshot.json())
    html_path, json_path = folder / f"{REPORT_NAME}.html", folder / f"{REPORT_NAME}.json"
    html_path.write_text(page, encoding="utf-8")
    json_path.write_text(json.dumps({"gradeline": judgement.as_dict(), "evidently": evidently},
                                    indent=1), encoding="utf-8")
    return html_path, json_path


def record_in_workspace(judgement: DriftJudgement, workspace: Path, project: str,
                        timestamp: datetime) -> str:
    """Add the window's run, at `timestamp`, to `project` in the local Evidently workspace (the
    project and its dashboard are created the first time); the project's id. A window too small
    to judge measured nothing and adds no run."""
    space = Workspace(str(workspace))
    found = space.search_project(project)
    target = found[0] if found else _create_project(space, project)
    if judgement.snapshot is not None:
        run = judgement.snapshot.to_snapshot_model().copy(update={
            "timestamp": timestamp, "tags": [judgement.status],
            "metadata": {"status": judgement.status, "headline": judgement.headline()}})
        space.add_run(target.id, Snapshot.load_model(run),
                      name=f"{judgement.status} {timestamp:%Y-%m-%d %H:%M}")
    return str(target.id)


def _create_project(space: Workspace, name: str) -> Project:
    created = space.create_project(name, description="gradeline monitor: served photos against "
                                                     "the champion's reference")
    panels = _dashboard_panels()
    # One write of the whole dashboard: ProjectDashboard.add_panel lists a panel twice when its
    # tab already exists (Evidently 0.7.23).
    space.save_dashboard(created.id, DashboardModel(
        tabs=[DashboardTabModel(title=DASHBOARD_TAB, panels=[p.id for p in panels])],
        panels=panels))
    return created


def _series(metric: str, legend: str, **labels: str) -> PanelMetric:
    return PanelMetric(legend=legend, metric=metric, metric_labels=labels)


def _dashboard_panels() -> list[DashboardPanelPlot]:
    """Line charts of every signal's score over the runs."""
    return [
        line_plot_panel("Image properties: drift score per property", [
            _series("ValueDrift", name, column=name) for name in PROPERTY_NAMES]),
        line_plot_panel("Share of drifted image properties", [
            _series("DriftedColumnsCount", "share", value_type="share")], size="half"),
        line_plot_panel("Embeddings drift", [_series("EmbeddingsDrift", "score")], size="half"),
        line_plot_panel("Predictions: drift of grades and set sizes", [
            _series("ValueDrift", column, column=column) for column in ("grade", "set_size")],
            size="half"),
        line_plot_panel("Share of photos sent to review", [
            _series("CategoryCount", "needs_review", column="needs_review",
                    value_type="share")], size="half"),
        line_plot_panel("Quadratic kappa against expert grades", [
            _series(QuadraticKappa.__name__, "kappa")]),
    ]


def contact_sheet(images: list[tuple[str, np.ndarray]], path: Path, columns: int = 4) -> Path:
    """Write a grid PNG of BGR images, scaled to one height, each above its caption."""
    if not images:
        raise ValueError(f"no images for the contact sheet {path}")
    scaled = [_to_height(caption, image) for caption, image in images]
    cell_width = max(image.shape[1] for image in scaled) + SHEET_GAP
    cell_height = SHEET_HEIGHT + CAPTION_HEIGHT
    rows = math.ceil(len(images) / columns)
    sheet = np.full((rows * cell_height, min(columns, len(images)) * cell_width, 3), 255,
                    dtype=np.uint8)
    for index, ((caption, _), image) in enumerate(zip(images, scaled, strict=True)):
        row, column = divmod(index, columns)
        top, left = row * cell_height, column * cell_width
        sheet[top:top + SHEET_HEIGHT, left:left + image.shape[1]] = image
        _write_caption(sheet, caption, left, top + SHEET_HEIGHT, cell_width - SHEET_GAP)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"could not write the contact sheet {path}")
    return path


def _to_height(caption: str, image: np.ndarray) -> np.ndarray:
    """The image as 3-channel BGR, SHEET_HEIGHT pixels high."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"contact sheet image {caption!r} is not a uint8 BGR or grey image: "
                         f"shape {image.shape} of {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    height, width = image.shape[:2]
    new_width = max(1, round(width * SHEET_HEIGHT / height))
    shrink = height > SHEET_HEIGHT
    return cv2.resize(image[:, :, :3], (new_width, SHEET_HEIGHT),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _write_caption(sheet: np.ndarray, caption: str, left: int, top: int, width: int) -> None:
    """The caption in the band below a photo, shrunk to fit the photo's cell."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    text_width = cv2.getTextSize(caption, font, scale, thickness)[0][0]
    scale *= min(1.0, (width - 8) / max(text_width, 1))
    cv2.putText(sheet, caption, (left + 4, top + CAPTION_HEIGHT - 10), font, scale, (0, 0, 0),
                thickness, cv2.LINE_AA)
