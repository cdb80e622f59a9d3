"""Promotion gates and the evaluation report: thresholds are inclusive, NaN never passes, a failed
parity is a failed gate; the report is one self-contained HTML page (plots embedded) for a grader
and for a detector, and the terminal summary says the same in a few lines."""

from __future__ import annotations

import base64
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.evaluate.agreement import expert_agreement, expert_columns, human_bar
from components.evaluate.gates import (
    Gate,
    at_least,
    at_most,
    coverage_gate,
    detector_gates,
    ece_gate,
    grader_gates,
    parity_gates,
)
from components.evaluate.latency import Latency
from components.evaluate.params import EvaluateParams, GateParams
from components.evaluate.parity import Parity, ParityLimits
from components.evaluate.plots import agreement_png, conformal_png
from components.evaluate.report import evaluation_report, summary_lines
from components.vision.conformal import conformal_report, fit_conformal

MANY = 1_000_000  # test cards: chance explains no shortfall at all
NAN = math.nan
LIMITS = ParityLimits(max_abs_diff=1e-3, same_prediction=0.999)
EXACT = EvaluateParams(coverage=0.75, gates=GateParams(kappa_margin=0.25, max_ece=0.125,
                                                       coverage_margin=0.25))


def parity(backend: str = "onnx fp32", max_abs_diff: float = 2e-6,
           same_prediction: float = 1.0) -> Parity:
    return Parity(backend, images=64, max_abs_diff=max_abs_diff,
                  same_prediction=same_prediction, limits=LIMITS)


# gates

@pytest.mark.parametrize(("value", "passed"), [(0.5, True), (0.6, True), (0.49, False),
                                               (NAN, False)])
def test_at_least_is_inclusive_and_nan_fails(value: float, passed: bool) -> None:
    gate = at_least("kappa", value, 0.5, "qwk >= 0.5")
    assert gate.passed is passed
    assert gate.name == "kappa" and gate.rule == "qwk >= 0.5"
    assert gate.value == value or math.isnan(value)


@pytest.mark.parametrize(("value", "passed"), [(0.05, True), (0.0, True), (0.051, False),
                                               (NAN, False)])
def test_at_most_is_inclusive_and_nan_fails(value: float, passed: bool) -> None:
    assert at_most("ece", value, 0.05, "ECE <= 0.05").passed is passed


def test_grader_gates_pass_exactly_at_their_thresholds() -> None:
    gates = grader_gates(qwk=0.5, human_bar_qwk=0.75, ece_after=0.125, ece_chance_p95=0.1,
                         coverage=0.5, test_items=MANY, parities=[parity()], params=EXACT)
    assert [g.name for g in gates] == ["kappa", "ece", "coverage", "parity_onnx_fp32"]
    assert all(g.passed for g in gates)
    assert [g.value for g in gates[:3]] == [0.5, 0.125, 0.5]


@pytest.mark.parametrize(("failing", "arguments"), [
    ("kappa", {"qwk": 0.49}),
    ("kappa", {"qwk": NAN}),
    ("kappa", {"human_bar_qwk": 0.76}),
    ("ece", {"ece_after": 0.126}),
    ("ece", {"ece_after": NAN}),
    ("ece", {"ece_after": 0.131, "ece_chance_p95": 0.13}),
    ("coverage", {"coverage": 0.49}),
    ("coverage", {"coverage": NAN}),
])
def test_grader_gates_fail_just_past_their_thresholds(failing: str,
                                                      arguments: dict[str, float]) -> None:
    values = {"qwk": 0.5, "human_bar_qwk": 0.75, "ece_after": 0.125, "ece_chance_p95": 0.1,
              "coverage": 0.5, **arguments}
    gates = grader_gates(**values, test_items=MANY, parities=[parity()], params=EXACT)
    assert [g.name for g in gates if not g.passed] == [failing]


@pytest.mark.parametrize(("ece", "chance_p95", "passed"), [
    (0.09, 0.10, True),    # above the 0.05 limit, but a calibrated model shows as much
    (0.11, 0.10, False),   # more than chance explains
    (0.04, 0.01, True),    # under the limit, whatever chance says
    (0.09, NAN, False),    # no chance figure: the limit alone
])
def test_ece_above_its_limit_passes_only_within_chance(ece: float, chance_p95: float,
                                                       passed: bool) -> None:
    gate = ece_gate(ece, chance_p95, items=226, params=EvaluateParams())
    assert (gate.name, gate.passed, gate.value) == ("ece", passed, ece)


