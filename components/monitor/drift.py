"""The drift engine of `gradeline monitor`: does a window of served photos still look like the
world the champion was trained on, and does it still grade it as well?

    judgement = judge_window(reference, current, params, champion_kappa=0.81)
    judgement.status                       # "drift"
    judgement.headline()    # "drift: brightness 0.84 > 0.1, ...; embeddings 0.97 > 0.55"
    [s.name for s in judgement.drifted]    # ["image_properties", "embeddings"]
    most_drifted(reference, current, k=8)  # request ids of the photos to look at first

Each signal is an Evidently metric carrying an Evidently test, and a signal drifts exactly when
its test fails, so the report's test suite and the judgement cannot disagree:
- image: ValueDrift per image property; the image drifts when more than a share of the
  properties do (DriftedColumnsCount).
- embedding: the backbone's embeddings reduced by a PCA fitted on the reference, then
  EmbeddingsDrift. All four Evidently methods score "higher = more drift": model is the ROC AUC
  of a classifier telling window from reference (0.5: indistinguishable), mmd the squared
  maximum mean discrepancy, ratio the share of components that drift, distance the Euclidean
  distance between the mean components; each drifts above its threshold.
- prediction: the grade distribution, the conformal set sizes, the share sent to review.
- performance: quadratic kappa against the expert grades that arrived, below the champion's.
Distance stattests drift above their threshold, p-value stattests (ks, TVD, ...) below it.
Two samples of one distribution are not at distance 0: 50 to 300 photos against 300 are ~0.1 to
0.2 apart in normed Wasserstein distance by chance, so thresholds must sit above that.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.metric_types import (
    Metric,
    MetricResult,
    SingleValue,
    SingleValueCalculation,
    SingleValueMetric,
)
from evidently.core.report import Context, Snapshot
from evidently.core.tests import GenericTest
from evidently.legacy.tests.base_test import TestStatus
from evidently.metrics import CategoryCount, DriftedColumnsCount, EmbeddingsDrift, ValueDrift
from evidently.metrics.embeddings import (
    DistanceDriftMethod,
    MMDDriftMethod,
    ModelDriftMethod,
    RatioDriftMethod,
)
from evidently.tests import gte, lte
from sklearn.decomposition import PCA
from sklearn.metrics import cohen_kappa_score

from components.monitor.params import MonitorParams
from components.vision.properties import PROPERTY_NAMES

Status = Literal["ok", "drift", "too_small"]
Kind = Literal["image", "embedding", "prediction", "performance", "slo"]
Direction = Literal["above", "below"]

PREDICTION_COLUMNS = ("grade", "set_size", "needs_review")
EMBEDDING_COLUMN = "embedding"
EXPERT_COLUMN = "expert_grade"
# The signals that decide the status; single properties only inform image_properties.
DECIDING_SIGNALS = ("image_properties", "embeddings", "grade", "set_size", "needs_review", "kappa",
                    "error_rate", "p99_latency_ms")
# Evidently's stattests that return a p-value: a window drifts when it is BELOW the threshold.
P_VALUE_METHODS = frozenset({"anderson", "chisquare", "cramer_von_mises", "empirical_mmd", "es",
                             "fisher_exact", "g_test", "ks", "mannw", "t_test", "TVD", "z"})
EMBEDDING_METHODS = {"model": ModelDriftMethod, "mmd": MMDDriftMethod, "ratio": RatioDriftMethod,
                     "distance": DistanceDriftMethod}


class DriftError(ValueError):
    """A reference or window that cannot be judged: a missing column, embeddings of unequal
    length, an unknown method, an Evidently test that could not run."""


@dataclass(frozen=True)
class Signal:
    """One measured difference between the window and the reference, and whether it drifted."""

    name: str
    kind: Kind
    score: float | None
    threshold: float | None
    method: str
    direction: Direction = "above"  # the side of the threshold where the signal drifts
    drifted: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        """The signal as JSON-safe plain data (NaN and missing scores as null)."""
        return {"name": self.name, "kind": self.kind, "score": _json_float(self.score),
                "threshold": _json_float(self.threshold), "method": self.method,
                "direction": self.direction, "drifted": self.drifted, "note": self.note}

    def describe(self) -> str:
        """"brightness 0.84 > 0.1", the way a headline names a drifted signal."""
        relation = ">" if self.direction == "above" else "<"
        return f"{self.name} {self.score:.3g} {relation} {self.threshold:.3g}"

    def passing_test(self) -> GenericTest:
        """The Evidently test that passes while the score shows no drift."""
        return lte(self.threshold) if self.direction == "above" else gte(self.threshold)


@dataclass(frozen=True)
class DriftJudgement:
    """The verdict on one window, the signals it rests on, and the Evidently run behind them."""

    status: Status
    window_size: int
    reference_size: int
    min_window: int
    signals: list[Signal] = field(default_factory=list)
    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)

    @property
    def drifted(self) -> list[Signal]:
        """The drifted signals that decide the status (image_properties, not each property)."""
        return [s for s in self.signals if s.drifted and s.name in DECIDING_SIGNALS]

    def with_signals(self, extra: list[Signal]) -> DriftJudgement:
        """This judgement with `extra` signals (the SLOs) deciding as well: a breach makes a
        judged window drift; a window too small to judge stays so."""
        signals = [*self.signals, *extra]
        drifted = any(s.drifted for s in signals if s.name in DECIDING_SIGNALS)
        status: Status = self.status if self.status == "too_small" or not drifted else "drift"
        return replace(self, status=status, signals=signals)

    def signal(self, name: str) -> Signal:
        """The signal called `name`."""
        return next(s for s in self.signals if s.name == name)

    def headline(self) -> str:
        """One line for an alert or a log: what drifted by how much, or why nothing was judged."""
        if self.status == "too_small":
            return (f"too small to judge: {self.window_size} photos, "
                    f"{self.min_window} needed")
        if self.status == "ok":
            return f"no drift in {self.window_size} photos"
        parts = []
        for decided in self.drifted:
            named = ([s for s in self.signals if s.kind == "image" and s.drifted
                      and s.name in PROPERTY_NAMES] if decided.name == "image_properties"
                     else [decided])
            parts.append(", ".join(s.describe() for s in named))
        return "drift: " + "; ".join(parts)

    def as_dict(self) -> dict[str, object]:
        """The judgement as JSON-safe plain data, without the Evidently snapshot."""
        return {"status": self.status, "headline": self.headline(),
                "window_size": self.window_size, "reference_size": self.reference_size,
                "min_window": self.min_window, "drifted": [s.name for s in self.drifted],
                "signals": [s.as_dict() for s in self.signals]}


class QuadraticKappa(SingleValueMetric):
    """Evidently has no kappa: quadratic Cohen's kappa of `prediction` against `target` on the
    rows where the target is present (expert grades rounded to the grade scale)."""

    prediction: str
    target: str


class QuadraticKappaCalculation(SingleValueCalculation[QuadraticKappa]):
    def calculate(self, context: Context, current_data: Dataset,
                  reference_data: Dataset | None) -> SingleValue:
        frame = current_data.as_dataframe()
        return self.result(quadratic_kappa(frame[self.metric.prediction],
                                           frame[self.metric.target]))

    def display_name(self) -> str:
        return f"Quadratic kappa of {self.metric.prediction} against {self.metric.target}"


def quadratic_kappa(grades: pd.Series, expert_grades: pd.Series) -> float:
    """Quadratic Cohen's kappa between the model's grades and the expert grades that exist."""
    present = expert_grades.notna()
    return float(cohen_kappa_score(grades[present].astype(int),
                                   np.rint(expert_grades[present]).astype(int),
                                   weights="quadratic"))


def kappa_standard_error(grades: pd.Series, expert_grades: pd.Series, rounds: int = 200,
                         seed: int = 0) -> float:
    """The bootstrap standard error of `quadratic_kappa` on these photos (a fixed seed: the
    same window always gets the same verdict)."""
    present = expert_grades.notna().to_numpy()
    model, experts = grades.to_numpy()[present], expert_grades.to_numpy()[present]
    draws = np.random.default_rng(seed).integers(0, len(model), (rounds, len(model)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw of one grade only: kappa NaN
        kappas = [quadratic_kappa(pd.Series(model[draw]), pd.Series(experts[draw]))
                  for draw in draws]
    return float(np.nanstd(kappas))


@dataclass(frozen=True)
class _Check:
    """A signal still to be measured: its Evidently metric and how to read the score back."""

    signal: Signal
    metric: Metric
    read: Callable[[MetricResult], float]


def judge_window(reference: pd.DataFrame, current: pd.DataFrame, params: MonitorParams,
                 champion_kappa: float | None) -> DriftJudgement:
    """Judge the window `current` against the champion's `reference` (see the module doc)."""
    if len(current) < params.min_window:
        return DriftJudgement("too_small", len(current), len(reference), params.min_window)
    if reference.empty:
        raise DriftError("the reference is empty: there is nothing to compare the window with")
    _require_columns(reference, "reference")
    _require_columns(current, "window")
    embeddings, components = _embedding_slot(reference, current, params)
    kappa = _kappa_slot(current, params, champion_kappa)
    slots = [*_image_checks(params), embeddings, *_prediction_checks(reference, params), kappa]
    ref_components, window_components = components or (None, None)
    judged_kappa = isinstance(kappa, _Check)
    # Evidently's summaries divide by the reference's empty expert-grade column (0/0), and
    # nothing reads those shares.
    with np.errstate(invalid="ignore", divide="ignore"):
        snapshot = Report([s.metric for s in slots if isinstance(s, _Check)]).run(
            _dataset(current, window_components, with_expert=judged_kappa),
            _dataset(reference, ref_components, with_expert=judged_kappa))
    signals = [_measured(s, snapshot) if isinstance(s, _Check) else s for s in slots]
    status: Status = "drift" if any(s.drifted for s in signals
                                    if s.name in DECIDING_SIGNALS) else "ok"
    return DriftJudgement(status, len(current), len(reference), params.min_window, signals,
                          snapshot)


