"""Promotion gates: each evaluation result checked against its threshold from params.yaml.

    gates = grader_gates(evaluation, params)
    [g.name for g in gates if not g.passed]     # empty: the candidate may go on to promotion

A gate is a named pass/fail with the value it judged and the rule in words, which is what a
reviewer reads on the model version (`gate.<name>` tags, the value as a metric).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from components.evaluate.params import EvaluateParams
from components.evaluate.parity import Parity


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    value: float
    rule: str  # the threshold in words, e.g. "qwk >= 0.871 (human bar 0.891 - 0.02)"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def at_least(name: str, value: float, threshold: float, rule: str) -> Gate:
    """A gate passed when value >= threshold; NaN (nothing to judge) fails."""
    return Gate(name, bool(not math.isnan(value) and value >= threshold), float(value), rule)


def at_most(name: str, value: float, threshold: float, rule: str) -> Gate:
    """A gate passed when value <= threshold; NaN (nothing to judge) fails."""
    return Gate(name, bool(not math.isnan(value) and value <= threshold), float(value), rule)


def parity_gates(parities: Sequence[Parity]) -> list[Gate]:
    """One gate per exported backend: its largest output difference within the limits, and
    the same predictions on enough images (both, or the gate fails)."""
    return [Gate(f"parity_{p.backend.replace(' ', '_')}", p.passed, p.max_abs_diff,
                 f"max |diff| <= {p.limits.max_abs_diff:g} and same prediction on >= "
                 f"{p.limits.same_prediction:.1%} of {p.images} images (got "
                 f"{p.same_prediction:.2%})") for p in parities]


def grader_gates(qwk: float, human_bar_qwk: float, ece_after: float, coverage: float,
                 parities: Sequence[Parity], params: EvaluateParams) -> list[Gate]:
    """The grader's gates: agreement with the experts, calibration, coverage and parity."""
    gates = params.gates
    kappa_floor = human_bar_qwk - gates.kappa_margin
    coverage_floor = params.coverage - gates.coverage_margin
    return [
        at_least("kappa", qwk, kappa_floor, f"qwk >= {kappa_floor:.3f} (human bar "
                 f"{human_bar_qwk:.3f} - {gates.kappa_margin:g})"),
        at_most("ece", ece_after, gates.max_ece, f"ECE after scaling <= {gates.max_ece:g}"),
        at_least("coverage", coverage, coverage_floor, f"conformal coverage >= "
                 f"{coverage_floor:.2f} (target {params.coverage:g} - {gates.coverage_margin:g})"),
        *parity_gates(parities),
    ]


def detector_gates(metrics: dict[str, float], classes: Sequence[str],
                   parities: Sequence[Parity], params: EvaluateParams) -> list[Gate]:
    """Recall of every defect class (a class with no box in the test split cannot pass: its
    recall is unknown) and the export's parity."""
    floor = params.gates.min_detector_recall
    return [*(at_least(f"recall_{name}", metrics.get(f"recall.{name}", math.nan), floor,
                       f"recall of {name} >= {floor:g}") for name in classes),
            *parity_gates(parities)]
