"""Photograph a flat card: where it lies in the frame, what it lies on, and what the camera does.

Three camera profiles describe the capture rigs of a grading operation; a batch taken with a
different profile is how the platform rehearses drift:

| profile   | tilt  | perspective | light              | blur σ px    | noise σ | JPEG  | ground   |
|-----------|-------|-------------|--------------------|--------------|---------|-------|----------|
| studio    | ±1.5° | ≤1 %        | even, 5000-6000 K  | 0-0.4        | 0.5-2   | 92-96 | felt     |
| phone     | ±8°   | ≤5 %        | side, 2900-7000 K  | 0.4-1.3      | 3-6     | 70-86 | wood     |
| warehouse | ±4°   | ≤3 %        | dim, 4000-4800 K   | 0.3-1 + move | 5-9     | 62-76 | conveyor |

(phone also lays cards on a desk.) The exact ranges live in `CAMERAS` below.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from components.cards.render import CARD_HEIGHT_PX, CARD_WIDTH_PX, FlatCard

PHOTO_WIDTH = 320
PHOTO_HEIGHT = 448
# The whole card stays in the frame: a crop would hide the edges centering is measured on.
FRAME_MARGIN_PX = 4
_NOISE_BANK_SIZE = 4 * PHOTO_WIDTH * PHOTO_HEIGHT * 3


@dataclass(frozen=True)
class CameraProfile:
    """Ranges from which one photo's conditions are drawn."""

    name: str
    max_rotation_deg: float
    max_perspective: float  # corner jitter as a share of the card's height in the photo
    card_height: tuple[float, float]  # card height as a share of the photo height
    colour_temp_k: tuple[float, float]
    exposure: tuple[float, float]
    light_falloff: tuple[float, float]  # brightness drop across the frame
    blur_sigma: tuple[float, float]
    motion_blur_px: tuple[int, int]
    noise_sigma: tuple[float, float]
    jpeg_quality: tuple[int, int]
    backgrounds: tuple[str, ...]


CAMERAS: dict[str, CameraProfile] = {
    "studio": CameraProfile("studio", 1.5, 0.01, (0.86, 0.9), (5000, 6000), (0.97, 1.03),
                            (0.0, 0.06), (0.0, 0.4), (0, 0), (0.5, 2.0), (92, 96), ("felt",)),
    "phone": CameraProfile("phone", 8.0, 0.05, (0.72, 0.84), (2900, 7000), (0.8, 1.15),
                           (0.1, 0.35), (0.4, 1.3), (0, 0), (3.0, 6.0), (70, 86),
                           ("wood", "desk")),
    "warehouse": CameraProfile("warehouse", 4.0, 0.03, (0.78, 0.86), (4000, 4800), (0.65, 0.85),
                               (0.05, 0.2), (0.3, 1.0), (0, 5), (5.0, 9.0), (62, 76),
                               ("conveyor",)),
}


@dataclass(frozen=True)
class CameraConditions:
    """The conditions of one photo, drawn from a profile; recorded in the manifest."""

    camera: str
    rotation_deg: float
    corner_jitter: tuple[tuple[float, float], ...]
    card_height: float
    shift: tuple[float, float]
    colour_temp_k: float
    exposure: float
    light_angle: float
    light_falloff: float
    blur_sigma: float
    motion_blur_px: int
    noise_sigma: float
    jpeg_quality: int
    background: str
    background_seed: int


def sample_conditions(profile: CameraProfile, rng: np.random.Generator) -> CameraConditions:
    """Draw one photo's conditions from a camera profile."""
    u = rng.uniform
    return CameraConditions(
        camera=profile.name,
        rotation_deg=float(u(-profile.max_rotation_deg, profile.max_rotation_deg)),
        corner_jitter=tuple(
            (float(a), float(b))
            for a, b in u(-profile.max_perspective, profile.max_perspective, (4, 2))
        ),
        card_height=float(u(*profile.card_height)),
        shift=(float(u(-0.03, 0.03)), float(u(-0.02, 0.02))),
        colour_temp_k=float(u(*profile.colour_temp_k)),
        exposure=float(u(*profile.exposure)),
        light_angle=float(u(0, 2 * np.pi)),
        light_falloff=float(u(*profile.light_falloff)),
        blur_sigma=float(u(*profile.blur_sigma)),
        motion_blur_px=int(rng.integers(profile.motion_blur_px[0], profile.motion_blur_px[1] + 1)),
        noise_sigma=float(u(*profile.noise_sigma)),
        jpeg_quality=int(rng.integers(profile.jpeg_quality[0], profile.jpeg_quality[1] + 1)),
        background=str(rng.choice(profile.backgrounds)),
        background_seed=int(rng.integers(2**31)),
    )


