"""Draw a card flat, front side up, at a fixed resolution: border, inner frame, procedural artwork
and text, then each defect together with its own pixel mask (the mask is what boxes come from).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from components.cards.spec import (
    CARD_HEIGHT_MM,
    CARD_WIDTH_MM,
    CORNER_RADIUS_MM,
    FRAME_LINE_MM,
    CardSpec,
    Defect,
)

PX_PER_MM = 5.0
CARD_WIDTH_PX = round(CARD_WIDTH_MM * PX_PER_MM)
CARD_HEIGHT_PX = round(CARD_HEIGHT_MM * PX_PER_MM)
# cv2 drawing takes integer coordinates; this many fractional bits keep sub-pixel placement.
_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class FlatCard:
    """A rendered card: BGR pixels, its shape mask, and one pixel mask per defect."""

    image: np.ndarray  # uint8 H x W x 3
    shape_mask: np.ndarray  # uint8 H x W, 255 inside the card outline
    defect_masks: tuple[np.ndarray, ...]  # uint8 H x W each, aligned with spec.defects


def _fixed(points_mm: np.ndarray) -> np.ndarray:
    """Millimetres -> cv2 fixed-point pixel coordinates (pixel centres at integers)."""
    return np.round((points_mm * PX_PER_MM - 0.5) * _ONE).astype(np.int32)


def _coverage(start_mm: float, end_mm: float, count: int) -> np.ndarray:
    """Share of each pixel in a row of `count` that lies within [start_mm, end_mm)."""
    left = np.arange(count, dtype=np.float64) / PX_PER_MM
    right = left + 1.0 / PX_PER_MM
    return np.clip((np.minimum(right, end_mm) - np.maximum(left, start_mm)) * PX_PER_MM, 0, 1)


def _rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour) -> None:
    """Fill the rectangle [x0, x1) x [y0, y1) in mm with exact area coverage at its edges.

    cv2's anti-aliased fill grows shapes by most of a pixel, which would shift the printed
    borders away from the spec; centering ground truth must be exact. Only the outermost rows
    and columns are partly covered, so only they are blended.
    """
    cover_y = _coverage(y0, y1, img.shape[0])
    cover_x = _coverage(x0, x1, img.shape[1])
    rows, cols = np.nonzero(cover_y)[0], np.nonzero(cover_x)[0]
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    edges = [(slice(r, r + 1), slice(left, right)) for r in (top, bottom - 1)]
    edges += [(slice(top, bottom), slice(c, c + 1)) for c in (left, right - 1)]
    under = [img[edge].astype(np.float32) for edge in edges]
    img[top:bottom, left:right] = colour
    for edge, original in zip(edges, under, strict=True):
        alpha = np.outer(cover_y[edge[0]], cover_x[edge[1]])[:, :, None]
        img[edge] = np.round(original * (1 - alpha) + np.float32(colour) * alpha).astype(np.uint8)


@functools.cache
def card_shape_mask() -> np.ndarray:
    """The card outline with its rounded corners (cached: treat as read-only)."""
    mask = np.zeros((CARD_HEIGHT_PX, CARD_WIDTH_PX), np.uint8)
    r = CORNER_RADIUS_MM * PX_PER_MM
    w, h = CARD_WIDTH_PX, CARD_HEIGHT_PX
    cv2.rectangle(mask, (round(r), 0), (w - 1 - round(r), h - 1), 255, -1)
    cv2.rectangle(mask, (0, round(r)), (w - 1, h - 1 - round(r)), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(mask, (round(cx * _ONE), round(cy * _ONE)), round(r * _ONE), 255, -1,
                   cv2.LINE_AA, _SHIFT)
    mask.flags.writeable = False
    return mask


@functools.cache
def _edge_band(depth: int) -> np.ndarray:
    """Pixels of the card within `depth` pixels of its outline (cached: read-only)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * depth + 1, 2 * depth + 1))
    outline = card_shape_mask()
    # Beyond the image is not card: the default border would spare the straight sides.
    inner = cv2.erode(outline, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    band = outline & ~inner
    band.flags.writeable = False
    return band


def _contrast_colour(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return (40, 35, 30) if sum(colour) > 300 else (200, 215, 230)


def _draw_artwork(spec: CardSpec, width: int, height: int) -> np.ndarray:
    """Gradient sky, a few shapes for the 'character', a name bar and a text box."""
    rng = np.random.default_rng(spec.art_seed)
    corners = rng.integers(30, 230, size=(2, 2, 3)).astype(np.uint8)
    art = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    w, h = width, height
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.uniform(0.15, 0.85) * w), int(rng.uniform(0.2, 0.7) * h)
        if rng.random() < 0.5:
            axes = (int(rng.uniform(0.05, 0.25) * w), int(rng.uniform(0.05, 0.2) * h))
            cv2.ellipse(art, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1,
                        cv2.LINE_AA)
        else:
            pts = np.stack([rng.uniform(0.05 * w, 0.95 * w, 5),
                            rng.uniform(0.1 * h, 0.75 * h, 5)], 1).astype(np.int32)
            cv2.fillPoly(art, [cv2.convexHull(pts)], colour, cv2.LINE_AA)
    bar_bottom = 4 + int(0.08 * h)
    cv2.rectangle(art, (4, 4), (w - 5, bar_bottom), (235, 235, 235), -1)
    name = "".join(rng.choice(list("ABCDEFGHIKLMNOPRSTUVZ"), int(rng.integers(4, 9))))
    cv2.putText(art, name, (8, bar_bottom - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (30, 30, 30), 1,
                cv2.LINE_AA)
    box_top = int(0.74 * h)
    cv2.rectangle(art, (4, box_top), (w - 5, h - 5), (215, 230, 235), -1)
    for line in range(3):
        ty, tx = box_top + 10 + 12 * line, 10
        while tx < w - 30 and ty < h - 8:
            word = int(rng.integers(8, 28))
            cv2.rectangle(art, (tx, ty), (min(tx + word, w - 12), ty + 3), (70, 70, 70), -1)
            tx += word + 6
    return art


# Outlines are ragged by this share of their size, point to point: enough to look torn, too
# little to change the worn area, which is what the severity (and so the experts) measures.
_JAG = 0.08


def _jagged(rng: np.random.Generator, n: int) -> np.ndarray:
    return 1.0 + _JAG * rng.uniform(-1.0, 1.0, n)


def _line_thickness(defect: Defect) -> int:
    """Whole pixels a line defect is drawn with (cv2 draws no thinner than its width)."""
    return max(1, math.ceil(defect.size * PX_PER_MM))


def _line_coverage(defect: Defect) -> float:
    """Share of its drawn pixels a line defect covers: a camera sees a 0.6 px scratch fainter
    than a 1 px one, so its tint is weakened by this share rather than rounded to whole pixels."""
    return defect.size * PX_PER_MM / _line_thickness(defect)


def _inward_from_edge(ax: float, ay: float, bx: float) -> np.ndarray:
    """Unit vector into the card from the edge a strip from (ax, ay) to (bx, _) lies on."""
    if ax == bx:  # a left or right edge
        return np.array([1.0, 0.0]) if ax == 0 else np.array([-1.0, 0.0])
    return np.array([0.0, 1.0]) if ay == 0 else np.array([0.0, -1.0])


def _defect_shape(defect: Defect, rng: np.random.Generator) -> np.ndarray:
    """Pixel mask (uint8 0/255) of where the defect sits on the flat card."""
    mask = np.zeros((CARD_HEIGHT_PX, CARD_WIDTH_PX), np.uint8)
    pts = np.array(defect.points, dtype=np.float64)
    if defect.kind == "corner_wear":
        (cx, cy), r = pts[0], defect.size
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        radii = r * _jagged(rng, 48)
        blob = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [_fixed(blob)], 255, cv2.LINE_AA, _SHIFT)
    elif defect.kind == "edge_whitening":
        (ax, ay), (bx, by) = pts
        t = np.linspace(0, 1, 32)
        along = np.stack([ax + (bx - ax) * t, ay + (by - ay) * t], 1)
        inward = _inward_from_edge(ax, ay, bx)
        depth = defect.size * _jagged(rng, 32)
        outer = along - inward * 1.0
        inner = along + inward * depth[:, None]
        cv2.fillPoly(mask, [_fixed(np.vstack([outer, inner[::-1]]))], 255, cv2.LINE_AA, _SHIFT)
    elif defect.kind == "stain":
        (cx, cy), r = pts[0], defect.size
        angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        radii = r * _jagged(rng, 40)
        blob = np.stack([cx + radii * np.cos(angles), cy + 0.8 * radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [_fixed(blob)], 255, cv2.LINE_AA, _SHIFT)
    else:  # scratch, crease, print line: polylines of a given width
        cv2.polylines(mask, [_fixed(pts)], False, 255, _line_thickness(defect), cv2.LINE_AA,
                      _SHIFT)
    return mask


# Wear at the card's outline tears paper away, so the background shows through.
FRAYING_DEFECTS = frozenset({"corner_wear", "edge_whitening"})

_DEFECT_TINT = {
    "corner_wear": ((238, 240, 242), 0.95),
    "edge_whitening": ((240, 242, 244), 0.9),
    "surface_scratch": ((250, 250, 250), 0.55),
    "crease": ((250, 250, 250), 0.7),
    "stain": ((70, 130, 165), 0.5),
    "print_line": ((180, 60, 200), 0.45),
}


def _apply_defect(img: np.ndarray, defect: Defect, mask: np.ndarray, rng) -> None:
    """Blend the defect's colour into the card where its mask is set, with paper texture."""
    colour, strength = _DEFECT_TINT[defect.kind]
    ys, xs = np.nonzero(mask)
    alpha = (mask[ys, xs].astype(np.float32) / 255.0) * strength * (0.6 + 0.4 * defect.severity)
    alpha *= rng.uniform(0.75, 1.0, len(ys)).astype(np.float32)  # fibrous, not flat
    if defect.kind not in FRAYING_DEFECTS | {"stain"}:
        alpha *= np.float32(_line_coverage(defect))
    pixels = img[ys, xs].astype(np.float32)
    img[ys, xs] = (pixels * (1 - alpha[:, None]) + np.float32(colour) * alpha[:, None]).astype(
        np.uint8)
    if defect.kind == "crease":  # the fold's shadow runs beside its highlight, deeper if worse
        shadow = np.roll(mask, 2, axis=0) & ~mask
        ys, xs = np.nonzero(shadow)
        darken = np.float32(1.0 - 0.6 * defect.severity)
        img[ys, xs] = (img[ys, xs].astype(np.float32) * darken).astype(np.uint8)
        mask |= shadow


def render_card(spec: CardSpec, with_defects: bool = True) -> FlatCard:
    """Draw the card flat; `with_defects=False` draws the same card in mint condition."""
    img = np.empty((CARD_HEIGHT_PX, CARD_WIDTH_PX, 3), np.uint8)
    img[:] = spec.border_colour
    left, top, right, bottom = spec.border_mm
    frame = _contrast_colour(spec.border_colour)
    _rect(img, left, top, CARD_WIDTH_MM - right, CARD_HEIGHT_MM - bottom, frame)
    x0, y0 = (math.ceil((v + FRAME_LINE_MM) * PX_PER_MM) for v in (left, top))
    x1, y1 = (math.floor((full - v - FRAME_LINE_MM) * PX_PER_MM)
              for v, full in ((right, CARD_WIDTH_MM), (bottom, CARD_HEIGHT_MM)))
    img[y0:y1, x0:x1] = _draw_artwork(spec, x1 - x0, y1 - y0)
    outline = card_shape_mask()
    shape = outline.copy()
    masks: list[np.ndarray] = []
    if with_defects:
        rng = np.random.default_rng(spec.art_seed + 1)
        for defect in spec.defects:
            mask = _defect_shape(defect, rng)
            _apply_defect(img, defect, mask, rng)
            if defect.kind in FRAYING_DEFECTS:
                shape = np.minimum(shape, 255 - _frayed_edge(mask, defect.severity))
            masks.append(mask & outline)
    return FlatCard(image=img, shape_mask=shape, defect_masks=tuple(masks))


def _frayed_edge(mask: np.ndarray, severity: float) -> np.ndarray:
    """The part of a wear mask that is torn away (0..255): the outermost band of the card under
    it, 1 to 4 pixels deep by severity; the innermost pixel is torn by the depth's fraction, as
    a camera would see a tear that ends inside a pixel."""
    depth = 1.0 + 3.0 * severity
    whole = int(depth)
    band = _edge_band(whole).astype(np.float32)
    ring = _edge_band(whole + 1).astype(np.float32) - band
    torn = band + (depth - whole) * ring
    return np.minimum(mask.astype(np.float32), torn).astype(np.uint8)

