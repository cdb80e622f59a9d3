"""Measure a card's centering from a photo, the way a grader with a ruler would.

    measurement = measure_centering(cv2.imread("card.jpg"))
    measurement.centering_lr  # left border share of left + right, percent (50 = perfect)

1. Find the card: Otsu threshold of each pixel's colour distance from the ground (sampled at
   the photo's rim), the largest contour, one line fitted per side.
2. Refine each outer side to sub-pixel precision at full resolution: intensity profiles across
   the edge give the 50% crossing at many points, and a line is fitted to them with outliers
   (worn corners, frayed edges) dropped. The colour distance is computed only in a strip
   around each side, where the profiles are read.
3. Deskew: the four corners map the card onto a rectified canvas of known millimetres.
4. Find the inner frame: a per-column median (robust to scratches and stains) of each pixel's
   colour distance from the border colour rises where the border ends.
The card's aspect ratio defaults to a standard trading card (63 x 88 mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RECTIFIED_PX_PER_MM = 6.0
_PROFILE_HALF_PX = 4.0
_PROFILE_STEP_PX = 0.25
_SAMPLES_PER_SIDE = 64
# Stay clear of the rounded corners when sampling a side.
_SIDE_MARGIN = 0.12
# Rows (or columns) of the rectified card used to find the inner frame.
_BAND = (0.2, 0.8)
# Intact edge points sit within a tenth of a pixel of their line, worn ones a pixel or more
# inside it: a point this close is on a candidate edge, one this far beyond it is outside.
_ON_EDGE_PX = 0.25
_BEYOND_EDGE_PX = 0.6
# A point beyond a candidate edge is near impossible for a true edge (wear only cuts inward),
# so it costs several inliers: a shallow line through both a notch and intact edge loses.
_OUTSIDE_PENALTY = 5
# The outermost stretch of each side read for its border colour: the thinnest border printed.
_BORDER_PROBE_MM = 0.8


class CenteringError(ValueError):
    """No card, or no inner frame, can be found in the image."""


@dataclass(frozen=True)
class CenteringMeasurement:
    """Border widths and the centering ratios they imply; corners are in image pixels."""

    centering_lr: float
    centering_tb: float
    borders_mm: tuple[float, float, float, float]  # left, top, right, bottom
    outer_corners: tuple[tuple[float, float], ...]  # TL, TR, BR, BL
    inner_corners: tuple[tuple[float, float], ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "centering_lr": round(self.centering_lr, 2),
            "centering_tb": round(self.centering_tb, 2),
            "borders_mm": [round(b, 3) for b in self.borders_mm],
            "outer_corners": [[round(x, 2), round(y, 2)] for x, y in self.outer_corners],
            "inner_corners": [[round(x, 2), round(y, 2)] for x, y in self.inner_corners],
        }


def worst_side_share(centering_lr: float, centering_tb: float) -> float:
    """Share (percent) of the larger border on the worse axis: 50 is perfect centering."""
    return max(centering_lr, 100.0 - centering_lr, centering_tb, 100.0 - centering_tb)


def _order_corners(points: np.ndarray) -> np.ndarray:
    """Sort four points as top-left, top-right, bottom-right, bottom-left."""
    centre = points.mean(0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    ordered = points[np.argsort(angles)]  # starts at the top-left for a near-upright card
    start = int(np.argmin(ordered.sum(1)))
    return np.roll(ordered, -start, axis=0)


def _ground_colour(image: np.ndarray) -> np.ndarray:
    """Colour of the ground the card lies on: the median of the photo's rim."""
    rim = np.concatenate([image[:3].reshape(-1, 3), image[-3:].reshape(-1, 3),
                          image[:, :3].reshape(-1, 3), image[:, -3:].reshape(-1, 3)])
    return np.median(rim, axis=0).astype(np.float32)