def test_grader_gate_rules_name_their_thresholds() -> None:
    gates = grader_gates(qwk=0.9, human_bar_qwk=0.891, ece_after=0.03, ece_chance_p95=0.1,
                         coverage=0.91, test_items=200, parities=[], params=EvaluateParams())
    rules = {g.name: g.rule for g in gates}
    assert rules["kappa"] == "qwk >= 0.871 (human bar 0.891 - 0.02)"
    assert rules["ece"] == ("ECE after scaling <= 0.05, or within what a calibrated model "
                            "shows by chance on 200 cards (95% under 0.100)")
    assert rules["coverage"].startswith("conformal coverage >= 0.88 (target 0.9 - 0.02), or "
                                        "below it by chance on 200 cards (binomial p ")
    assert [g.name for g in gates] == ["kappa", "ece", "coverage"]


@pytest.mark.parametrize(("covered", "items", "passed"), [
    (37, 45, True),     # 82%: a model covering 88% does this 17% of the time
    (35, 45, False),    # 78%: 4% of the time
    (190, 226, False),  # 84% of the bench's test cards: 4.7% of the time
    (194, 226, True),   # 86%: 18% of the time
])
def test_coverage_below_its_floor_fails_only_beyond_chance(covered: int, items: int,
                                                           passed: bool) -> None:
    gate = coverage_gate(covered / items, items, EvaluateParams())
    assert gate.passed is passed
    assert f"on {items} cards" in gate.rule


def test_a_failed_parity_fails_its_gate() -> None:
    gates = parity_gates([parity(), parity("tensorrt", max_abs_diff=0.01),
                          parity("onnx int8", same_prediction=0.99)])
    assert [(g.name, g.passed) for g in gates] == [("parity_onnx_fp32", True),
                                                   ("parity_tensorrt", False),
                                                   ("parity_onnx_int8", False)]
    assert gates[1].value == 0.01
    assert "max |diff| <= 0.001" in gates[1].rule
    assert "99.9% of 64 images" in gates[1].rule
    assert "(got 99.00%)" in gates[2].rule
    grader = grader_gates(0.9, 0.9, 0.01, 0.1, 0.9, 100, [parity("tensorrt", max_abs_diff=0.01)],
                          EvaluateParams())
    assert [g.name for g in grader if not g.passed] == ["parity_tensorrt"]


def test_detector_gates_need_every_class_recall() -> None:
    metrics = {"map50": 0.7, "recall.crease": 0.95, "recall.scratch": 0.8,
               "recall.dent": NAN, "recall.stain": 0.1}  # stain is not a class of this model
    gates = detector_gates(metrics, ["crease", "scratch", "dent", "whitening"],
                           [parity("detector onnx")], EvaluateParams())
    assert [(g.name, g.passed) for g in gates] == [
        ("recall_crease", True), ("recall_scratch", True), ("recall_dent", False),
        ("recall_whitening", False), ("parity_detector_onnx", True)]
    assert math.isnan(gates[3].value)  # no box of the class: unknown, not zero
    assert gates[0].rule == "recall of crease >= 0.8"


def test_gate_as_dict() -> None:
    assert Gate("ece", False, 0.07, "ECE <= 0.05").as_dict() == {
        "name": "ece", "passed": False, "value": 0.07, "rule": "ECE <= 0.05"}


# report

class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.sources += [value or "" for name, value in attrs if name in ("src", "href")]


