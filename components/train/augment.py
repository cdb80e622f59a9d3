"""Augmentations that fit photographed, rectified cards: what another camera or a slightly
different crop would change, and nothing that changes the label.

No flips and no large rotations: a mirrored card swaps its left and right borders (its
centering label would no longer match the geometry measured on the photo) and no real card is
printed mirrored. The geometric jitter is the size of a rectification error (a degree, a few
percent), the photometric one the size of the differences between the factory's cameras:
exposure, white balance, focus, sensor noise and JPEG quality.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_ROTATION_DEG = 1.5
MAX_SCALE = 0.03
MAX_SHIFT = 0.02
MAX_GAIN = 0.15        # exposure, as a factor
MAX_WHITE_BALANCE = 0.08  # red and blue channel gains
MAX_BLUR_SIGMA = 0.8
MAX_NOISE_SIGMA = 4.0
JPEG_QUALITY = (55, 95)


def augment_card(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly re-photographed copy of one rectified RGB uint8 card (same shape)."""
    height, width = pixels.shape[:2]
    angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
    scale = 1 + rng.uniform(-MAX_SCALE, MAX_SCALE)
    warp = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    warp[:, 2] += rng.uniform(-MAX_SHIFT, MAX_SHIFT, 2) * (width, height)
    image = cv2.warpAffine(pixels, warp, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    gains = 1 + rng.uniform(-MAX_GAIN, MAX_GAIN) + np.array(
        [rng.uniform(-MAX_WHITE_BALANCE, MAX_WHITE_BALANCE), 0.0,
         rng.uniform(-MAX_WHITE_BALANCE, MAX_WHITE_BALANCE)], np.float32)
    image *= gains
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, MAX_BLUR_SIGMA))
    image += rng.normal(0, rng.uniform(0, MAX_NOISE_SIGMA), image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        quality = int(rng.integers(*JPEG_QUALITY))
        encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return image
