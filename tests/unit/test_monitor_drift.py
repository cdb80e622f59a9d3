"""The drift engine on synthetic windows: a window like the reference is ok, a shifted camera and
shifted embeddings drift and are named, small windows are not judged, kappa is judged only with
enough expert grades, and the most drifted photos come first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from threadpoolctl import threadpool_limits

from components.monitor.drift import DriftError, DriftJudgement, judge_window, kappa_standard_error
from components.monitor.outliers import most_drifted, most_drifted_sheet, property_z_scores
from components.monitor.params import DriftThresholds, MonitorParams
from components.vision.properties import PROPERTY_NAMES

PROPERTIES = {"brightness": (130.0, 20.0), "contrast": (50.0, 8.0), "saturation": (90.0, 15.0),
              "colour_temperature": (1.05, 0.05), "sharpness": (300.0, 60.0),
              "noise": (2.0, 0.4), "width": (3000.0, 200.0), "height": (4000.0, 250.0)}
GRADE_SHARES = np.array([1, 2, 3, 5, 8, 12, 16, 20, 20, 13]) / 100
LATENT, EMBEDDING_SIZE = 4, 64
# Embeddings with structure, as a backbone's have: a few latent factors spread over 64 values.
MIXING = np.random.default_rng(99).normal(0.0, 1.0, (LATENT, EMBEDDING_SIZE))
# The defaults: p-value tests (ks, TVD at 0.01) account for the sample size, and the domain
# classifier's ROC AUC threshold (0.65) is above its noise for windows of 50 photos and more.
QUIET = MonitorParams()
CAMERA_CHANGE = {"brightness": 45.0, "contrast": -12.0, "colour_temperature": 0.15}


def photos(seed: int, n: int, shift: dict[str, float] | None = None,
           embedding_shift: float = 0.0, embeddings: bool = True) -> pd.DataFrame:
    """`n` graded photos: image properties (plus `shift`), grades, set sizes, review flags,
    embeddings (their first latent factor moved by `embedding_shift`) and request ids."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(mean, std, n) + (shift or {}).get(name, 0.0)
                          for name, (mean, std) in PROPERTIES.items()})
    frame["grade"] = rng.choice(np.arange(1, 11), n, p=GRADE_SHARES)
    frame["set_size"] = rng.choice([1, 2, 3], n, p=[0.6, 0.3, 0.1])
    frame["needs_review"] = rng.random(n) < 0.1
    latent = rng.normal(0.0, 1.0, (n, LATENT))
    latent[:, 0] += embedding_shift
    values = latent @ MIXING + rng.normal(0.0, 0.1, (n, EMBEDDING_SIZE))
    frame["embedding"] = list(values) if embeddings else None
    frame["request_id"] = [f"req-{i}" for i in range(n)]
    frame["expert_grade"] = np.nan
    return frame