def parsed(page: str) -> _Images:
    parser = _Images()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def grader_summary() -> dict:
    """A grader's summary, shaped as `GraderEvaluation.summary()` shapes it (plus what the flow
    adds), from a small panel scored by the real components."""
    rows = pd.DataFrame({
        "grade": [5, 6, 7, 8, 9, 6, 7, 8, 3, 4],
        "grader_1": [5, 6, 7, 8, 9, 6, 7, 8, 3, 4],
        "grader_2": [5, 7, 7, 8, 9, 6, 6, 8, 3, 5],
        "grader_3": [4, 6, 7, 9, 9, 6, 7, 7, 3, 4],
        "corners": [5, 6, 6, 8, 9, 7, 7, 8, 3, 4],
        "camera": ["phone", "studio"] * 5})
    predicted = np.column_stack([[5, 6, 8, 8, 9, 6, 7, 7, 3, 4], [9] * 10,
                                 [5, 6, 6, 8, 8, 7, 7, 8, 3, 4], [5] * 10, [5] * 10])
    agreement = expert_agreement(rows, predicted)
    bar = human_bar(rows[expert_columns(rows)])
    probabilities = np.full((10, 10), 0.02)
    probabilities[np.arange(10), predicted[:, 0] - 1] = 0.82
    conformal = fit_conformal(probabilities, rows["grade"].to_numpy(), 0.8)
    coverage = conformal_report(conformal, probabilities, rows["grade"].to_numpy())
    parities = [parity()]
    gates = grader_gates(agreement.overall["qwk"], bar.metric("qwk"), 0.08, 0.062,
                         float(coverage["coverage"]), 10, parities, EvaluateParams())
    return {
        "model": "card-grader", "version": 3, "stage": "rejected", "data_version": "abc123",
        "run_id": "r1", "report": "runs:/r1/evaluation/report.html", "graphs": {},
        "kind": "grader", "kappa": agreement.overall["qwk"], "human_bar": bar.metric("qwk"),
        "verdict": bar.verdict(agreement.overall["qwk"]), "agreement": agreement.as_dict(),
        "experts": bar.as_dict(), "ece_before": 0.21, "ece_after": 0.08,
        "ece_chance": {"mean": 0.041, "p95": 0.062},
        "temperatures": {"grade": 1.73, "centering": 1.0, "corners": 1.2, "edges": 1.0,
                         "surface": 1.0},
        "coverage": coverage["coverage"], "mean_set_size": coverage["mean_set_size"],
        "conformal": {"target": conformal.coverage, "threshold": conformal.threshold,
                      "calibration_items": conformal.calibration_items, **coverage},
        "gates": [g.as_dict() for g in gates], "parity": [p.as_dict() for p in parities],
        "int8": {"qwk": 0.85, "kappa_drop": 0.031, "same_grade_as_fp32": 0.9,
                 "max_kappa_drop": 0.02, "kept": False},
        "latency": [Latency("pytorch eager", 12.5, 20.25, 310.0).as_dict(),
                    Latency("onnx fp32", 4.25, 6.5, 900.5).as_dict()],
        "tensorrt": "skipped: no <CUDA> device", "items": {"test": 10},
    }


@pytest.fixture(scope="module")
def plots(grader_summary: dict, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("plots")
    bar = human_bar(pd.DataFrame({"grader_1": [5, 6, 7], "grader_2": [5, 7, 7]}))
    return [agreement_png(grader_summary["agreement"]["overall"], bar, out / "agreement.png"),
            conformal_png(grader_summary["conformal"], 0.8, out / "conformal.png")]


def test_report_is_self_contained_with_every_plot_embedded(grader_summary: dict,
                                                           plots: list[Path]) -> None:
    page = evaluation_report(grader_summary, plots, "card-grader version 3: evaluation")
    found = parsed(page)
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    assert "script" not in found.tags and "link" not in found.tags
    assert len(found.sources) == len(plots)
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in found.sources)
    assert [base64.b64decode(src[len(prefix):]) for src in found.sources] == \
        [p.read_bytes() for p in plots]
    assert "agreement.png" in page and "conformal.png" in page


def test_report_of_a_grader_leads_with_the_failed_gates(grader_summary: dict) -> None:
    page = evaluation_report(grader_summary, [], "card-grader <v3>")
    assert "<title>card-grader &lt;v3&gt;</title>" in page
    assert "card-grader <v3>" not in page
    failed = [g["name"] for g in grader_summary["gates"] if not g["passed"]]
    assert "ece" in failed
    total = len(grader_summary["gates"])
    assert (f"{len(failed)} of {total} gates failed: {', '.join(failed)}. "
            f"The version is not promoted.") in page
    assert page.index("<h2>Gates</h2>") < page.index("Agreement with the experts")
    assert '<td>ece</td><td><span class="fail">fail</span></td><td>0.08</td>' in page
    assert '<td>parity_onnx_fp32</td><td><span class="pass">pass</span></td>' in page


