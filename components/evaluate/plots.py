"""The evaluation's own pictures: the model's agreement beside each expert's, and conformal
coverage and set size per grade. (Confusion matrices come from the training metrics, and the
reliability diagram from calibration.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from components.evaluate.agreement import HumanBar
from components.train.metrics import DPI, prediction_sheet

_AGREEMENT_METRICS = ("qwk", "exact", "within_one")


def agreement_png(model: dict[str, float], bar: HumanBar, path: Path) -> Path:
    """QWK, exact and within-one of the model against the consensus, beside each expert's
    against the others' consensus: the human bar at a glance."""
    scorers = {"model": model, **bar.per_expert}
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(scorers)
    positions = np.arange(len(_AGREEMENT_METRICS))
    for i, (name, scores) in enumerate(scorers.items()):
        values = [scores[m] for m in _AGREEMENT_METRICS]
        bars = ax.bar(positions + (i - (len(scorers) - 1) / 2) * width, values, width,
                      label=name, color="tab:red" if name == "model" else None)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(positions, ["QWK", "exact", "within one"])
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("agreement")
    ax.set_title(f"test split: model vs consensus, experts vs the others (n={int(model['n'])})")
    ax.legend(loc="upper center", ncol=len(scorers), fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def conformal_png(report: dict[str, object], target: float, path: Path) -> Path:
    """Coverage (bars) and mean set size (line) of the conformal sets per expert grade."""
    per_grade: dict[int, dict[str, float]] = report["per_grade"]  # type: ignore[assignment]
    grades = sorted(per_grade)
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(grades, [per_grade[g]["coverage"] for g in grades], color="tab:blue", alpha=0.7,
           label="coverage")
    ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("expert grade")
    ax.set_ylabel("share of cards whose set holds the grade")
    sizes = ax.twinx()
    sizes.plot(grades, [per_grade[g]["mean_set_size"] for g in grades], color="tab:orange",
               marker="o", label="mean set size")
    sizes.set_ylabel("grades in the set")
    sizes.set_ylim(0, max(3.0, max(per_grade[g]["mean_set_size"] for g in grades) + 0.5))
    ax.set_xticks(grades)
    ax.set_title(f"conformal grade sets on the test split: coverage {report['coverage']:.1%}, "
                 f"mean size {report['mean_set_size']:.2f}")
    handles = ax.get_legend_handles_labels()[0] + sizes.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def severity_overlay(pixels: np.ndarray, maps: np.ndarray, stride: int) -> np.ndarray:
    """An RGB card with its worst severity per cell laid over it in red (the stronger, the more
    severe), so a reviewer sees where the grader read each defect."""
    worst = maps.max(axis=0)
    height, width = pixels.shape[:2]
    cells = np.kron(worst, np.ones((stride, stride), np.float32))[:height, :width]
    alpha = np.clip(cells, 0, 1)[..., None] * 0.8
    red = np.array([255, 0, 0], np.float32)
    return (pixels.astype(np.float32) * (1 - alpha) + red * alpha).astype(np.uint8)


def worst_errors_png(pixels: np.ndarray, maps: np.ndarray, predicted: np.ndarray,
                     expected: np.ndarray, stride: int, path: Path, count: int = 12) -> Path:
    """The test cards graded furthest from the experts, each with its severity overlay and
    both grades: where to look first when the grader is wrong."""
    order = np.argsort(-np.abs(predicted - expected), kind="stable")[:count]
    return prediction_sheet([severity_overlay(pixels[i], maps[i], stride) for i in order],
                            [f"pred {predicted[i]} / expert {expected[i]}" for i in order],
                            [bool(predicted[i] == expected[i]) for i in order], path)