def card_homography(conditions: CameraConditions) -> np.ndarray:
    """3x3 map from flat-card pixel coordinates to photo pixel coordinates."""
    height = conditions.card_height * PHOTO_HEIGHT
    width = height * CARD_WIDTH_PX / CARD_HEIGHT_PX
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * [width / 2, height / 2]
    angle = np.deg2rad(conditions.rotation_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([PHOTO_WIDTH / 2 + conditions.shift[0] * PHOTO_WIDTH,
                       PHOTO_HEIGHT / 2 + conditions.shift[1] * PHOTO_HEIGHT])
    dst = half @ rotation.T + centre + np.array(conditions.corner_jitter) * height
    dst = _fit_in_frame(dst, centre)
    # Pixel centres sit at integers, so the card's outer edge lies half a pixel outside them.
    src = np.array([[0, 0], [CARD_WIDTH_PX, 0], [CARD_WIDTH_PX, CARD_HEIGHT_PX],
                    [0, CARD_HEIGHT_PX]], np.float64) - 0.5
    return cv2.getPerspectiveTransform(src.astype(np.float32), (dst - 0.5).astype(np.float32))


def _fit_in_frame(corners: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Shrink the card about its centre until every corner keeps a margin inside the photo."""
    low = np.array([FRAME_MARGIN_PX, FRAME_MARGIN_PX], np.float64)
    high = np.array([PHOTO_WIDTH, PHOTO_HEIGHT], np.float64) - FRAME_MARGIN_PX
    offsets = corners - centre
    room = np.where(offsets < 0, (low - centre) / np.minimum(offsets, -1e-9),
                    (high - centre) / np.maximum(offsets, 1e-9))
    return centre + offsets * min(1.0, float(room.min()))


def _background(kind: str, seed: int) -> np.ndarray:
    """A surface to lay the card on: darker than any card border, with a little texture."""
    rng = np.random.default_rng(seed)
    size = (PHOTO_WIDTH, PHOTO_HEIGHT)
    if kind == "felt":
        base = rng.uniform(20, 55, 3)
        coarse = base + rng.normal(0, 4, (6, 5, 3))
    elif kind == "wood":
        base = np.array([40, 75, 120]) * rng.uniform(0.6, 1.0)
        grain = np.sin(np.linspace(0, rng.uniform(8, 20), 64))[:, None] * 12
        coarse = base + grain[:, :, None] + rng.normal(0, 6, (64, 4, 3))
    elif kind == "desk":
        coarse = rng.uniform(40, 90, 3) + rng.normal(0, 5, (4, 4, 3))
    elif kind == "conveyor":
        belt = 60 + 10 * (np.arange(32) % 4 < 2)
        coarse = np.repeat(belt[:, None, None], 3, axis=2) * rng.uniform(0.85, 1.0, (1, 1, 3))
        coarse = np.repeat(coarse, 4, axis=1)
    else:
        raise ValueError(f"unknown background {kind!r}")
    return cv2.resize(np.clip(coarse, 0, 255).astype(np.float32), size,
                      interpolation=cv2.INTER_LINEAR)


def compose(card: FlatCard, conditions: CameraConditions) -> tuple[np.ndarray, np.ndarray]:
    """Place the card on its background in the photo: float32 BGR image and the homography."""
    homography = card_homography(conditions)
    size = (PHOTO_WIDTH, PHOTO_HEIGHT)
    rgba = cv2.merge([*cv2.split(card.image), card.shape_mask])
    warped = cv2.warpPerspective(rgba, homography, size, flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = warped[:, :, 3].astype(np.float32) * np.float32(1 / 255)
    background = _background(conditions.background, conditions.background_seed)
    card_pixels = warped[:, :, :3].astype(np.float32)
    photo = cv2.blendLinear(card_pixels, background, alpha, 1.0 - alpha)
    return photo, homography


def colour_temperature_gains(kelvin: float) -> np.ndarray:
    """BGR gains that tint a neutral scene as a light of this temperature does (6500 K = 1)."""

    def rgb(k: float) -> np.ndarray:  # Tanner Helland's fit of the black-body locus
        t = k / 100.0
        r = 255.0 if t <= 66 else 329.7 * (t - 60) ** -0.1332
        g = 99.47 * np.log(t) - 161.12 if t <= 66 else 288.12 * (t - 60) ** -0.0755
        b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.52 * np.log(t - 10) - 305.04)
        return np.clip([b, g, r], 1, 255)

    return (rgb(kelvin) / rgb(6500.0)).astype(np.float32)


@functools.cache
def _noise_bank() -> np.ndarray:
    """Standard normal samples drawn once per process: drawing fresh ones per photo costs more
    than everything else the camera does. Photos read it at random offsets."""
    return np.random.default_rng(0).standard_normal(_NOISE_BANK_SIZE, dtype=np.float32)


def _sensor_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    count = int(np.prod(shape))
    offset = int(rng.integers(0, _NOISE_BANK_SIZE - count))
    return _noise_bank()[offset:offset + count].reshape(shape)


def develop(photo: np.ndarray, conditions: CameraConditions, rng: np.random.Generator) -> bytes:
    """What the camera does to the light: exposure, falloff, tint, blur, sensor noise, JPEG."""
    across = (np.arange(PHOTO_WIDTH, dtype=np.float32) / PHOTO_WIDTH - 0.5) * np.cos(
        conditions.light_angle)
    down = (np.arange(PHOTO_HEIGHT, dtype=np.float32) / PHOTO_HEIGHT - 0.5) * np.sin(
        conditions.light_angle)
    gain = conditions.exposure * (1.0 - conditions.light_falloff * (down[:, None] + across + 0.5))
    photo *= gain[:, :, None] * colour_temperature_gains(conditions.colour_temp_k)
    if conditions.blur_sigma > 0.05:
        photo = cv2.GaussianBlur(photo, (0, 0), conditions.blur_sigma)
    if conditions.motion_blur_px > 1:
        kernel = np.zeros((conditions.motion_blur_px, conditions.motion_blur_px), np.float32)
        kernel[conditions.motion_blur_px // 2, :] = 1.0 / conditions.motion_blur_px
        photo = cv2.filter2D(photo, -1, kernel)
    photo = cv2.scaleAdd(_sensor_noise(photo.shape, rng), conditions.noise_sigma, photo)
    image = np.clip(photo, 0, 255, out=photo).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, conditions.jpeg_quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return encoded.tobytes()


def defect_box(mask: np.ndarray, homography: np.ndarray, pad: float) -> tuple[float, ...] | None:
    """Pixel box (x0, y0, x1, y1) in the photo covering a flat-card defect mask; None if empty."""
    points = cv2.findNonZero(mask)
    if points is None:
        return None
    hull = cv2.convexHull(points).astype(np.float64)
    # Each set pixel spans +-0.5 around its centre; cover the hull's pixel squares.
    offsets = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    corners = (hull.reshape(-1, 1, 2) + offsets[None]).reshape(-1, 1, 2)
    mapped = cv2.perspectiveTransform(corners, homography).reshape(-1, 2)
    x0, y0 = np.maximum(mapped.min(0) - pad, 0)
    x1 = min(mapped[:, 0].max() + pad, PHOTO_WIDTH - 1)
    y1 = min(mapped[:, 1].max() + pad, PHOTO_HEIGHT - 1)
    return float(x0), float(y0), float(x1), float(y1)


def defect_outlines(mask: np.ndarray, homography: np.ndarray) -> list[np.ndarray]:
    """Outlines (k x 2 photo pixel coordinates) of a flat-card defect mask's regions, each
    simplified to within half a flat pixel and clipped to the photo; a region thinner than
    that (a straight scratch a pixel wide) is outlined by the rectangle around its pixels."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    outlines = []
    for contour in contours:
        simplified = cv2.approxPolyDP(contour, 0.5, True).astype(np.float64) + 0.5
        if len(simplified) < 3:
            (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
            rectangle = cv2.boxPoints(((cx + 0.5, cy + 0.5), (w + 1, h + 1), angle))
            simplified = rectangle.astype(np.float64).reshape(-1, 1, 2)
        mapped = cv2.perspectiveTransform(simplified, homography).reshape(-1, 2)
        outlines.append(np.clip(mapped, 0, (PHOTO_WIDTH - 1, PHOTO_HEIGHT - 1)))
    return outlines