def _require_columns(frame: pd.DataFrame, which: str) -> None:
    missing = [c for c in (*PROPERTY_NAMES, *PREDICTION_COLUMNS) if c not in frame.columns]
    if missing:
        raise DriftError(f"the {which} lacks the column(s) {', '.join(missing)}")


def _direction(method: str) -> Direction:
    return "below" if method in P_VALUE_METHODS else "above"


def _image_checks(params: MonitorParams) -> list[_Check]:
    drift = params.drift
    checks = []
    for name in PROPERTY_NAMES:
        signal = Signal(name, "image", None, drift.property_threshold, drift.property_method,
                        _direction(drift.property_method))
        checks.append(_Check(signal, ValueDrift(column=name, method=drift.property_method,
                                                threshold=drift.property_threshold,
                                                tests=[signal.passing_test()]), _value))
    share = Signal("image_properties", "image", None, drift.max_drifted_property_share,
                   f"share of properties drifted by {drift.property_method}")
    checks.append(_Check(share, DriftedColumnsCount(
        columns=list(PROPERTY_NAMES), method=drift.property_method,
        threshold=drift.property_threshold, drift_share=drift.max_drifted_property_share,
        share_tests=[share.passing_test()]), _share))
    return checks


def _prediction_checks(reference: pd.DataFrame, params: MonitorParams) -> list[_Check]:
    drift = params.drift
    grade = Signal("grade", "prediction", None, drift.grade_threshold, drift.grade_method,
                   _direction(drift.grade_method))
    set_size = Signal("set_size", "prediction", None, drift.set_size_threshold,
                      drift.set_size_method, _direction(drift.set_size_method))
    reference_share = float(reference["needs_review"].astype(bool).mean())
    review = Signal("needs_review", "prediction", None, drift.max_needs_review_increase,
                    "increase of the share", note=f"reference share {reference_share:.3f}")
    return [
        _Check(grade, ValueDrift(column="grade", method=drift.grade_method,
                                 threshold=drift.grade_threshold,
                                 tests=[grade.passing_test()]), _value),
        _Check(set_size, ValueDrift(column="set_size", method=drift.set_size_method,
                                    threshold=drift.set_size_threshold,
                                    tests=[set_size.passing_test()]), _value),
        # Evidently measures the window's share: its test bounds the share, the signal the rise.
        _Check(review, CategoryCount(column="needs_review", category=True, share_tests=[
            lte(reference_share + drift.max_needs_review_increase)]),
            lambda result: _share(result) - reference_share),
    ]