def test_report_of_a_grader_shows_the_figures_behind_the_gates(grader_summary: dict) -> None:
    page = evaluation_report(grader_summary, [], "t")
    experts = [s["qwk"] for s in grader_summary["experts"]["per_expert"].values()]
    assert f"The model grades {grader_summary['verdict']} the experts' own agreement" in page
    assert f"QWK {grader_summary['kappa']:.3f} against the panel's consensus" in page
    assert f"scores {min(experts):.3f} to {max(experts):.3f}" in page
    assert f"(mean {grader_summary['human_bar']:.3f})" in page
    for row in ("model vs consensus", "grader_1 vs others", "grader_3 vs others",
                "<td>corners</td>", "<td>phone</td>", "<td>studio</td>"):
        assert row in page
    assert "0.210 before temperature scaling, 0.080 after (temperature 1.73" in page
    conformal = grader_summary["conformal"]
    assert f"Coverage {conformal['coverage']:.1%} on the test split (target 80%)" in page
    assert f"{conformal['calibration_items']} calibration cards" in page
    assert "Not kept: the drop exceeds the bound." in page
    assert "a drop of +0.031 against fp32" in page
    assert "<td>pytorch eager</td><td>12.5</td><td>20.25</td><td>310</td>" in page
    assert "TensorRT: skipped: no &lt;CUDA&gt; device" in page


def test_report_says_so_when_every_gate_passes(grader_summary: dict) -> None:
    passing = {**grader_summary, "gates": [Gate("kappa", True, 0.9, "qwk >= 0.8").as_dict()],
               "int8": {**grader_summary["int8"], "kept": True}}
    page = evaluation_report(passing, [], "t")
    assert "All 1 gates passed." in page
    assert "not promoted" not in page and 'class="fail"' not in page
    assert "Kept." in page


@pytest.fixture
def detector_summary() -> dict:
    """A detector's summary, shaped as `DetectorModelEvaluation.summary()` shapes it."""
    metrics = {"map50": 0.612, "map50_95": 0.301, "precision": 0.7, "recall": 0.66,
               "precision.crease": 0.8, "recall.crease": 0.9,
               "precision.scratch": NAN, "recall.scratch": NAN}
    parities = [parity("detector onnx")]
    gates = detector_gates(metrics, ["crease", "scratch"], parities, EvaluateParams())
    return {"model": "card-detector", "version": 2, "stage": "rejected",
            "report": "runs:/r2/evaluation/report.html", "kind": "detector",
            "metrics": metrics, "classes": ["crease", "scratch"], "images": 24,
            "gates": [g.as_dict() for g in gates], "parity": [p.as_dict() for p in parities],
            "tensorrt": "skipped: no GPU"}


def test_report_of_a_detector(detector_summary: dict, plots: list[Path]) -> None:
    page = evaluation_report(detector_summary, plots[:1], "card-detector version 2")
    assert "mAP50 0.612, mAP50-95 0.301 on 24 images" in page
    assert "<td>crease</td><td>0.8</td><td>0.9</td>" in page
    assert "<td>scratch</td><td>nan</td><td>nan</td>" in page
    assert "1 of 3 gates failed: recall_scratch." in page
    assert "Agreement with the experts" not in page and "int8" not in page
    assert "<td>detector onnx</td>" in page
    assert len(parsed(page).sources) == 1


def test_summary_lines_of_a_grader(grader_summary: dict) -> None:
    lines = summary_lines(grader_summary)
    assert lines[0] == "card-grader version 3: stage rejected"
    assert lines[1] == (f"  QWK {grader_summary['kappa']:.3f} vs the experts' "
                        f"{grader_summary['human_bar']:.3f}: {grader_summary['verdict']} "
                        f"their own agreement")
    assert lines[2] == ("  ECE 0.210 -> 0.080 after temperature 1.73 (a calibrated model: "
                        "0.041, 95% under 0.062)")
    assert lines[3].startswith("  conformal sets: coverage ")
    assert ("  gate ece: FAIL (0.08; ECE after scaling <= 0.05, or within what a calibrated "
            "model shows by chance on 10 cards (95% under 0.062))") in lines
    assert "  latency onnx fp32: p50 4.2 ms, p99 6.5 ms (batch 1), 900.5 images/s (batch 32)" \
        in lines
    assert lines[-2:] == ["  TensorRT: skipped: no <CUDA> device",
                          "  report: runs:/r1/evaluation/report.html"]
    gate_lines = [line for line in lines if line.startswith("  gate ")]
    assert len(gate_lines) == len(grader_summary["gates"])


def test_summary_lines_of_a_detector(detector_summary: dict) -> None:
    lines = summary_lines(detector_summary)
    assert lines[:2] == ["card-detector version 2: stage rejected",
                         "  mAP50 0.612, mAP50-95 0.301"]
    assert "  gate recall_scratch: FAIL (nan; recall of scratch >= 0.8)" in lines
    assert "  gate recall_crease: pass (0.9; recall of crease >= 0.8)" in lines
    assert not any("latency" in line for line in lines)
