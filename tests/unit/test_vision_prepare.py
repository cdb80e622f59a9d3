"""The one preprocessing: a card photographed two degrees off gives the model the same pixels
and geometry, a card larger in the photo than on the canvas is shrunk without aliasing, the
canvas maps back onto the photo, and a phone-sized photo is measured from a smaller copy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from components.cards import synthesize_batch
from components.vision.prepare import prepare_photo

SIZE = (304, 432)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    batch = tmp_path_factory.mktemp("prepare") / "batch"
    synthesize_batch(batch, n=1, seed=5, camera="studio")
    return cv2.imread(str(next((batch / "images").iterdir())))


def _rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, turn, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def test_rotation_by_two_degrees_changes_nothing_the_model_reads(photo: np.ndarray) -> None:
    upright = prepare_photo(photo, rectify=True, size=SIZE)
    turned = prepare_photo(_rotated(photo, 2.0), rectify=True, size=SIZE)

    assert upright.centering is not None and turned.centering is not None
    np.testing.assert_allclose(turned.geometry, upright.geometry, atol=0.05)  # 0.5 pp of share
    inner = (slice(40, -40), slice(40, -40))  # the card, away from its re-sampled outline
    difference = np.abs(turned.pixels[inner].astype(int) - upright.pixels[inner].astype(int))
    assert difference.mean() < 4.0


def test_the_canvas_maps_back_onto_the_photo(photo: np.ndarray) -> None:
    prepared = prepare_photo(photo, rectify=True, size=SIZE)
    # The canvas corners of the card (4% margins) land on the measured outer corners.
    width, height = SIZE
    canvas = np.array([[[0.04 * width, 0.04 * height], [0.96 * width, 0.96 * height]]],
                      np.float32)
    in_photo = cv2.perspectiveTransform(canvas, prepared.to_photo)[0]
    corners = np.array(prepared.centering.outer_corners)
    np.testing.assert_allclose(in_photo, corners[[0, 2]], atol=0.01)


def test_a_large_card_is_shrunk_by_area_averaging_not_aliased(photo: np.ndarray) -> None:
    # Lines one pixel apart across the middle of the card: a plain bilinear warp to half size
    # samples them into stripes; area averaging turns them into an even grey.
    corners = prepare_photo(photo, rectify=True, size=SIZE).centering.outer_corners
    (left, top), (right, bottom) = np.min(corners, axis=0), np.max(corners, axis=0)
    rows = slice(int(top + 0.3 * (bottom - top)), int(top + 0.7 * (bottom - top)))
    columns = slice(int(left + 0.3 * (right - left)), int(left + 0.7 * (right - left)))
    striped = photo.copy()
    striped[rows, columns] = 0
    striped[rows.start:rows.stop:2, columns] = 255

    small = prepare_photo(striped, rectify=True, size=(SIZE[0] // 2, SIZE[1] // 2))
    height, width = small.pixels.shape[:2]
    middle = small.pixels[int(0.4 * height):int(0.6 * height), int(0.4 * width):int(0.6 * width)]
    assert abs(float(middle.mean()) - 127.5) < 15 and middle.std() < 20


def test_a_large_photo_is_measured_on_a_smaller_copy_and_answers_in_its_own_pixels(
        photo: np.ndarray) -> None:
    """A 12-megapixel phone photo is measured from a copy 1280 px long (2.5 s -> 0.1 s): the
    same centering as the photo it was made from, corners and homography in its own pixels."""
    scale = 8
    large = cv2.resize(photo, (photo.shape[1] * scale, photo.shape[0] * scale),
                       interpolation=cv2.INTER_CUBIC)
    original = prepare_photo(photo, rectify=True, size=SIZE)
    prepared = prepare_photo(large, rectify=True, size=SIZE)

    assert prepared.pixels.shape == original.pixels.shape
    np.testing.assert_allclose(prepared.geometry, original.geometry, atol=0.05)  # 0.5 point
    corners = np.array(prepared.centering.outer_corners)
    # within 1.5 px of the original's (the upscaled photo is blurrier), not 1/8 of the way
    np.testing.assert_allclose((corners + 0.5) / scale - 0.5,
                               original.centering.outer_corners, atol=1.5)
    width, height = SIZE
    canvas = np.array([[[0.04 * width, 0.04 * height], [0.96 * width, 0.96 * height]]],
                      np.float32)
    in_photo = cv2.perspectiveTransform(canvas, prepared.to_photo)[0]
    np.testing.assert_allclose(in_photo, corners[[0, 2]], atol=0.05)
