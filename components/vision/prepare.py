"""The one preprocessing of images for training and serving, so the two cannot drift apart.

    prepared = prepare_photo(cv2.imread("card.jpg"), rectify=True, size=(192, 256))
    prepared.pixels      # the card alone, deskewed to 192 x 256, RGB uint8
    prepared.geometry    # the classical centering measurement as model inputs (see below)

Cards are graded on the card, not on the photo: the centering measurement already finds the
card's four outer corners, so the card is warped onto an upright canvas with a thin margin
(wear cuts inward, so the margin keeps worn corners and edges in view). Every card then fills
the same pixels whatever the camera's angle and distance, and a defect sits where the model
expects it. A photo where no card is found is resized whole and says so in its geometry.

Geometry features, four floats: [found, (lr - 50) / 10, (tb - 50) / 10, (worst - 50) / 10] with
`worst` the larger border's share on the worse axis, the number the centering rubric reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from components.parallel import map_chunks
from components.vision.centering import (
    CenteringError,
    CenteringMeasurement,
    measure_centering,
    worst_side_share,
)

GEOMETRY_FEATURES = 4
CARD_MARGIN = 0.04  # share of the canvas on each side outside the card's outer edge
_CHUNK = 32
# A card up to this much larger in the photo than on the canvas is warped in one step.
_SHRINK_TOLERANCE = 0.1
# Photos are measured and warped from a copy at most this long: a card filling 60% of it still
# spans more pixels than the centering's own 6 px/mm rectification (528 px tall), and a
# 12-megapixel photo took 2.5 s to prepare at full size against 0.1 s from such a copy.
_WORKING_SIDE = 1280


@dataclass(frozen=True)
class PreparedImage:
    """Model-ready pixels and geometry of one photo; `centering` is None when no card was found
    or the task does not rectify."""

    pixels: np.ndarray  # RGB uint8, height x width x 3
    geometry: np.ndarray  # float32, GEOMETRY_FEATURES
    centering: CenteringMeasurement | None
    to_photo: np.ndarray  # 3 x 3 homography from the pixels' coordinates to the photo's


def geometry_features(centering: CenteringMeasurement | None) -> np.ndarray:
    """The centering measurement as the grade heads read it; zeros when there is none."""
    if centering is None:
        return np.zeros(GEOMETRY_FEATURES, np.float32)
    lr, tb = centering.centering_lr, centering.centering_tb
    return np.array([1.0, (lr - 50) / 10, (tb - 50) / 10, (worst_side_share(lr, tb) - 50) / 10],
                    np.float32)


def _card_corners(canvas: tuple[int, int]) -> np.ndarray:
    """Where the card's outer corners (TL, TR, BR, BL) lie on a rectified canvas (w, h)."""
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    return (unit * (1 - 2 * CARD_MARGIN) + CARD_MARGIN) * np.array(canvas, np.float32)


def _rectified(image: np.ndarray, corners: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp the card whose outer corners (TL, TR, BR, BL) are given onto a size canvas.

    `warpPerspective` only interpolates (it treats INTER_AREA as bilinear), so shrinking in one
    warp aliases lines a pixel wide; a card larger in the photo than on the canvas is warped at
    its own scale first and then shrunk by area averaging."""
    width, height = size
    card_height = max(np.linalg.norm(corners[3] - corners[0]),
                      np.linalg.norm(corners[2] - corners[1]))
    shrink = card_height / (height * (1 - 2 * CARD_MARGIN))
    upscale = max(1, int(np.ceil(shrink - _SHRINK_TOLERANCE)))
    canvas = (width * upscale, height * upscale)
    warp = cv2.getPerspectiveTransform(corners.astype(np.float32), _card_corners(canvas))
    card = cv2.warpPerspective(image, warp, canvas, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    return card if upscale == 1 else cv2.resize(card, size, interpolation=cv2.INTER_AREA)


def _working_copy(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The photo shrunk by area averaging until its longer side is `_WORKING_SIDE` (or twice
    the canvas's longer side, if more): a phone's 12 megapixels would otherwise be measured
    pixel by pixel. Also the factor it shrank by; a smaller photo comes back as it is, with 1."""
    height, width = image.shape[:2]
    factor = max(width, height) / max(_WORKING_SIDE, 2 * max(size))
    if factor <= 1:
        return image, 1.0
    shrunk = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(image, shrunk, interpolation=cv2.INTER_AREA), factor


def _in_photo(centering: CenteringMeasurement, factor: float) -> CenteringMeasurement:
    """A measurement made on a copy shrunk by `factor`, its corners in the photo's pixels."""
    if factor == 1:
        return centering

    def scaled(corners: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        return tuple(((x + 0.5) * factor - 0.5, (y + 0.5) * factor - 0.5) for x, y in corners)

    return replace(centering, outer_corners=scaled(centering.outer_corners),
                   inner_corners=scaled(centering.inner_corners))


def prepare_photo(image: np.ndarray, rectify: bool, size: tuple[int, int]) -> PreparedImage:
    """Pixels and geometry of one BGR photo; `size` is (width, height) of the model input.
    Large photos are measured and warped from a smaller copy (`_working_copy`); the homography
    and the corners still refer to the photo's pixels."""
    working, factor = _working_copy(image, size)
    to_working = np.diag([1 / factor, 1 / factor, 1.0])
    to_working[:2, 2] = 0.5 / factor - 0.5  # pixel centres: (x + 0.5) / factor - 0.5
    centering = None
    if rectify:
        try:
            centering = measure_centering(working)
        except CenteringError:
            centering = None
    if centering is None:
        pixels = cv2.resize(working, size, interpolation=cv2.INTER_AREA)
        height, width = working.shape[:2]
        to_working_photo = np.diag([width / size[0], height / size[1], 1.0])
    else:
        corners = np.array(centering.outer_corners, np.float32)
        pixels = _rectified(working, corners, size)
        to_working_photo = cv2.getPerspectiveTransform(_card_corners(size), corners)
    to_photo = np.linalg.inv(to_working) @ to_working_photo
    return PreparedImage(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), geometry_features(centering),
                         None if centering is None else _in_photo(centering, factor), to_photo)


class PreparedImages(NamedTuple):
    """Many photos prepared: pixels N x H x W x 3 (RGB uint8), geometry N x 4 and the
    homographies N x 3 x 3 from each canvas to its photo (what maps labels onto the canvas)."""

    pixels: np.ndarray
    geometry: np.ndarray
    to_photo: np.ndarray


def _prepare_chunk(args: tuple[list[str], bool, tuple[int, int]]) -> PreparedImages:
    paths, rectify, size = args
    prepared = []
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path} is not a readable image")
        prepared.append(prepare_photo(image, rectify, size))
    return PreparedImages(*(np.stack([getattr(p, field) for p in prepared])
                            for field in PreparedImages._fields))


def prepare_images(
    paths: Sequence[Path],
    rectify: bool,
    size: tuple[int, int],
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PreparedImages:
    """Pixels, geometry and canvas-to-photo homographies of many photos, on every core."""
    if not paths:
        raise ValueError("no images to prepare")
    chunks = [([str(p) for p in paths[i:i + _CHUNK]], rectify, size)
              for i in range(0, len(paths), _CHUNK)]
    parts = []
    for part in map_chunks(_prepare_chunk, chunks, workers):
        parts.append(part)
        if on_progress is not None:
            on_progress(len(part.pixels))
    return PreparedImages(*(np.concatenate(field) for field in zip(*parts, strict=True)))