def _rough_quad(contrast: np.ndarray) -> np.ndarray:
    """Corners of the card from its outline: Otsu, largest contour, a line per side."""
    blurred = cv2.GaussianBlur(np.clip(contrast, 0, 255), (5, 5), 0).astype(np.uint8)
    _, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise CenteringError("no card found: nothing stands out from the ground")
    # By hull area: a crease's shadow can cut the border ring open, and an open ring encloses
    # little area of its own.
    hulls = [cv2.convexHull(contour) for contour in contours]
    largest = max(range(len(hulls)), key=lambda i: cv2.contourArea(hulls[i]))
    hull = hulls[largest]
    if cv2.contourArea(hull) < 0.15 * contrast.size:
        raise CenteringError("no card found: the largest region apart from the ground covers "
                             "under 15% of the image")
    quad = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True).reshape(-1, 2)
    if len(quad) != 4:
        quad = cv2.boxPoints(cv2.minAreaRect(hull))
    # The polygon's chords may cut the rounded corners far inside the card: fit each side to
    # the outline's own points instead, away from the corners.
    quad = _order_corners(quad.astype(np.float64))
    # Dense points along the hull: unlike the contour, they never trace a ring's inner side.
    filled = np.zeros(contrast.shape, np.uint8)
    cv2.fillConvexPoly(filled, hull, 255)
    outline, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = outline[0].reshape(-1, 2).astype(np.float64)
    lines = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        length = float(np.linalg.norm(b - a))
        direction = (b - a) / length
        along = (points - a) @ direction / length
        across = np.abs((points - a) @ np.array([direction[1], -direction[0]]))
        near = (along > _SIDE_MARGIN) & (along < 1 - _SIDE_MARGIN) & (across < 0.1 * length)
        if near.sum() < 10:
            raise CenteringError(f"no card found: side {i} of the outline is not straight")
        lines.append(_fit_line(points[near]))
    return np.array([_intersect(*lines[i - 1], *lines[i]) for i in range(4)])


def _ground_distance(image: np.ndarray, ground: np.ndarray) -> np.ndarray:
    """Each pixel's colour distance from the ground, float32 (what the card stands out by)."""
    difference = image.astype(np.float32) - ground
    return np.sqrt(np.einsum("ijk,ijk->ij", difference, difference))


