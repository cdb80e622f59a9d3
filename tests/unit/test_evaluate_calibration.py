"""Calibration and conformal grade sets on synthetic ordinal outputs whose true distribution is
known: temperature scaling recovers the temperature the grades were drawn at, ECE is about zero
for calibrated probabilities and large for over-confident ones, and conformal sets cover the
grade as often as they promise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from components.evaluate.calibration import (
    _nll,
    chance_ece,
    expected_calibration_error,
    fit_temperature,
    ordinal_probabilities,
    reliability_diagram_png,
)
from components.train.ordinal import predicted_grade
from components.vision.conformal import ConformalGrades, conformal_report, fit_conformal
from components.vision.graph import median_grade

K = 10
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def corn_logits(n: int, seed: int, sharpness: float = 3.0) -> np.ndarray:
    """Cumulative logits (n x K-1) of cards of a latent quality spread over the grades: threshold k
    is passed when the quality is above k + 1/2, more surely the sharper the model."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0.5, K + 0.5, n)
    thresholds = np.arange(1, K) + 0.5
    return sharpness * (quality[:, None] - thresholds[None, :]) + rng.normal(0, 0.5, (n, K - 1))


def draw_grades(probabilities: np.ndarray, seed: int) -> np.ndarray:
    """One grade (1..K) per row, drawn from that row's distribution."""
    u = np.random.default_rng(seed).uniform(size=(len(probabilities), 1))
    return 1 + (np.cumsum(probabilities, axis=1) < u).sum(axis=1).clip(max=K - 1)


# ordinal_probabilities and median_grade

def test_probabilities_of_zero_logits_split_between_the_lowest_and_highest_grade() -> None:
    probabilities = ordinal_probabilities(np.zeros((2, K - 1)), temperature=3.0)
    expected = np.array([0.5] + [0.0] * (K - 2) + [0.5])
    np.testing.assert_allclose(probabilities, np.stack([expected, expected]), atol=1e-12)


def test_temperature_divides_the_logits() -> None:
    logit = np.array([[math.log(3.0)]])  # P(grade > 1) = 3/4 at temperature 1
    np.testing.assert_allclose(ordinal_probabilities(logit), [[0.25, 0.75]])
    above = math.sqrt(3) / (1 + math.sqrt(3))  # sigmoid(log(3) / 2)
    np.testing.assert_allclose(ordinal_probabilities(logit, 2.0), [[1 - above, above]])


def test_probabilities_are_distributions_over_the_grades() -> None:
    probabilities = ordinal_probabilities(corn_logits(500, seed=1), 0.7)
    assert probabilities.shape == (500, K)
    assert probabilities.min() >= 0
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-9)


def test_median_grade_is_the_models_own_prediction() -> None:
    logits = np.random.default_rng(2).normal(0, 3, (2000, K - 1))
    expected = predicted_grade(torch.from_numpy(logits)).numpy()
    np.testing.assert_array_equal(median_grade(ordinal_probabilities(logits)), expected)


def test_median_grade_by_hand_and_for_every_output_at_once() -> None:
    probabilities = np.array([[0.1, 0.3, 0.2, 0.4],    # P(> k): .9 .6 .4 -> grade 3
                              [0.7, 0.1, 0.1, 0.1],    # .3 ... -> grade 1
                              [0.0, 0.0, 0.0, 1.0]])   # grade 4
    assert median_grade(probabilities).tolist() == [3, 1, 4]
    stacked = np.stack([probabilities, probabilities[::-1]], axis=1)  # N x outputs x K
    assert median_grade(stacked).tolist() == [[3, 4], [1, 1], [4, 3]]


# expected_calibration_error

def test_ece_of_calibrated_probabilities_is_about_zero() -> None:
    probabilities = ordinal_probabilities(corn_logits(50_000, seed=3, sharpness=1.0))
    grades = draw_grades(probabilities, seed=4)
    assert expected_calibration_error(probabilities, grades) < 0.02


def test_ece_of_an_over_confident_model_is_large() -> None:
    logits = corn_logits(20_000, seed=5, sharpness=1.0)
    grades = draw_grades(ordinal_probabilities(logits), seed=6)
    assert expected_calibration_error(ordinal_probabilities(logits, 0.3), grades) > 0.15


def test_ece_by_hand_over_two_bins() -> None:
    probabilities = np.array([[0.4, 0.3, 0.2, 0.1],    # bin 0: confidence 0.4
                              [0.4, 0.3, 0.2, 0.1],
                              [0.05, 0.9, 0.05, 0.0],  # bin 1: confidence 0.9
                              [0.05, 0.9, 0.05, 0.0],
                              [0.05, 0.9, 0.05, 0.0]])
    grades = np.array([1, 2, 2, 2, 3])
    # bin 0: accuracy 1/2 against 0.4; bin 1: accuracy 2/3 against 0.9
    expected = (2 * abs(0.5 - 0.4) + 3 * abs(2 / 3 - 0.9)) / 5
    assert expected_calibration_error(probabilities, grades, bins=2) == pytest.approx(expected)
    assert expected == pytest.approx(0.18)