def _embedding_slot(reference: pd.DataFrame, current: pd.DataFrame, params: MonitorParams
                    ) -> tuple[_Check | Signal, tuple[pd.DataFrame, pd.DataFrame] | None]:
    """The embeddings check and the reference's and window's embeddings on the reference's
    principal components; or the unjudged signal saying why, and None."""
    drift = params.drift
    signal = Signal("embeddings", "embedding", None, drift.embedding_threshold,
                    drift.embedding_method)
    matrices = {which: _embedding_matrix(frame, which)
                for which, frame in (("reference", reference), ("window", current))}
    lacking = [which for which, matrix in matrices.items() if matrix is None]
    if lacking:
        return replace(signal, note="not available: embeddings missing in the "
                                    + " and the ".join(lacking)), None
    method = EMBEDDING_METHODS.get(drift.embedding_method)
    if method is None:
        raise DriftError(f"unknown embedding drift method {drift.embedding_method!r}, "
                         f"expected one of {', '.join(EMBEDDING_METHODS)}")
    ref, cur = matrices["reference"], matrices["window"]
    if ref.shape[1] != cur.shape[1]:
        raise DriftError(f"reference embeddings have {ref.shape[1]} values, the window's "
                         f"{cur.shape[1]}")
    # Evidently takes one column per dimension: a 1280-column frame would be slow to carry,
    # and the PCA is fitted on the reference alone so that the window cannot bend the axes.
    pca = PCA(n_components=min(params.embedding_components, *ref.shape), random_state=0).fit(ref)
    columns = [f"embedding_pc{i + 1}" for i in range(pca.n_components_)]
    signal = replace(signal, note=f"{len(columns)} principal components of the reference")
    check = _Check(signal, EmbeddingsDrift(embeddings_name="embeddings",
                                           drift_method=method(threshold=drift.embedding_threshold),
                                           tests=[signal.passing_test()]), _value)
    return check, (pd.DataFrame(pca.transform(ref), columns=columns),
                   pd.DataFrame(pca.transform(cur), columns=columns))


