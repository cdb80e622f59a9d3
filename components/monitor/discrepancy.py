"""Where the model and the experts part, per monitoring window: the champion's answers that
experts graded, the model's grade against their consensus, by camera, by the consensus grade,
by each defect class the answer named, and by the answer's conformal set size.

    found = discrepancies(log.window(since, until, roles=["champion"]), log.expert_grades())
    found.tables["camera"]      # one row per camera: graded, exact, within_one, bias
    history = expert_history(log.expert_panel(), queue.gold())     # components/experts.py
    discrepancy_html(found, folder / "discrepancy.html", "card-grader v3, 2026-12-05",
                     history, max_bias=0.5)   # and experts.png beside it

A kappa over the whole window says that the model drifted from the experts; these tables say
where (a camera, the low grades, photos with creases, wide sets), which is what a retraining
batch or a rubric change should address. `bias` is the model's mean grade minus the experts'.
The experts are measured too: each one, day by day, against the rest of their panels and the
gold items (a plot and a table), since a drifting expert moves every consensus they join.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.dates import DateFormatter, DayLocator
from matplotlib.figure import Figure

# Each table's column in the joined frame, and its heading.
GROUPINGS: dict[str, str] = {
    "camera": "camera",
    "expert_grade": "experts' grade",
    "defect_class": "defect class named",
    "set_size": "conformal set size",
}
UNNAMED_CAMERA = "not named"
_DPI = 110  # the evaluation's plots' resolution
_HISTORY_ROWS = 60  # the experts' table shows this many latest rows; the plot shows them all
NO_DEFECT = "none"


@dataclass(frozen=True)
class Discrepancies:
    """The per-grouping tables (index: the group; columns graded, exact, within_one, bias) and
    how many answers experts graded in the window."""

    tables: dict[str, pd.DataFrame]
    graded: int

    def as_dict(self) -> dict[str, object]:
        return {"graded": self.graded,
                **{name: table.reset_index().to_dict("records")
                   for name, table in self.tables.items()}}

    def worst(self, min_graded: int = 10) -> str | None:
        """The group, of any table, with at least `min_graded` answers, whose bias is the
        largest either way, as a line; None when no group has that many."""
        rows = [(abs(row.bias), f"{GROUPINGS[name]} {row.Index}: bias {row.bias:+.2f} on "
                 f"{row.graded} photos (exact {row.exact:.0%})")
                for name, table in self.tables.items()
                for row in table.itertuples() if row.graded >= min_graded]
        return max(rows, key=lambda row: row[0])[1] if rows else None  # ties: the first


def discrepancies(predictions: pd.DataFrame, expert_grades: pd.DataFrame) -> Discrepancies:
    """The tables for the answers in `predictions` (a `PredictionLog.window`) that went to
    clients and that experts graded (`expert_grades`: request_id and consensus grade)."""
    answered = predictions[predictions["answered"] & predictions["error"].isna()
                           & predictions["grade"].notna()]
    joined = answered.merge(expert_grades.rename(columns={"grade": "expert_grade"}),
                            on="request_id", how="inner")
    joined = joined.assign(
        difference=joined["grade"].astype(int) - joined["expert_grade"].astype(int),
        camera=joined["camera"].fillna(UNNAMED_CAMERA),
        set_size=(joined["grade_set_high"] - joined["grade_set_low"] + 1).astype("Int64"),
        defect_class=[sorted(set(found)) if isinstance(found, list) and found else [NO_DEFECT]
                      for found in joined["defects"]])
    tables = {name: _table(joined.explode("defect_class") if name == "defect_class" else joined,
                           name) for name in GROUPINGS}
    return Discrepancies(tables, len(joined))


def _table(joined: pd.DataFrame, column: str) -> pd.DataFrame:
    difference = joined.groupby(column, sort=True)["difference"]
    return pd.DataFrame({
        "graded": difference.size(),
        "exact": difference.agg(lambda d: float(np.mean(d == 0))).round(3),
        "within_one": difference.agg(lambda d: float(np.mean(np.abs(d) <= 1))).round(3),
        "bias": difference.mean().astype(float).round(3),
    })


def experts_png(history: pd.DataFrame, path: Path, max_bias: float) -> Path:
    """Each expert's bias per period against the rest of their panels (solid) and against the
    gold items (dashed), with the band an expert must stay in (`max_bias` either way)."""
    fig = Figure(figsize=(7.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.axhspan(-max_bias, max_bias, color="tab:green", alpha=0.1, label="allowed bias")
    for number, (expert, rows) in enumerate(history.groupby("expert", sort=True)):
        colour = f"C{number % 10}"
        ax.plot(rows["period"], rows["bias"], "o-", color=colour, label=f"{expert} vs panel")
        gold = rows[rows["gold_compared"] > 0]
        if not gold.empty:
            ax.plot(gold["period"], gold["gold_bias"], "s--", color=colour,
                    label=f"{expert} vs gold")
    ax.axhline(0, color="grey", linewidth=0.8)
    if not history.empty:  # a day either side: one day alone would be drawn across years
        first, last = history["period"].min(), history["period"].max()
        ax.set_xlim(first - pd.Timedelta(days=1), last + pd.Timedelta(days=1))
        ax.xaxis.set_major_locator(DayLocator(interval=max(1, (last - first).days // 8)))
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    ax.set_ylabel("bias (grades)")
    ax.set_title("each expert against the rest of the panel and the gold items")
    ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, format="png")
    return path


def _experts_section(history: pd.DataFrame, plot: str, max_bias: float) -> str:
    """The experts' history as a plot and a table of the last periods."""
    rows = "".join(
        f"<tr{' class=off' if _beyond(max_bias, row.bias, row.gold_bias) else ''}>"
        f"<td>{html.escape(str(row.expert))}</td><td>{row.period:%Y-%m-%d}</td>"
        f"<td>{row.compared}</td><td>{_percent(row.exact)}</td><td>{_signed(row.bias)}</td>"
        f"<td>{row.gold_compared}</td><td>{_signed(row.gold_bias)}</td></tr>"
        for row in history.sort_values(["period", "expert"]).tail(_HISTORY_ROWS).itertuples())
    return (f"<h2>Each expert over time</h2><p>Against the rest of each panel they joined "
            f"(exact: their consistency) and the gold items' known grades; beyond "
            f"{max_bias:g} either way an expert has drifted.</p><img src=\"{plot}\" "
            "alt=\"each expert's bias over time\"><table><tr><th>expert</th><th>day</th>"
            "<th>compared</th><th>exact</th><th>bias</th><th>gold</th><th>gold bias</th></tr>"
            f"{rows or '<tr><td colspan=7>no expert grades yet</td></tr>'}</table>")


