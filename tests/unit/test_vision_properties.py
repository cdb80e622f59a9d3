"""Image properties move the way drift monitoring expects: brighter, noisier, blurrier, bluer."""

import cv2
import numpy as np
import pytest

from components.vision.properties import PROPERTY_NAMES, image_properties


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A textured 384 x 512 BGR image (measured at full size): smooth gradients with
    sharp-edged shapes on them."""
    height, width = 384, 512
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs * 200 // width + 30, ys * 200 // height + 30,
                      (xs + ys) * 100 // (width + height) + 80], axis=-1).astype(np.uint8)
    for i in range(10):
        cv2.rectangle(image, (40 * i + 10, 30 * i + 10), (40 * i + 80, 30 * i + 60),
                      (20 * i, 250 - 20 * i, 120), -1)
    return image


def test_every_property_is_reported_in_order(photo: np.ndarray) -> None:
    props = image_properties(photo)
    assert tuple(props) == PROPERTY_NAMES
    assert all(isinstance(value, float) for value in props.values())
    assert (props["width"], props["height"]) == (512.0, 384.0)


def test_a_brighter_image_has_higher_brightness(photo: np.ndarray) -> None:
    brighter = cv2.convertScaleAbs(photo, alpha=1.0, beta=40)
    assert image_properties(brighter)["brightness"] > image_properties(photo)["brightness"] + 30


def test_added_noise_raises_the_noise_estimate_near_its_sigma(photo: np.ndarray) -> None:
    noise = np.random.default_rng(0).normal(0, 8, photo.shape[:2])[:, :, None]  # grey noise
    noisy = np.clip(photo + noise, 0, 255).astype(np.uint8)

    clean, rough = image_properties(photo)["noise"], image_properties(noisy)["noise"]

    assert clean < 1.5
    assert 6.5 < rough < 9.5  # close to the sigma of 8


def test_a_blurred_image_is_less_sharp(photo: np.ndarray) -> None:
    blurred = cv2.GaussianBlur(photo, (0, 0), 3)
    assert image_properties(blurred)["sharpness"] < image_properties(photo)["sharpness"] / 4


def test_a_bluer_image_has_a_cooler_index(photo: np.ndarray) -> None:
    bluer = photo.copy()
    bluer[:, :, 0] = cv2.add(bluer[:, :, 0], 60)  # channel 0 is blue in BGR
    assert image_properties(bluer)["colour_temperature"] < image_properties(photo)[
        "colour_temperature"]


def test_a_grey_image_is_neutral_and_unsaturated() -> None:
    grey = np.full((100, 100, 3), 128, dtype=np.uint8)
    props = image_properties(grey)
    assert props["saturation"] == 0.0 and props["colour_temperature"] == 1.0
    assert props["noise"] == 0.0 and props["sharpness"] == 0.0


def test_a_large_photo_is_measured_small_but_reports_its_own_size() -> None:
    large = np.random.default_rng(1).integers(0, 255, (2000, 3000, 3), dtype=np.uint8)
    props = image_properties(large)
    assert (props["width"], props["height"]) == (3000.0, 2000.0)
    assert props["brightness"] == pytest.approx(127, abs=3)


def test_anything_but_a_bgr_uint8_image_is_refused() -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        image_properties(np.zeros((10, 10), dtype=np.uint8))
