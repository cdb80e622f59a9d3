"""How each expert grades: against the rest of each panel they joined and against the gold
items' known grades, now, day by day, and whether they drifted. The experts are the platform's
truth, and they drift too.

    agreement_with_panel(log.expert_panel(), "ada")   # ada next to the rest of each panel
    agreement_with_gold(log.expert_panel(), queue.gold(), "ada")   # ada against known grades
    expert_history(log.expert_panel(), queue.gold())  # each expert, day by day
    expert_drift(panel, since, params, gold)          # who drifted (monitoring alerts on-call)

A panel can only show an expert against the others; gold also shows a panel that drifts
together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from components.reviews import ReviewParams


def _differences(panel: pd.DataFrame, expert: str) -> pd.DataFrame:
    """`expert`'s grades (and when they gave them) on photos others graded too, with the
    difference from the others' consensus (their median, rounded half up, as a panel's) and
    from their mean (`offset`: unrounded, so one kind peer moves it by a fraction only)."""
    theirs = panel[panel["grader"] == expert].set_index("request_id")
    others = panel[(panel["grader"] != expert) & panel["request_id"].isin(theirs.index)]
    grades = others.groupby("request_id")["grade"]
    consensus = np.floor(grades.median().astype(float) + 0.5)
    shared = theirs.loc[consensus.index]
    own = shared["grade"].astype(float)
    return shared.assign(difference=own - consensus, offset=own - grades.mean().astype(float))


def agreement_with_panel(panel: pd.DataFrame, expert: str) -> dict[str, object]:
    """How `expert` grades next to the rest of each panel (`PredictionLog.expert_panel()`): on
    the photos they graded that others graded too, the share of grades equal to the others'
    median (rounded half up), within one of it, and their mean difference from the others'
    mean grade (a bias)."""
    shared = _differences(panel, expert)
    difference, compared = shared["difference"].to_numpy(float), len(shared)
    return {"expert": expert, "graded": int((panel["grader"] == expert).sum()),
            "compared": compared,
            "exact": round(float(np.mean(difference == 0)), 3) if compared else None,
            "within_one": round(float(np.mean(np.abs(difference) <= 1)), 3) if compared else None,
            "bias": round(float(shared["offset"].mean()), 3) if compared else None}


def _against_gold(panel: pd.DataFrame, gold: dict[str, int], expert: str) -> pd.DataFrame:
    """`expert`'s grades of gold items, with their difference from the known grade."""
    theirs = panel[(panel["grader"] == expert) & panel["request_id"].isin(gold)]
    known = theirs["request_id"].map(gold).astype(float)
    return theirs.assign(difference=theirs["grade"].astype(float) - known)


def agreement_with_gold(panel: pd.DataFrame, gold: dict[str, int],
                        expert: str) -> dict[str, object]:
    """How `expert` grades the gold items (`ReviewQueue.gold()`): the share equal to the known
    grade, within one of it, and their mean difference from it (a bias)."""
    difference = _against_gold(panel, gold, expert)["difference"].to_numpy(float)
    compared = len(difference)
    return {"compared": compared,
            "exact": round(float(np.mean(difference == 0)), 3) if compared else None,
            "within_one": round(float(np.mean(np.abs(difference) <= 1)), 3) if compared else None,
            "bias": round(float(difference.mean()), 3) if compared else None}


