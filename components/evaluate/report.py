"""The evaluation report a reviewer opens from the model version's run in the MLflow UI: one
self-contained HTML page (plots embedded, so it renders inside MLflow's artifact viewer).

    html = evaluation_report(summary, plots, title="card-grader version 3")
    (out / "report.html").write_text(html)

`summary` is the evaluation's plain-data summary (the same the CLI prints with --json).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.pass { color: #0a7a0a; font-weight: 600; } .fail { color: #c00; font-weight: 600; }
.note { color: #555; max-width: 60em; } img { max-width: 100%; border: 1px solid #ddd; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
"""


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return f'<span class="{"pass" if value else "fail"}">{"pass" if value else "fail"}</span>'
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def _metrics_rows(scores: dict[str, dict[str, float]]) -> list[list[object]]:
    return [[name, s["qwk"], s["mae"], s["exact"], s["within_one"], int(s["n"])]
            for name, s in scores.items()]


_METRIC_HEADER = ("", "QWK", "MAE", "exact", "within one", "items")


def _gates_section(summary: dict) -> str:
    gates = summary["gates"]
    failed = [g["name"] for g in gates if not g["passed"]]
    verdict = (f'<p class="fail">{len(failed)} of {len(gates)} gates failed: '
               f'{", ".join(failed)}. The version is not promoted.</p>' if failed else
               f'<p class="pass">All {len(gates)} gates passed.</p>')
    return ("<h2>Gates</h2>" + verdict
            + _table(("gate", "result", "value", "rule"),
                     ([g["name"], g["passed"], g["value"], g["rule"]] for g in gates)))


def _export_section(summary: dict) -> str:
    parts = ["<h2>Export</h2>", _table(
        ("backend", "images", "max |diff|", "same prediction", "result"),
        ([p["backend"], p["images"], p["max_abs_diff"], p["same_prediction"], p["passed"]]
         for p in summary["parity"]))]
    if "int8" in summary:
        int8 = summary["int8"]
        parts.append(f"<p>int8 (static, calibrated on training images): test QWK "
                     f"{int8['qwk']:.3f}, a drop of {int8['kappa_drop']:+.3f} against fp32 "
                     f"(bound {int8['max_kappa_drop']:g}); same grade as fp32 on "
                     f"{int8['same_grade_as_fp32']:.1%} of test cards. "
                     f"{'Kept.' if int8['kept'] else 'Not kept: the drop exceeds the bound.'}"
                     f"</p>")
    if summary.get("latency"):
        parts.append(_table(("backend", "p50 ms (batch 1)", "p99 ms (batch 1)",
                             "images/s (batch 32)"),
                            ([r["backend"], r["p50_ms"], r["p99_ms"], r["images_per_s"]]
                             for r in summary["latency"])))
    parts.append(f"<p>TensorRT: {html.escape(summary['tensorrt'])}</p>")
    return "".join(parts)


def _grader_sections(summary: dict) -> str:
    agreement, experts = summary["agreement"], summary["experts"]
    expert_qwks = [s["qwk"] for s in experts["per_expert"].values()]
    statement = {"within": "within the experts' own agreement",
                 "above": "above the experts' own agreement",
                 "below": "below the experts' own agreement"}[summary["verdict"]]
    conformal = summary["conformal"]
    return "".join([
        "<h2>Agreement with the experts</h2>",
        f"<p><b>The model grades {statement}</b>: QWK {summary['kappa']:.3f} against the panel's "
        f"consensus; each expert against the consensus of the others scores "
        f"{min(expert_qwks):.3f} to {max(expert_qwks):.3f} (mean {summary['human_bar']:.3f}).</p>",
        _table(_METRIC_HEADER, _metrics_rows({"model vs consensus": agreement["overall"],
                                              **{f"{k} vs others": v for k, v in
                                                 experts["per_expert"].items()}})),
        "<h3>Per subgrade</h3><p class='note'>The panel grades the card as a whole; subgrades "
        "are scored against the dataset's subgrade labels.</p>",
        _table(_METRIC_HEADER, _metrics_rows(agreement["per_subgrade"])),
        "<h3>Per camera</h3>", _table(_METRIC_HEADER, _metrics_rows(agreement["per_camera"])),
        "<h2>Calibration</h2>",
        f"<p>Expected calibration error of the most likely grade (15 bins): "
        f"{summary['ece_before']:.3f} before temperature scaling, {summary['ece_after']:.3f} "
        f"after (temperature {summary['temperatures']['grade']:.2f}, fitted on the calibration "
        f"split; the exported graph applies it). A perfectly calibrated model with these "
        f"probabilities would show {summary['ece_chance']['mean']:.3f} on as many cards (95% of "
        f"the time under {summary['ece_chance']['p95']:.3f}): below that, the ECE measured is "
        f"sampling noise.</p>",
        "<h2>Conformal grade sets</h2>",
        f"<p>Coverage {conformal['coverage']:.1%} on the test split (target "
        f"{conformal['target']:.0%}): the share of cards whose grade set holds the experts' "
        f"grade. A grade enters a card's set when its probability is at least "
        f"{conformal['threshold']:.3f}, the threshold fitted on "
        f"{conformal['calibration_items']} calibration cards. Sets are ranges of neighbouring "
        f"grades. Mean set size {conformal['mean_set_size']:.2f}; "
        f"{conformal['needs_review']:.1%} of cards have more than one grade in their set and "
        f"would go to a human reviewer.</p>",
        _table(("expert grade", "coverage", "mean set size", "items"),
               ([g, s["coverage"], s["mean_set_size"], int(s["n"])]
                for g, s in conformal["per_grade"].items())),
        _segmentation_section(summary.get("segmentation") or []),
    ])


