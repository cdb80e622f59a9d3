"""The properties of a served image that drift monitoring compares between a reference window
and live traffic: light, colour, focus, noise and size.

    props = image_properties(bgr)          # {"brightness": 131.2, ..., "width": 3000.0, ...}
    row = [props[name] for name in PROPERTY_NAMES]

Everything but the size is measured on a copy at most 512 px on its long side, so one call
takes a few milliseconds even on a 12-megapixel photo. Sharpness and noise depend on that
scale: compare them only with values from this function, not with ingest's full-size figures.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

PROPERTY_NAMES: tuple[str, ...] = ("brightness", "contrast", "saturation", "colour_temperature",
                                   "sharpness", "noise", "width", "height")
MEASURE_SIDE = 512
# Immerkær's mask: the difference of two Laplacians, which cancels image structure up to
# second order and leaves mostly noise (Immerkær 1996, "Fast noise variance estimation").
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def measure_grey(grey: np.ndarray) -> tuple[float, float, float]:
    """Brightness and contrast (mean and std of a grey image, 0..255) and sharpness (variance of
    the Laplacian, the usual focus measure), as ingest and the service both report them."""
    mean, std = cv2.meanStdDev(grey)
    _, laplacian_std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))
    return (round(float(mean[0, 0]), 2), round(float(std[0, 0]), 2),
            round(float(laplacian_std[0, 0]) ** 2, 1))


def image_properties(bgr: np.ndarray) -> dict[str, float]:
    """The `PROPERTY_NAMES` of one BGR uint8 image, for drift monitoring.

    brightness, contrast: mean and std of grey (0..255); saturation: mean HSV S (0..255);
    colour_temperature: warmth index (mean red + 1) / (mean blue + 1), 1 for neutral grey, above
    1 warmer, below 1 cooler; sharpness: variance of the Laplacian; noise: Immerkær's estimate of
    the noise sigma in grey levels; width and height: of the original image in pixels.
    """
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"image_properties needs an H x W x 3 uint8 BGR image, got shape "
                         f"{bgr.shape} of {bgr.dtype}")
    height, width = bgr.shape[:2]
    small = _downscaled(bgr)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    brightness, contrast, sharpness = measure_grey(grey)
    blue, _, red, _ = cv2.mean(small)
    saturation = cv2.mean(cv2.cvtColor(small, cv2.COLOR_BGR2HSV))[1]
    return {"brightness": brightness, "contrast": contrast,
            "saturation": round(saturation, 2),
            "colour_temperature": round((red + 1.0) / (blue + 1.0), 4),
            "sharpness": sharpness, "noise": round(_noise_sigma(grey), 3),
            "width": float(width), "height": float(height)}


def _downscaled(bgr: np.ndarray) -> np.ndarray:
    """The image shrunk by the smallest whole factor that brings its long side to at most
    `MEASURE_SIDE` (unchanged when already small): OpenCV averages whole blocks twice as fast
    as a fractional scale."""
    height, width = bgr.shape[:2]
    factor = math.ceil(max(height, width) / MEASURE_SIDE)
    if factor == 1:
        return bgr
    cropped = bgr[: height - height % factor, : width - width % factor]
    return cv2.resize(cropped, (width // factor, height // factor), interpolation=cv2.INTER_AREA)


def _noise_sigma(grey: np.ndarray) -> float:
    """Immerkær's fast noise sigma: mean |mask response| over the interior, scaled so that
    Gaussian noise of sigma s gives s."""
    height, width = grey.shape
    if height < 3 or width < 3:
        return 0.0
    response = cv2.filter2D(grey.astype(np.float32), -1, _NOISE_MASK)[1:-1, 1:-1]
    return math.sqrt(math.pi / 2) * float(np.abs(response).sum()) / (6 * (width - 2) * (height - 2))