def expert_history(panel: pd.DataFrame, gold: dict[str, int],
                   period: str = "D") -> pd.DataFrame:
    """Each expert, period by period (`period`: a pandas frequency, days by default): photos
    compared with the rest of their panels, the share equal to the others' consensus (their
    consistency), their bias against the others' mean, and the gold items graded with the
    bias against the known grades; one row per expert and period they graded in."""
    frames = []
    for expert in sorted(panel["grader"].unique()):
        against_panel = _differences(panel, expert)
        against_gold = _against_gold(panel, gold, expert)
        for frame, kind in ((against_panel, "panel"), (against_gold, "gold")):
            if not frame.empty:
                start = pd.to_datetime(frame["time"], utc=True).dt.floor(period)
                frames.append(frame.assign(expert=expert, kind=kind, period=start.to_numpy()))
    columns = ["expert", "period", "compared", "exact", "bias", "gold_compared", "gold_bias"]
    if not frames:
        return pd.DataFrame(columns=columns)
    rows = pd.concat(frames, ignore_index=True)
    shift = rows["offset"].where(rows["kind"] == "panel", rows["difference"])
    grouped = rows.assign(shift=shift, equal=rows["difference"] == 0).groupby(
        ["expert", "period", "kind"])
    figures = grouped.agg(compared=("shift", "size"), exact=("equal", "mean"),
                          bias=("shift", "mean")).unstack("kind")
    history = pd.DataFrame({
        "compared": figures.get(("compared", "panel")),
        "exact": figures.get(("exact", "panel")), "bias": figures.get(("bias", "panel")),
        "gold_compared": figures.get(("compared", "gold")),
        "gold_bias": figures.get(("bias", "gold"))}, index=figures.index, dtype=float)
    return history.reset_index()[columns].fillna({"compared": 0, "gold_compared": 0}).astype(
        {"compared": int, "gold_compared": int}).round(3)


@dataclass(frozen=True)
class ExpertDrift:
    """One expert's recent bias against the rest of their panels and against the gold items'
    known grades, and whether either drifted."""

    expert: str
    compared: int
    bias: float | None
    drifted: bool
    gold_compared: int = 0
    gold_bias: float | None = None

    def line(self) -> str:
        against_panel = (f"{self.expert}: no photo shared with other experts recently"
                         if self.bias is None else
                         f"{self.expert}: {self.bias:+.2f} grades against the rest of the panel "
                         f"on {self.compared} photos")
        if self.gold_bias is None:
            return against_panel
        return f"{against_panel}, {self.gold_bias:+.2f} against {self.gold_compared} gold items"


def expert_drift(panel: pd.DataFrame, since: datetime, params: ReviewParams,
                 gold: dict[str, int] | None = None) -> list[ExpertDrift]:
    """Each expert's bias on the photos they graded since `since` (`panel` with its `time`):
    drifted once `expert_min_items` are compared and the bias against the rest of the panel
    passes `expert_max_bias` either way, or once `expert_min_gold` gold items are graded and
    the bias against their known grades does. The experts are the platform's truth: an expert
    half a grade kinder or harsher than their peers moves every consensus they join, and a
    panel that turns kind together is seen only against the gold."""
    def recent(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[pd.to_datetime(frame["time"], utc=True) >= since]

    found = []
    for expert in sorted(recent(panel)["grader"].unique()):
        theirs = recent(_differences(panel, expert))
        on_gold = recent(_against_gold(panel, gold or {}, expert))
        compared, gold_compared = len(theirs), len(on_gold)
        bias = round(float(theirs["offset"].mean()), 3) if compared else None
        gold_bias = round(float(on_gold["difference"].mean()), 3) if gold_compared else None
        drifted = (compared >= params.expert_min_items
                   and abs(bias or 0.0) > params.expert_max_bias) or (
            gold_compared >= params.expert_min_gold
            and abs(gold_bias or 0.0) > params.expert_max_bias)
        found.append(ExpertDrift(expert, compared, bias, drifted, gold_compared, gold_bias))
    return found


def expert_alert(standing: ExpertDrift, action: str,
                 params: ReviewParams) -> tuple[str, str] | None:
    """On-call's subject and body for an incident verdict's `action` on an expert (an alert
    or a recovery; None for anything else)."""
    if action == "alert":
        return (f"[gradeline] expert drift: {standing.expert}",
                f"{standing.line()} over the last {params.expert_window_days:g} days, beyond "
                f"{params.expert_max_bias:g} either way (review.expert_max_bias). Their grades "
                "move every consensus they join and the training batches made from them: "
                "compare their recent items with the panel's, then recalibrate them or take "
                "them off the queue (gradeline keys revoke).")
    if action == "recovered":
        return f"[gradeline] expert recovered: {standing.expert}", standing.line()
    return None