def _segmentation_section(rows: list[dict]) -> str:
    """The severity maps as a defect segmentation, per class (none without labeled masks)."""
    if not rows:
        return ""
    return "".join([
        "<h2>Defects found</h2><p>The severity maps segment the card by defect class. Recall: "
        "the share of labeled defects of severity 0.25 or worse that the map marks; false "
        "alarms: the share of cards without the class where its map reads 0.25 or worse "
        "somewhere; IoU: the overlap of marked and labeled cells of 8 pixels; severity error "
        "and r (how closely the map's severity follows the label's): over every defect "
        "found.</p>",
        _table(("class", "defects >= 0.25", "recall", "false alarms", "IoU", "severity error",
                "severity r"),
               ([r["class"], r["defects"], r["recall"], r["false_alarms"], r["iou"],
                 r["severity_mae"], r["severity_r"]] for r in rows))])


def _detector_sections(summary: dict) -> str:
    metrics, classes = summary["metrics"], summary["classes"]
    return "".join([
        "<h2>Detection on the test split</h2>",
        f"<p>mAP50 {metrics['map50']:.3f}, mAP50-95 {metrics['map50_95']:.3f} on "
        f"{summary['images']} images. Recall is what an inspection line cares about most: a "
        f"missed defect ships.</p>",
        _table(("class", "precision", "recall"),
               ([c, metrics[f"precision.{c}"], metrics[f"recall.{c}"]] for c in classes)),
    ])


def evaluation_report(summary: dict, plots: Sequence[Path], title: str) -> str:
    """The HTML page of one evaluation: gates first, then the figures behind them."""
    body = _grader_sections(summary) if summary["kind"] == "grader" else \
        _detector_sections(summary)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{_gates_section(summary)}{body}{_export_section(summary)}"
            f"<h2>Plots</h2>{''.join(_figure(p) for p in plots)}</body></html>")


def summary_lines(summary: dict) -> list[str]:
    """The evaluation for a person at a terminal: stage, headline figures, gates, export."""
    lines = [f"{summary['model']} version {summary['version']}: stage {summary['stage']}"]
    if summary["kind"] == "grader":
        lines += [f"  QWK {summary['kappa']:.3f} vs the experts' {summary['human_bar']:.3f}: "
                  f"{summary['verdict']} their own agreement",
                  f"  ECE {summary['ece_before']:.3f} -> {summary['ece_after']:.3f} after "
                  f"temperature {summary['temperatures']['grade']:.2f} (a calibrated model: "
                  f"{summary['ece_chance']['mean']:.3f}, 95% under "
                  f"{summary['ece_chance']['p95']:.3f})",
                  f"  conformal sets: coverage {summary['coverage']:.1%}, mean size "
                  f"{summary['mean_set_size']:.2f}"]
        if summary.get("segmentation"):
            lines.append("  defects found (recall, severity >= 0.25): " + ", ".join(
                f"{r['class']} {r['recall']}" for r in summary["segmentation"]))
    else:
        metrics = summary["metrics"]
        lines.append(f"  mAP50 {metrics['map50']:.3f}, mAP50-95 {metrics['map50_95']:.3f}")
    lines += [f"  gate {g['name']}: {'pass' if g['passed'] else 'FAIL'} ({g['value']:.4g}; "
              f"{g['rule']})" for g in summary["gates"]]
    lines += [f"  latency {r['backend']}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms "
              f"(batch 1), {r['images_per_s']:.1f} images/s (batch 32)"
              for r in summary.get("latency", [])]
    lines += [f"  TensorRT: {summary['tensorrt']}", f"  report: {summary['report']}"]
    return lines
