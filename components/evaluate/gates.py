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

from scipy.stats import binom

from components.evaluate.params import EvaluateParams
from components.evaluate.parity import Parity

# Coverage below its floor fails only when a model meeting the floor would score that low this
# rarely: on the demo's 45 test cards, one covering exactly 90% falls below 88% 29% of the
# time.
COVERAGE_ALPHA = 0.05


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


def coverage_gate(coverage: float, items: int, params: EvaluateParams) -> Gate:
    """Conformal coverage of `items` test cards at least the target minus the margin, or below
    it by no more than chance: a one-sided binomial test at COVERAGE_ALPHA."""
    floor = params.coverage - params.gates.coverage_margin
    rule = f"conformal coverage >= {floor:.2f} (target {params.coverage:g} - " \
        f"{params.gates.coverage_margin:g})"
    if math.isnan(coverage) or items < 1:
        return Gate("coverage", False, float(coverage), rule)
    chance = float(binom.cdf(round(coverage * items), items, floor))
    return Gate("coverage", coverage >= floor or chance >= COVERAGE_ALPHA, float(coverage),
                f"{rule}, or below it by chance on {items} cards (binomial p {chance:.2f} >= "
                f"{COVERAGE_ALPHA:g})")


def ece_gate(ece_after: float, chance_p95: float, items: int, params: EvaluateParams) -> Gate:
    """ECE after scaling at most the limit, or no more than a perfectly calibrated model with
    the same probabilities shows 95% of the time on as many cards (`calibration.chance_ece`):
    on 226 test cards that floor was 0.068 on average, above the 0.05 limit, so the limit alone
    failed calibrated models."""
    limit = params.gates.max_ece
    rule = f"ECE after scaling <= {limit:g}"
    if math.isnan(chance_p95):
        return at_most("ece", ece_after, limit, rule)
    return at_most("ece", ece_after, max(limit, chance_p95),
                   f"{rule}, or within what a calibrated model shows by chance on {items} cards "
                   f"(95% under {chance_p95:.3f})")


def grader_gates(qwk: float, human_bar_qwk: float, ece_after: float, ece_chance_p95: float,
                 coverage: float, test_items: int, parities: Sequence[Parity],
                 params: EvaluateParams) -> list[Gate]:
    """The grader's gates: agreement with the experts, calibration, coverage (both judged on
    `test_items` test cards) and parity."""
    gates = params.gates
    kappa_floor = human_bar_qwk - gates.kappa_margin
    return [
        at_least("kappa", qwk, kappa_floor, f"qwk >= {kappa_floor:.3f} (human bar "
                 f"{human_bar_qwk:.3f} - {gates.kappa_margin:g})"),
        ece_gate(ece_after, ece_chance_p95, test_items, params),
        coverage_gate(coverage, test_items, params),
        *parity_gates(parities),
    ]


def baseline_gate(qwk: float, baseline: float, margin: float = 0.0) -> Gate:
    """The grader's QWK above the simpler model's (components/evaluate/baseline.py) on the
    same test cards, less `margin` (`evaluate.gates.baseline_margin`)."""
    less = f" - {margin:g}" if margin else ""
    return Gate("baseline", bool(not math.isnan(qwk) and qwk > baseline - margin), float(qwk),
                f"qwk > {baseline:.3f}{less}, a linear model's on lighting, sharpness and "
                f"centering")


def detector_gates(metrics: dict[str, float], classes: Sequence[str],
                   parities: Sequence[Parity], params: EvaluateParams) -> list[Gate]:
    """Recall of every defect class (a class with no box in the test split cannot pass: its
    recall is unknown) and the export's parity."""
    floor = params.gates.min_detector_recall
    return [*(at_least(f"recall_{name}", metrics.get(f"recall.{name}", math.nan), floor,
                       f"recall of {name} >= {floor:g}") for name in classes),
            *parity_gates(parities)]