def _edge_points(image: np.ndarray, ground: np.ndarray, a: np.ndarray, b: np.ndarray,
                 outward: np.ndarray):
    """Sub-pixel points where the ground gives way to the card along one side.

    Each profile is read from the ground inward; the edge is the first crossing of half the
    contrast between ground and card, so a thin border's inner frame, further in, is never
    taken for the card's edge.
    """
    ts = np.linspace(_SIDE_MARGIN, 1 - _SIDE_MARGIN, _SAMPLES_PER_SIDE)
    offsets = np.arange(_PROFILE_HALF_PX, -_PROFILE_HALF_PX - 1e-9, -_PROFILE_STEP_PX)
    base = a[None] + ts[:, None] * (b - a)[None]
    coords = base[:, None, :] + offsets[None, :, None] * outward[None, None, :]
    # The distance from the ground in the box the profiles read (two pixels more each way, so
    # bilinear reads never leave it unless the photo ends there, as before), not everywhere.
    height, width = image.shape[:2]
    low = np.clip(np.floor(coords.min(axis=(0, 1))).astype(int) - 2, 0, [width, height])
    high = np.clip(np.ceil(coords.max(axis=(0, 1))).astype(int) + 3, 0, [width, height])
    if (high - low < 2).any():
        return np.empty((0, 2))
    contrast = _ground_distance(image[low[1]:high[1], low[0]:high[0]], ground)
    # Offsets from the box taken in float32, where subtracting whole pixels is exact: the same
    # sampling positions as reading the whole photo, to the bit.
    local = coords.astype(np.float32) - low.astype(np.float32)
    profiles = cv2.remap(contrast, local[..., 0], local[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    contrast = np.abs(profiles - profiles[:, :4].mean(1, keepdims=True))
    peaks = contrast.max(1)
    points = []
    for row, (profile, peak) in enumerate(zip(contrast, peaks, strict=True)):
        above = np.nonzero(profile >= 0.5 * peak)[0]
        if peak < 20 or len(above) == 0 or above[0] == 0:
            continue
        i = above[0]
        frac = (0.5 * peak - profile[i - 1]) / (profile[i] - profile[i - 1])
        points.append(base[row] + (offsets[i - 1] - frac * _PROFILE_STEP_PX) * outward)
    return np.array(points)


def _tls(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total-least-squares line through points: centre, unit direction, unit normal."""
    centre = points.mean(0)
    # The thin SVD: the full one also builds an N x N matrix of left vectors nobody reads,
    # which made this line most of a measurement's time.
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    return centre, vt[0], vt[1]


def _fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Line (point, unit direction) through `points`, refitted without far outliers."""
    keep = np.ones(len(points), bool)
    for _ in range(3):
        centre, direction, normal = _tls(points[keep])
        residual = np.abs((points - centre) @ normal)
        keep = residual <= max(0.3, 3.0 * 1.4826 * float(np.median(residual[keep])))
    return centre, direction


def _fit_outer_edge(points: np.ndarray, outward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The card's edge through sub-pixel edge points ordered along a side.

    Wear and chipping only ever move an edge inward, so the edge is the line that many points
    sit on and hardly any lie outside: every pair of well-separated points proposes a line,
    scored by its inliers minus a heavy penalty per point beyond it; the best is refitted.
    """
    n = len(points)
    i, j = np.triu_indices(n, k=max(1, n // 4))
    direction = points[j] - points[i]
    normal = np.stack([direction[:, 1], -direction[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    normal *= np.sign(normal @ outward)[:, None]
    # Signed distance of every point from every proposed line, as one matrix product.
    residual = normal @ points.T - np.einsum("pk,pk->p", normal, points[i])[:, None]
    inliers = np.abs(residual) <= _ON_EDGE_PX
    score = inliers.sum(1) - _OUTSIDE_PENALTY * (residual > _BEYOND_EDGE_PX).sum(1)
    centre, direction, _ = _tls(points[inliers[int(np.argmax(score))]])
    return centre, direction


def _intersect(p1, d1, p2, d2) -> np.ndarray:
    t = np.linalg.solve(np.column_stack([d1, -d2]), p2 - p1)
    return p1 + t[0] * d1


def _outer_corners(image: np.ndarray, ground: np.ndarray) -> np.ndarray:
    rough = _rough_quad(_ground_distance(image, ground))
    centre = rough.mean(0)
    lines = []
    for i in range(4):
        a, b = rough[i], rough[(i + 1) % 4]
        direction = (b - a) / np.linalg.norm(b - a)
        outward = np.array([direction[1], -direction[0]])
        if outward @ ((a + b) / 2 - centre) < 0:
            outward = -outward
        points = _edge_points(image, ground, a, b, outward)
        if len(points) < _SAMPLES_PER_SIDE // 3:
            raise CenteringError(f"card side {i} is not a clear edge ({len(points)} points)")
        lines.append(_fit_outer_edge(points, outward))
    return np.array([_intersect(*lines[i - 1], *lines[i]) for i in range(4)])


def _border_colour(strip: np.ndarray, ground: np.ndarray) -> np.ndarray:
    """A side's border colour from its outermost stretch, leaving out what looks like ground:
    torn notches, the blurred edge, and on a thin border the dark frame line."""
    region = strip[:, :round(_BORDER_PROBE_MM * RECTIFIED_PX_PER_MM)].reshape(-1, 3)
    apart = np.linalg.norm(region - ground, axis=1)
    return np.median(region[apart >= 0.5 * np.percentile(apart, 95)], axis=0)


def _border_width_px(strip: np.ndarray, border_colour: np.ndarray) -> float:
    """Sub-pixel distance from the card edge (index 0) to where the border colour ends."""
    distance = np.median(np.linalg.norm(strip - border_colour, axis=2), axis=0)
    peak = float(distance.max())
    inside_border = np.nonzero(distance < 0.25 * peak)[0]
    if peak < 25 or len(inside_border) == 0:
        raise CenteringError("no inner frame found: the border does not end in a visible edge")
    start = inside_border[0]
    rising = np.nonzero(distance[start:] >= 0.5 * peak)[0]
    if len(rising) == 0:
        raise CenteringError("no inner frame found inside the border")
    i = start + rising[0]
    lo, hi = distance[i - 1], distance[i]
    return float(i - 1 + (0.5 * peak - lo) / (hi - lo))


def measure_centering(
    image: np.ndarray,
    card_mm: tuple[float, float] = (63.0, 88.0),
    max_border_share: float = 0.25,
) -> CenteringMeasurement:
    """Measure left/right and top/bottom centering of the card in a BGR photo.

    `max_border_share` bounds how far (as a share of the card's width) a border may reach.
    """
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        raise CenteringError("expected a BGR colour image (H x W x 3)")
    ground = _ground_colour(image)
    outer = _outer_corners(image, ground)
    s = RECTIFIED_PX_PER_MM
    width, height = round(card_mm[0] * s), round(card_mm[1] * s)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64) - 0.5
    to_rectified = cv2.getPerspectiveTransform(outer.astype(np.float32),
                                               target.astype(np.float32))
    card = cv2.warpPerspective(image, to_rectified, (width, height),
                               flags=cv2.INTER_LINEAR).astype(np.float32)
    reach = round(max_border_share * width)
    rows = slice(round(_BAND[0] * height), round(_BAND[1] * height))
    cols = slice(round(_BAND[0] * width), round(_BAND[1] * width))
    strips = {  # each strip starts at the card's outer edge and runs inward
        "left": card[rows, :reach],
        "right": card[rows, ::-1][:, :reach],
        "top": card[:reach, cols].transpose(1, 0, 2),
        "bottom": card[::-1, cols][:reach].transpose(1, 0, 2),
    }
    # Each side's own border colour: side light makes one side of a card darker than another.
    # Pixel index i spans [i - 0.5, i + 0.5] from an edge at -0.5.
    mm = {side: (_border_width_px(st, _border_colour(st, ground)) + 0.5) / s
          for side, st in strips.items()}
    left, top, right, bottom = mm["left"], mm["top"], mm["right"], mm["bottom"]
    inner_rect = np.array([[left, top], [card_mm[0] - right, top],
                           [card_mm[0] - right, card_mm[1] - bottom],
                           [left, card_mm[1] - bottom]]) * s - 0.5
    inner = cv2.perspectiveTransform(inner_rect.reshape(-1, 1, 2),
                                     np.linalg.inv(to_rectified)).reshape(-1, 2)
    return CenteringMeasurement(
        centering_lr=100.0 * left / (left + right),
        centering_tb=100.0 * top / (top + bottom),
        borders_mm=(left, top, right, bottom),
        outer_corners=tuple((float(x), float(y)) for x, y in outer),
        inner_corners=tuple((float(x), float(y)) for x, y in inner),
    )


def draw_centering(image: np.ndarray, measurement: CenteringMeasurement) -> np.ndarray:
    """A copy of the image with the measured outer edge, inner frame and ratios drawn on it."""
    canvas = image.copy()
    for corners, colour in ((measurement.outer_corners, (0, 200, 255)),
                            (measurement.inner_corners, (255, 120, 0))):
        pts = np.round(np.array(corners) * 16).astype(np.int32)
        cv2.polylines(canvas, [pts], True, colour, 1, cv2.LINE_AA, shift=4)
    label = f"LR {measurement.centering_lr:.1f}/{100 - measurement.centering_lr:.1f}  " \
            f"TB {measurement.centering_tb:.1f}/{100 - measurement.centering_tb:.1f}"
    cv2.putText(canvas, label, (6, canvas.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