def _beyond(limit: float, *biases: float) -> bool:
    return any(pd.notna(bias) and abs(bias) > limit for bias in biases)


def _percent(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.0%}"


def _signed(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:+.2f}"


def discrepancy_html(found: Discrepancies, path: Path, title: str,
                     experts: pd.DataFrame | None = None, max_bias: float = 0.5) -> Path:
    """One page with a table per grouping; groups whose bias passes half a grade either way
    are marked, since they are where the model and the experts part. With `experts`
    (`experts.expert_history`), each expert over time too, plotted in experts.png beside it."""
    sections = [f"<h1>{html.escape(title)}</h1>",
                f"<p>{found.graded} answers graded by the experts in this window. bias: the "
                "model's mean grade minus the experts' consensus.</p>"]
    for name, table in found.tables.items():
        rows = "".join(
            f"<tr{' class=off' if abs(row.bias) > 0.5 else ''}><td>"
            f"{html.escape(str(row.Index))}</td><td>{row.graded}</td><td>{row.exact:.0%}</td>"
            f"<td>{row.within_one:.0%}</td><td>{row.bias:+.2f}</td></tr>"
            for row in table.itertuples())
        sections.append(f"<h2>By {GROUPINGS[name]}</h2><table><tr><th>{GROUPINGS[name]}</th>"
                        "<th>graded</th><th>exact</th><th>within one</th><th>bias</th></tr>"
                        f"{rows or '<tr><td colspan=5>no graded answer</td></tr>'}</table>")
    if experts is not None:
        plot = experts_png(experts, path.with_name("experts.png"), max_bias)
        sections.append(_experts_section(experts, plot.name, max_bias))
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
             "td:first-child{text-align:left}.off{background:#fde0dc}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><head><meta charset=utf-8><title>"
                    f"{html.escape(title)}</title><style>{style}</style></head><body>"
                    f"{''.join(sections)}</body></html>")
    return path
