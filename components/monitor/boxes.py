"""Per-class precision and recall of the served detector against reviewers' corrected boxes,
period by period, recall first: a defect the detector missed ships, so a class whose recall
falls below the gate is listed as needing more data.

    table = box_agreement(served, reviewed, period="1D", min_iou=0.5)
    table.columns   # period, class, tp, fp, fn, precision, recall
    needs_more_data(table, min_recall=0.8)   # ["crease"]: classes below it in the last period
    recall_over_time_png(table, Path("recall.png"), min_recall=0.8)
    record_recall_in_workspace(table, home / "evidently", "defect-detector recall", now)

`served` has a row per answered photo (request_id, time, boxes: the detector's
[{"class", "box": [x1, y1, x2, y2], "confidence"}]); `reviewed` a row per review (request_id,
time, boxes: every defect the reviewer sees, [{"class", "box"}]), the latest review of a photo
standing. Only reviewed photos count. A served box is right when it overlaps a reviewed box of
its class by at least `min_iou` that no more confident served box took already.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import MeanValue
from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
from evidently.sdk.panels import line_plot_panel
from evidently.ui.workspace import Workspace
from matplotlib.figure import Figure

COLUMNS = ("period", "class", "tp", "fp", "fn", "precision", "recall")


def iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    overlap = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


def match_boxes(served: list[dict], reviewed: list[dict], min_iou: float) -> Counter:
    """Counts keyed (class, "tp" | "fp" | "fn") for one photo: served boxes, most confident
    first, each take the best unmatched reviewed box of their class at `min_iou` or more."""
    counts: Counter = Counter()
    left = list(reviewed)
    for box in sorted(served, key=lambda b: -float(b.get("confidence", 1.0))):
        same = [(iou(box["box"], r["box"]), i) for i, r in enumerate(left)
                if r["class"] == box["class"]]
        best = max(same, default=(0.0, -1))
        if best[0] >= min_iou:
            counts[box["class"], "tp"] += 1
            left.pop(best[1])
        else:
            counts[box["class"], "fp"] += 1
    for missed in left:
        counts[missed["class"], "fn"] += 1
    return counts


def box_agreement(served: pd.DataFrame, reviewed: pd.DataFrame, period: str = "1D",
                  min_iou: float = 0.5) -> pd.DataFrame:
    """Per period (start, UTC) and class, the reviewed photos' matches and misses and the
    detector's precision and recall (NaN where nothing was served or reviewed)."""
    latest = reviewed.sort_values("time").drop_duplicates("request_id", keep="last")
    photos = served.merge(latest[["request_id", "boxes"]], on="request_id",
                          suffixes=("_served", "_reviewed"))
    rows = []
    for start, group in photos.groupby(pd.to_datetime(photos["time"], utc=True)
                                       .dt.floor(period)):
        counts: Counter = Counter()
        for got, truth in zip(group["boxes_served"], group["boxes_reviewed"], strict=True):
            counts += match_boxes(got or [], truth or [], min_iou)
        for name in sorted({name for name, _ in counts}):
            tp, fp, fn = (counts[name, kind] for kind in ("tp", "fp", "fn"))
            rows.append({"period": start, "class": name, "tp": tp, "fp": fp, "fn": fn,
                         "precision": tp / (tp + fp) if tp + fp else None,
                         "recall": tp / (tp + fn) if tp + fn else None})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def needs_more_data(table: pd.DataFrame, min_recall: float) -> list[str]:
    """Classes whose recall in the last period with reviews of them is under `min_recall`."""
    judged = table.dropna(subset=["recall"]).sort_values("period")
    last = judged.groupby("class").tail(1)
    return sorted(last.loc[last["recall"] < min_recall, "class"])


def recall_over_time_png(table: pd.DataFrame, path: Path, min_recall: float) -> Path:
    """Recall per class over the periods, the gate drawn across: which class is slipping."""
    figure = Figure(figsize=(8, 4))
    axis = figure.subplots()
    for name, rows in table.dropna(subset=["recall"]).groupby("class"):
        axis.plot(rows["period"], rows["recall"], marker="o", label=name)
    axis.axhline(min_recall, color="red", linestyle="--", label=f"gate {min_recall}")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("recall against reviewed boxes")
    axis.set_title("Detector recall per defect class")
    axis.legend(fontsize="small", loc="lower left")
    figure.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def record_recall_in_workspace(table: pd.DataFrame, workspace: Path, project: str,
                               timestamp: datetime) -> str | None:
    """Add the last period's recall and precision per class, at `timestamp`, as a run of
    `project` in the Evidently workspace, whose dashboard draws each class's recall over the
    runs (created with the project, for the classes seen then); the project's id, or None when
    nothing was judged."""
    last = table[table["period"] == table["period"].max()] if len(table) else table
    figures = {f"{kind}.{row['class']}": float(row[kind]) for _, row in last.iterrows()
               for kind in ("recall", "precision") if pd.notna(row[kind])}
    if not figures:
        return None
    space = Workspace(str(workspace))
    found = space.search_project(project)
    if found:
        target = found[0]
    else:
        target = space.create_project(project, description="gradeline monitor: the served "
                                      "detector against reviewers' corrected boxes")
        panels = [line_plot_panel(f"Recall per defect class ({project})", [
            PanelMetric(legend=name.removeprefix("recall."), metric="MeanValue",
                        metric_labels={"column": name})
            for name in sorted(figures) if name.startswith("recall.")])]
        space.save_dashboard(target.id, DashboardModel(
            tabs=[DashboardTabModel(title="Recall", panels=[p.id for p in panels])],
            panels=panels))
    frame = pd.DataFrame([figures])
    snapshot = Report([MeanValue(column=name) for name in figures]).run(
        Dataset.from_pandas(frame, data_definition=DataDefinition(
            numerical_columns=list(figures))), None)
    run = snapshot.to_snapshot_model().copy(update={"timestamp": timestamp})
    space.add_run(target.id, Snapshot.load_model(run), name=f"recall {timestamp:%Y-%m-%d %H:%M}")
    return str(target.id)