def test_a_certain_correct_answer_falls_in_the_last_bin_and_is_calibrated() -> None:
    probabilities = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert expected_calibration_error(probabilities, np.array([2, 1])) == 0.0
    assert expected_calibration_error(probabilities, np.array([1, 1])) == 0.5


def test_ece_needs_items() -> None:
    with pytest.raises(ValueError, match="no items"):
        expected_calibration_error(np.empty((0, K)), np.array([], int))
    with pytest.raises(ValueError, match="no items"):
        chance_ece(np.empty((0, K)))


def test_a_calibrated_model_on_few_cards_shows_the_ece_chance_predicts() -> None:
    probabilities = ordinal_probabilities(corn_logits(226, seed=7, sharpness=1.0))
    chance = chance_ece(probabilities, draws=300, seed=1)
    measured = [expected_calibration_error(probabilities, draw_grades(probabilities, seed=s))
                for s in range(100)]
    assert 0.03 < chance["mean"] < chance["p95"]  # a few hundred cards: far from zero
    assert abs(np.mean(measured) - chance["mean"]) < 0.01
    assert np.mean(np.array(measured) <= chance["p95"]) > 0.88
    many = ordinal_probabilities(corn_logits(20_000, seed=7, sharpness=1.0))
    assert chance_ece(many, draws=20)["p95"] < 0.02  # and vanishes with many


# fit_temperature

@pytest.fixture(scope="module")
def over_confident() -> tuple[np.ndarray, np.ndarray]:
    """Logits twice as sure as they should be: the grades are drawn at temperature 2."""
    logits = corn_logits(4000, seed=7)
    return logits, draw_grades(ordinal_probabilities(logits, 2.0), seed=8)


def test_fit_temperature_recovers_the_temperature_grades_were_drawn_at(
        over_confident: tuple[np.ndarray, np.ndarray]) -> None:
    logits, grades = over_confident
    assert fit_temperature(logits, grades) == pytest.approx(2.0, rel=0.12)


def test_fit_temperature_of_a_timid_model_is_below_one() -> None:
    logits = corn_logits(4000, seed=9)
    grades = draw_grades(ordinal_probabilities(logits, 0.5), seed=10)
    assert fit_temperature(logits, grades) == pytest.approx(0.5, rel=0.12)


def test_temperature_scaling_lowers_nll_and_ece_of_an_over_confident_model(
        over_confident: tuple[np.ndarray, np.ndarray]) -> None:
    logits, grades = over_confident
    temperature = fit_temperature(logits, grades)
    assert _nll(logits, grades, temperature) < _nll(logits, grades, 1.0) - 0.05
    ece_before = expected_calibration_error(ordinal_probabilities(logits), grades)
    ece_after = expected_calibration_error(ordinal_probabilities(logits, temperature), grades)
    assert ece_before > 0.1
    assert ece_after < min(0.04, ece_before / 3)


def test_fit_temperature_needs_items() -> None:
    with pytest.raises(ValueError, match="no calibration items"):
        fit_temperature(np.empty((0, K - 1)), np.array([], int))


def test_reliability_diagram_is_a_png(tmp_path: Path,
                                      over_confident: tuple[np.ndarray, np.ndarray]) -> None:
    logits, grades = over_confident
    curves = {"before scaling": ordinal_probabilities(logits),
              "after scaling": ordinal_probabilities(logits, 2.0)}
    path = reliability_diagram_png(curves, grades, tmp_path / "plots" / "reliability.png", "t")
    assert path == tmp_path / "plots" / "reliability.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


# conformal grade sets

def contiguous(row: np.ndarray) -> bool:
    members = np.flatnonzero(row)
    return len(members) > 0 and members[-1] - members[0] + 1 == len(members)


def test_conformal_sets_cover_the_grade_as_often_as_promised() -> None:
    probabilities = ordinal_probabilities(corn_logits(4000, seed=11, sharpness=1.5))
    grades = draw_grades(probabilities, seed=12)
    conformal = fit_conformal(probabilities[:2000], grades[:2000], coverage=0.9)

    report = conformal_report(conformal, probabilities[2000:], grades[2000:])

    assert report["coverage"] == pytest.approx(0.9, abs=0.03)
    assert report["coverage"] >= 0.87
    assert report["n"] == 2000
    assert 1 < report["mean_set_size"] < K
    assert 0 < report["needs_review"] <= 1
    sets = conformal.sets(probabilities[2000:])
    assert all(contiguous(row) for row in sets)
    assert conformal.calibration_items == 2000 and conformal.coverage == 0.9


