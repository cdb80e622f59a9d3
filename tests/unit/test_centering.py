"""The classical centering measurement agrees with the factory's known truth, is invariant to
small rotations, mirrors with the card, and refuses what is not a card photo."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from components.cards import synthesize_batch
from components.evaluate.centering import centering_accuracy
from components.vision.centering import CenteringError, draw_centering, measure_centering


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("centering") / "studio"
    synthesize_batch(out, n=40, seed=21, camera="studio", workers=1)
    return out


def _photo(batch: Path, index: int) -> np.ndarray:
    photo = cv2.imread(str(sorted((batch / "images").iterdir())[index]))
    assert photo is not None
    return photo


def test_studio_centering_is_within_one_point_of_the_truth(studio: Path) -> None:
    """Product requirement: within 1 pp of the truth on clean studio photos."""
    accuracy = centering_accuracy(studio)
    assert accuracy.cards == 40 and accuracy.failures == 0
    assert accuracy.max_abs <= 1.0
    assert accuracy.within_1pp == 1.0


def test_phone_centering_stays_close(tmp_path: Path) -> None:
    synthesize_batch(tmp_path / "phone", n=30, seed=22, camera="phone", workers=1)
    accuracy = centering_accuracy(tmp_path / "phone")
    assert accuracy.cards == 30 and accuracy.failures == 0
    assert accuracy.mean_abs_lr <= 0.5 and accuracy.mean_abs_tb <= 0.5


@pytest.mark.parametrize("index", [0, 1, 2])
def test_rotating_the_photo_by_two_degrees_changes_nothing(studio: Path, index: int) -> None:
    photo = _photo(studio, index)
    height, width = photo.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), 2.0, 1.0)
    rotated = cv2.warpAffine(photo, turn, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    before, after = measure_centering(photo), measure_centering(rotated)
    assert after.centering_lr == pytest.approx(before.centering_lr, abs=0.5)
    assert after.centering_tb == pytest.approx(before.centering_tb, abs=0.5)


@pytest.mark.parametrize("index", [3, 4, 5])
def test_a_mirrored_card_mirrors_its_centering(studio: Path, index: int) -> None:
    photo = _photo(studio, index)
    before, mirrored = measure_centering(photo), measure_centering(cv2.flip(photo, 1))
    assert mirrored.centering_lr == pytest.approx(100 - before.centering_lr, abs=0.3)
    assert mirrored.centering_tb == pytest.approx(before.centering_tb, abs=0.3)


def test_the_overlay_shows_the_measurement(studio: Path) -> None:
    photo = _photo(studio, 0)
    original = photo.copy()
    measurement = measure_centering(photo)
    overlay = draw_centering(photo, measurement)
    assert overlay.shape == photo.shape and not np.array_equal(overlay, photo)
    assert np.array_equal(photo, original)  # the input is left as it was
    round_trip = json.loads(json.dumps(measurement.as_dict()))
    assert round_trip["centering_lr"] == round(measurement.centering_lr, 2)
    assert round_trip["centering_tb"] == round(measurement.centering_tb, 2)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((448, 320, 3), 128, np.uint8), "no card found"),
        (np.zeros((448, 320), np.uint8), "colour image"),
        (None, "colour image"),
    ],
    ids=["uniform-grey", "greyscale-2d", "none"],
)
def test_what_is_not_a_card_photo_is_refused(image: np.ndarray | None, message: str) -> None:
    with pytest.raises(CenteringError, match=message):
        measure_centering(image)