def _embedding_matrix(frame: pd.DataFrame, which: str) -> np.ndarray | None:
    """The rows' embeddings as one matrix; None when any row has none."""
    if EMBEDDING_COLUMN not in frame.columns or frame[EMBEDDING_COLUMN].isna().any():
        return None
    try:
        return np.stack([np.asarray(cell, dtype=float) for cell in frame[EMBEDDING_COLUMN]])
    except ValueError as error:
        raise DriftError(f"the {which}'s embeddings are not all of one length: {error}") from None


def _kappa_slot(current: pd.DataFrame, params: MonitorParams, champion_kappa: float | None
                ) -> _Check | Signal:
    """The kappa check when it can be judged; otherwise the signal saying why not."""
    experts = int(current[EXPERT_COLUMN].notna().sum()) if EXPERT_COLUMN in current else 0
    signal = Signal("kappa", "performance", None, None, "quadratic kappa", "below")
    if experts < params.min_expert_items:
        return replace(signal, note=f"{experts} expert grades, {params.min_expert_items} needed")
    if champion_kappa is None:
        return replace(signal, note=f"{experts} expert grades, but no champion kappa to "
                                    "compare with")
    # A window's kappa on tens of photos varies by about 0.1 from sample to sample: it drifts
    # only when it is below the allowed drop by more than twice its standard error.
    error = kappa_standard_error(current["grade"], current[EXPERT_COLUMN])
    signal = replace(signal, threshold=champion_kappa - params.max_kappa_drop - 2 * error,
                     note=f"{experts} expert grades; champion {champion_kappa:.3f} "
                          f"may drop {params.max_kappa_drop} + 2 x standard error {error:.3f}")
    return _Check(signal, QuadraticKappa(prediction="grade", target=EXPERT_COLUMN,
                                         tests=[signal.passing_test()]), _value)


def _dataset(frame: pd.DataFrame, components: pd.DataFrame | None, with_expert: bool) -> Dataset:
    expert = [EXPERT_COLUMN] if with_expert else []
    # reindex gives the reference, which has no expert grades, a column of NaN: Evidently wants
    # the same columns on both sides.
    data = frame.reindex(columns=[*PROPERTY_NAMES, "grade", "set_size", *expert]).reset_index(
        drop=True).assign(needs_review=frame["needs_review"].astype(bool).to_numpy())
    numerical = [*PROPERTY_NAMES, "set_size", *expert]
    embeddings = None
    if components is not None:
        data = pd.concat([data, components], axis=1)
        numerical += list(components.columns)
        embeddings = {"embeddings": list(components.columns)}
    definition = DataDefinition(numerical_columns=numerical,
                                categorical_columns=["grade", "needs_review"],
                                embeddings=embeddings)
    # The share of infinite values Evidently computes for the reference's empty expert grades
    # is 0/0, and nothing reads it.
    with np.errstate(invalid="ignore"):
        return Dataset.from_pandas(data, data_definition=definition)


def _value(result: MetricResult) -> float:
    return result.value


def _share(result: MetricResult) -> float:
    return result.share.value


def _measured(check: _Check, snapshot: Snapshot) -> Signal:
    """The check's signal with its score and verdict read from the snapshot."""
    result = snapshot.metric_results[check.metric.get_metric_id()]
    failed = False
    for test in result.tests:
        if test.status not in (TestStatus.SUCCESS, TestStatus.FAIL):
            raise DriftError(f"Evidently test {test.name!r} ended {test.status.value}: "
                             f"{test.description}")
        failed = failed or test.status == TestStatus.FAIL
    return replace(check.signal, score=float(check.read(result)), drifted=failed)


def _json_float(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