@pytest.fixture(scope="module", autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """Evidently draws the embeddings with t-SNE, whose OpenMP threads crawl (4 s become 18 s)
    on a busy 2-core machine."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return photos(seed=1, n=300)


@pytest.fixture(scope="module")
def same_world(reference: pd.DataFrame) -> DriftJudgement:
    return judge_window(reference, photos(seed=2, n=200), QUIET, champion_kappa=0.8)


@pytest.fixture(scope="module")
def new_camera(reference: pd.DataFrame) -> DriftJudgement:
    return judge_window(reference, photos(seed=3, n=200, shift=CAMERA_CHANGE,
                                          embedding_shift=2.0), QUIET, champion_kappa=0.8)


def failed_tests(judgement: DriftJudgement) -> list[str]:
    return [t.name for t in judgement.snapshot.tests_results if t.status == "FAIL"]


def test_a_window_like_the_reference_is_ok(same_world: DriftJudgement) -> None:
    assert same_world.status == "ok"
    assert same_world.headline() == "no drift in 200 photos"
    assert [s.name for s in same_world.signals if s.drifted] == []
    assert same_world.signal("embeddings").score == pytest.approx(0.5, abs=0.1)
    assert same_world.signal("brightness").score > 0.01  # a KS p-value: no evidence of change
    assert failed_tests(same_world) == []
    assert len(same_world.snapshot.tests_results) == 13  # 8 properties, share, 1 + 3 more


def test_a_new_camera_drifts_and_names_what_changed(new_camera: DriftJudgement) -> None:
    assert new_camera.status == "drift"
    assert [s.name for s in new_camera.drifted] == ["image_properties", "embeddings"]
    drifted_properties = [s.name for s in new_camera.signals
                          if s.drifted and s.name in PROPERTY_NAMES]
    assert drifted_properties == ["brightness", "contrast", "colour_temperature"]
    assert new_camera.signal("image_properties").score == pytest.approx(3 / 8)
    assert new_camera.signal("brightness").score < 1e-10  # a KS p-value
    assert new_camera.signal("embeddings").score > 0.8
    headline = new_camera.headline()
    assert headline.startswith("drift: brightness ")
    assert ", colour_temperature " in headline and "; embeddings 0." in headline
    assert "> 0.65" in headline


def test_the_evidently_test_suite_agrees_with_the_judgement(new_camera: DriftJudgement) -> None:
    measured_drifts = [s for s in new_camera.signals if s.drifted]
    failed = failed_tests(new_camera)
    assert len(failed) == len(measured_drifts) == 5
    assert any("colour_temperature" in name for name in failed)
    assert any("embeddings" in name for name in failed)


def test_as_dict_is_plain_json(new_camera: DriftJudgement) -> None:
    data = json.loads(json.dumps(new_camera.as_dict()))
    assert data["status"] == "drift"
    assert data["drifted"] == ["image_properties", "embeddings"]
    assert data["window_size"] == 200 and data["reference_size"] == 300
    kappa = next(s for s in data["signals"] if s["name"] == "kappa")
    assert kappa == {"name": "kappa", "kind": "performance", "score": None, "threshold": None,
                     "method": "quadratic kappa", "direction": "below", "drifted": False,
                     "note": "0 expert grades, 30 needed"}


def test_a_small_window_is_not_judged(reference: pd.DataFrame) -> None:
    judgement = judge_window(reference, photos(seed=4, n=12), MonitorParams(), 0.8)
    assert judgement.status == "too_small"
    assert judgement.headline() == "too small to judge: 12 photos, 50 needed"
    assert judgement.signals == [] and judgement.snapshot is None
    assert json.loads(json.dumps(judgement.as_dict()))["window_size"] == 12


def graded_by_experts(seed: int, experts: int, disagreement: int) -> pd.DataFrame:
    """A window without embeddings whose first `experts` photos have an expert grade, off the
    model's by up to `disagreement` grades."""
    window = photos(seed, n=100, embeddings=False)
    rng = np.random.default_rng(seed)
    offsets = rng.integers(-disagreement, disagreement + 1, experts)
    window.loc[: experts - 1, "expert_grade"] = np.clip(window["grade"][:experts] + offsets, 1, 10)
    return window


@pytest.mark.parametrize(("experts", "champion", "note"), [
    (12, 0.9, "12 expert grades, 30 needed"),
    (40, None, "40 expert grades, but no champion kappa to compare with"),
])
def test_kappa_is_not_judged_without_enough_to_compare(
        experts: int, champion: float | None, note: str) -> None:
    judgement = judge_window(photos(seed=5, n=300, embeddings=False),
                             graded_by_experts(6, experts, disagreement=4), QUIET, champion)
    kappa = judgement.signal("kappa")
    assert (kappa.score, kappa.drifted, kappa.note) == (None, False, note)
    assert judgement.signal("embeddings").note == ("not available: embeddings missing in the "
                                                   "reference and the window")


@pytest.mark.parametrize(("disagreement", "drifts"), [(0, False), (4, True)])
def test_kappa_drifts_when_experts_disagree_more_than_the_champion_allows(
        disagreement: int, drifts: bool) -> None:
    window = graded_by_experts(7, 40, disagreement)
    judgement = judge_window(photos(seed=5, n=300, embeddings=False), window, QUIET, 0.9)
    graded = window.dropna(subset=["expert_grade"])
    expected = cohen_kappa_score(graded["grade"], graded["expert_grade"].astype(int),
                                 weights="quadratic")
    kappa = judgement.signal("kappa")
    error = kappa_standard_error(graded["grade"], graded["expert_grade"])
    assert error < 0.2 and (error > 0) is drifts  # perfect agreement has no spread
    assert kappa.score == pytest.approx(expected)
    assert kappa.threshold == pytest.approx(0.85 - 2 * error)  # beyond its sampling error
    assert kappa.drifted is drifts
    assert ("kappa" in [s.name for s in judgement.drifted]) is drifts
    if drifts:
        assert kappa.score < 0.8
        assert f"kappa {kappa.score:.3g} < {kappa.threshold:.3g}" in judgement.headline()


def test_most_drifted_ranks_planted_outliers_first(reference: pd.DataFrame) -> None:
    window = photos(seed=8, n=30)
    window.loc[17, "brightness"] = 400.0
    window.loc[3, "colour_temperature"] = 1.6
    assert most_drifted(reference, window, 2) == ["req-17", "req-3"]
    assert len(most_drifted(reference, window, 100)) == 30
    brightness = reference["brightness"]
    iqr = brightness.quantile(0.75) - brightness.quantile(0.25)
    z = property_z_scores(reference, window)
    assert z.loc[17, "brightness"] == pytest.approx((400.0 - brightness.median()) / iqr)


def test_the_sheet_shows_the_most_drifted_photos_that_have_a_thumbnail(
        reference: pd.DataFrame, tmp_path: Path) -> None:
    window = photos(seed=8, n=30)
    window.loc[17, "brightness"] = 400.0
    window.loc[3, "colour_temperature"] = 1.6
    asked = []

    def thumbnail(request_id: str) -> np.ndarray | None:
        asked.append(request_id)
        return None if request_id == "req-3" else np.full((40, 30, 3), 200, np.uint8)

    sheet = most_drifted_sheet(reference, window, 2, thumbnail, tmp_path / "most_drifted.png")

    assert asked == ["req-17", "req-3"]
    assert sheet == tmp_path / "most_drifted.png" and cv2.imread(str(sheet)) is not None
    assert most_drifted_sheet(reference, window, 2, lambda _: None, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_a_property_the_reference_never_varies_in_scores_infinite_off_it() -> None:
    reference = photos(seed=9, n=50).assign(width=3000.0)
    window = photos(seed=10, n=2).assign(width=[3000.0, 4000.0])
    assert list(property_z_scores(reference, window)["width"]) == [0.0, np.inf]


def test_unjudgeable_inputs_are_named(reference: pd.DataFrame) -> None:
    with pytest.raises(DriftError, match="the window lacks the column"):
        judge_window(reference, photos(seed=11, n=60).drop(columns=["set_size"]), QUIET, None)
    unknown = MonitorParams(drift=DriftThresholds(embedding_method="cosine"))
    with pytest.raises(DriftError, match="unknown embedding drift method 'cosine'"):
        judge_window(reference, photos(seed=11, n=60), unknown, None)
