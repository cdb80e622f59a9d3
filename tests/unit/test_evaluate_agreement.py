"""Agreement with the expert panel: the model against the consensus (overall, per subgrade, per
camera) and the human bar, each expert against the consensus of the others, checked on panels
small enough to score by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from components.evaluate.agreement import (
    AgreementError,
    HumanBar,
    expert_agreement,
    expert_columns,
    human_bar,
)

GRADES = list(range(1, 11))


def qwk(expected: list[int], predicted: list[int]) -> float:
    return float(cohen_kappa_score(expected, predicted, labels=GRADES, weights="quadratic"))


def test_expert_columns_are_the_numbered_grader_columns_in_panel_order() -> None:
    rows = pd.DataFrame(columns=["grade", "grader_2", "camera", "grader_10", "grader_1",
                                 "grader_x", "grader_", "grader_3_old", "grader_3"])
    assert expert_columns(rows) == ["grader_1", "grader_2", "grader_3", "grader_10"]


def test_expert_columns_of_a_manifest_without_a_panel_are_empty() -> None:
    assert expert_columns(pd.DataFrame(columns=["grade", "camera"])) == []


def test_a_split_pair_gives_its_consensus_rounded_half_to_even() -> None:
    # grader_3 sits where the others' mean rounds half to even: 7 and 8 give 8, 8 and 9 give 8.
    # Rounding half up (9) or down (7) would make it disagree on one item of the two.
    panel = pd.DataFrame({"grader_1": [7, 8], "grader_2": [8, 9], "grader_3": [8, 8]})
    bar = human_bar(panel)
    assert bar.per_expert["grader_3"]["exact"] == 1.0
    assert bar.per_expert["grader_3"]["mae"] == 0.0


def test_human_bar_scores_each_expert_against_the_consensus_of_the_others() -> None:
    panel = pd.DataFrame({"grader_1": [7, 8, 5, 9, 3, 6, 2],
                          "grader_2": [8, 9, 5, 9, 4, 6, 2],
                          "grader_3": [8, 8, 6, 10, 3, 7, 2]})
    # The others' consensus, worked out by hand (halves to even).
    consensus = {"grader_1": [8, 8, 6, 10, 4, 6, 2],   # from grader_2 and grader_3
                 "grader_2": [8, 8, 6, 10, 3, 6, 2],   # from grader_1 and grader_3
                 "grader_3": [8, 8, 5, 9, 4, 6, 2]}    # from grader_1 and grader_2
    expected = {"grader_1": {"exact": 3 / 7, "mae": 4 / 7},
                "grader_2": {"exact": 3 / 7, "mae": 4 / 7},
                "grader_3": {"exact": 3 / 7, "mae": 4 / 7}}

    bar = human_bar(panel)

    assert list(bar.per_expert) == ["grader_1", "grader_2", "grader_3"]
    for name, scores in bar.per_expert.items():
        assert scores["exact"] == pytest.approx(expected[name]["exact"])
        assert scores["mae"] == pytest.approx(expected[name]["mae"])
        assert scores["within_one"] == 1.0
        assert scores["n"] == 7
        assert scores["qwk"] == pytest.approx(qwk(consensus[name], panel[name].tolist()))
    assert bar.metric("qwk") == pytest.approx(
        np.mean([qwk(consensus[n], panel[n].tolist()) for n in panel.columns]))


def test_human_bar_separates_a_careless_expert_from_careful_ones() -> None:
    truth = np.array([2, 3, 4, 5, 6, 7, 8, 9, 5, 6, 7, 4])
    careless = np.array([9, 2, 8, 3, 9, 2, 4, 3, 9, 2, 3, 9])
    panel = pd.DataFrame({"grader_1": truth, "grader_2": truth, "grader_3": careless})

    bar = human_bar(panel)

    # Each careful expert's consensus of the others is the mean of truth and noise; the
    # careless one is scored against the careful pair, who agree, so its consensus is truth.
    assert bar.per_expert["grader_3"]["qwk"] == pytest.approx(qwk(truth, careless))
    assert bar.per_expert["grader_3"]["qwk"] < 0.2
    assert min(bar.per_expert[n]["qwk"] for n in ("grader_1", "grader_2")) > \
        bar.per_expert["grader_3"]["qwk"]


def test_two_experts_are_each_scored_against_the_other() -> None:
    panel = pd.DataFrame({"a": [3, 4, 5, 9], "b": [3, 5, 5, 7]})
    bar = human_bar(panel)
    assert bar.per_expert["a"]["exact"] == bar.per_expert["b"]["exact"] == 0.5
    assert bar.per_expert["a"]["mae"] == bar.per_expert["b"]["mae"] == 0.75


def test_four_experts_take_the_median_of_the_other_three() -> None:
    panel = pd.DataFrame({"grader_1": [5, 5], "grader_2": [5, 9], "grader_3": [6, 9],
                          "grader_4": [1, 9]})
    bar = human_bar(panel)
    # grader_4 against the median of the others: 5 and 9.
    assert bar.per_expert["grader_4"]["mae"] == pytest.approx((4 + 0) / 2)


def test_a_panel_of_one_expert_has_no_human_bar() -> None:
    with pytest.raises(AgreementError, match="two experts"):
        human_bar(pd.DataFrame({"grader_1": [5, 6]}))


def scores(value: float) -> dict[str, float]:
    return {"qwk": value, "mae": 1 - value, "exact": value / 2, "within_one": value, "n": 10.0}


@pytest.mark.parametrize(("model_qwk", "verdict"), [
    (0.95, "above"), (0.9, "within"), (0.85, "within"), (0.8, "within"), (0.79, "below"),
])
def test_verdict_places_the_model_against_the_best_and_the_worst_expert(
        model_qwk: float, verdict: str) -> None:
    bar = HumanBar({"grader_1": scores(0.8), "grader_2": scores(0.9), "grader_3": scores(0.85)})
    assert bar.verdict(model_qwk) == verdict


def test_human_bar_as_dict_gives_the_experts_means() -> None:
    bar = HumanBar({"grader_1": scores(0.8), "grader_2": scores(0.9)})
    means = bar.as_dict()["mean"]
    assert means == pytest.approx({"qwk": 0.85, "mae": 0.15, "exact": 0.425,
                                   "within_one": 0.85})
    assert bar.as_dict()["per_expert"] == bar.per_expert


@pytest.fixture
def rows() -> pd.DataFrame:
    # A shuffled, non-default index: the per-camera slices must be taken by position.
    return pd.DataFrame({"grade": [5, 6, 7, 8],
                         "centering": [9, 9, 9, 9],
                         "corners": [5, 5, 5, 5],
                         "camera": ["phone", "studio", "phone", "studio"]},
                        index=[40, 10, 30, 20])


def predictions(grade: list[int], centering: list[int], corners: list[int]) -> np.ndarray:
    other = [1, 1, 1, 1]  # edges and surface: unlabelled in the rows, so never scored
    return np.array([grade, centering, corners, other, other]).T


def test_expert_agreement_scores_overall_per_subgrade_and_per_camera(
        rows: pd.DataFrame) -> None:
    predicted = predictions(grade=[5, 8, 7, 6], centering=[9, 9, 8, 9],
                            corners=[5, 5, 6, 3])

    report = expert_agreement(rows, predicted)

    assert report.overall["exact"] == 0.5
    assert report.overall["mae"] == pytest.approx((0 + 2 + 0 + 2) / 4)
    assert report.overall["within_one"] == 0.5
    assert report.overall["qwk"] == pytest.approx(qwk([5, 6, 7, 8], [5, 8, 7, 6]))
    assert set(report.per_subgrade) == {"centering", "corners"}
    assert report.per_subgrade["centering"]["exact"] == 0.75
    assert report.per_subgrade["corners"]["mae"] == pytest.approx((0 + 0 + 1 + 2) / 4)
    assert set(report.per_camera) == {"phone", "studio"}
    assert report.per_camera["phone"]["exact"] == 1.0  # grades 5, 7 predicted 5, 7
    assert report.per_camera["studio"]["exact"] == 0.0  # grades 6, 8 predicted 8, 6
    assert report.per_camera["studio"]["mae"] == 2.0
    assert report.per_camera["studio"]["n"] == 2


def test_expert_agreement_without_cameras_or_subgrades_scores_the_grade_only(
        rows: pd.DataFrame) -> None:
    report = expert_agreement(rows[["grade"]], np.array([[5], [6], [7], [9]]), ("grade",))
    assert report.overall["exact"] == 0.75
    assert report.per_subgrade == {} and report.per_camera == {}
    assert report.as_dict()["overall"] == report.overall


def test_expert_agreement_reads_the_grade_column_named_by_targets(rows: pd.DataFrame) -> None:
    predicted = np.array([[9, 5], [9, 6], [9, 7], [9, 8]])  # the grade is the second column
    report = expert_agreement(rows, predicted, ("corners", "grade"))
    assert report.overall["exact"] == 1.0
    assert report.per_subgrade["corners"]["exact"] == 0.0


def test_a_prediction_per_row_is_required(rows: pd.DataFrame) -> None:
    with pytest.raises(AgreementError, match="4 rows but 3 predictions"):
        expert_agreement(rows, predictions([5, 6, 7, 8], [9] * 4, [5] * 4)[:3])