def test_a_higher_target_gives_larger_sets() -> None:
    probabilities = ordinal_probabilities(corn_logits(2000, seed=13, sharpness=1.5))
    grades = draw_grades(probabilities, seed=14)
    sizes = [conformal_report(fit_conformal(probabilities, grades, c), probabilities,
                              grades)["mean_set_size"] for c in (0.5, 0.8, 0.95)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_the_threshold_is_the_finite_sample_quantile() -> None:
    # Nine cards whose grade had probability 0.9, 0.8, ..., 0.1: scores 0.1 ... 0.9.
    # coverage 0.75: rank ceil(10 * 0.75) = 8 (ceil(9 * 0.75) would be 7), the 8th smallest
    # score is 0.8, so the threshold is 0.2.
    p_true = np.linspace(0.9, 0.1, 9)
    probabilities = np.column_stack([p_true, 1 - p_true])
    conformal = fit_conformal(probabilities, np.ones(9, int), coverage=0.75)
    assert conformal.threshold == pytest.approx(0.2)
    assert conformal.as_dict() == {"threshold": conformal.threshold, "coverage": 0.75,
                                   "calibration_items": 9}


def test_sets_are_ranges_holding_the_most_likely_grade() -> None:
    conformal = ConformalGrades(threshold=0.3, coverage=0.9, calibration_items=100)
    probabilities = np.array([[0.45, 0.05, 0.05, 0.45],   # two far modes: the range between
                              [0.25, 0.25, 0.26, 0.24],   # none above: the most likely alone
                              [0.0, 0.6, 0.35, 0.05],     # two neighbours
                              [0.0, 0.0, 0.0, 1.0]])
    assert conformal.sets(probabilities).astype(int).tolist() == [[1, 1, 1, 1],
                                                                  [0, 0, 1, 0],
                                                                  [0, 1, 1, 0],
                                                                  [0, 0, 0, 1]]


def test_sets_do_not_change_the_probabilities_they_read() -> None:
    probabilities = np.array([[0.2, 0.5, 0.3]])
    ConformalGrades(0.9, 0.9, 10).sets(probabilities)
    np.testing.assert_array_equal(probabilities, [[0.2, 0.5, 0.3]])


@pytest.mark.parametrize("n", [1, 5, 8])
def test_too_few_calibration_items_give_every_grade(n: int) -> None:
    # ceil((n + 1) * 0.9) > n for n < 9: no score is a valid quantile.
    probabilities = ordinal_probabilities(corn_logits(n, seed=15))
    conformal = fit_conformal(probabilities, np.full(n, 5), coverage=0.9)
    assert conformal.sets(ordinal_probabilities(corn_logits(50, seed=16))).all()


def test_nine_calibration_items_are_enough_for_ninety_percent() -> None:
    probabilities = ordinal_probabilities(corn_logits(9, seed=17))
    conformal = fit_conformal(probabilities, median_grade(probabilities), coverage=0.9)
    assert not conformal.sets(ordinal_probabilities(corn_logits(50, seed=18))).all()


@pytest.mark.parametrize("coverage", [0.0, 1.0, 1.5, -0.1])
def test_coverage_must_lie_strictly_between_zero_and_one(coverage: float) -> None:
    with pytest.raises(ValueError, match="coverage"):
        fit_conformal(np.full((3, 2), 0.5), np.array([1, 2, 1]), coverage)


def test_conformal_needs_calibration_items() -> None:
    with pytest.raises(ValueError, match="no calibration items"):
        fit_conformal(np.empty((0, K)), np.array([], int))


def test_conformal_report_by_hand() -> None:
    conformal = ConformalGrades(threshold=0.3, coverage=0.9, calibration_items=100)
    probabilities = np.array([[0.7, 0.2, 0.1],    # set {1}
                              [0.4, 0.5, 0.1],    # set {1, 2}
                              [0.1, 0.2, 0.7],    # set {3}
                              [0.1, 0.8, 0.1]])   # set {2}
    grades = np.array([1, 2, 2, 3])               # covered, covered, missed, missed

    report = conformal_report(conformal, probabilities, grades)

    assert report["coverage"] == 0.5
    assert report["mean_set_size"] == pytest.approx(5 / 4)
    assert report["needs_review"] == 0.25
    assert report["n"] == 4
    assert report["per_grade"] == {1: {"coverage": 1.0, "mean_set_size": 1.0, "n": 1.0},
                                   2: {"coverage": 0.5, "mean_set_size": 1.5, "n": 2.0},
                                   3: {"coverage": 0.0, "mean_set_size": 1.0, "n": 1.0}}
