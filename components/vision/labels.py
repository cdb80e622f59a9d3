"""Labels as labeling tools export them: pixel masks read into outlines from COCO polygons and
run-length encodings (CVAT, Label Studio) and YOLO-seg lines (Ultralytics), and where a YOLO
label file lies. Ingest validates and stores them; training reads them.

    outlines = coco_outlines(annotation["segmentation"], width=640, height=480)
    outline = yolo_seg_outline(["0.1", "0.2", "0.3", "0.2", "0.2", "0.4"])

An outline is a closed polygon in fractions of the image size (x, y in 0..1), the form the
dataset stores (YOLO-seg), whatever the source wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

Outline = tuple[tuple[float, float], ...]
MIN_OUTLINE_POINTS = 3


class MaskFormatError(ValueError):
    """A mask that cannot be read: an odd number of coordinates, a run length past the image."""


def _pairs(values: Sequence[float], width: float, height: float) -> Outline:
    if len(values) % 2:
        raise MaskFormatError(f"a polygon needs x, y pairs; got {len(values)} numbers")
    return tuple((float(x) / width, float(y) / height)
                 for x, y in zip(values[0::2], values[1::2], strict=True))


def _compressed_counts(text: str) -> list[int]:
    """COCO's compressed RLE string: 5 bits per character with a continuation bit, each run
    after the second stored as its difference from the run two before."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise MaskFormatError("a compressed RLE string ends inside a run length")
            chunk = ord(text[position]) - 48
            value |= (chunk & 0x1F) << (5 * shift)
            more = bool(chunk & 0x20)
            position += 1
            shift += 1
            if not more and chunk & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def decode_rle(rle: dict[str, object]) -> np.ndarray:
    """The uint8 mask (height x width, 255 inside) of a COCO run-length encoding, compressed
    (a string) or not (a list of run lengths, first run background, column by column)."""
    try:
        height, width = (int(v) for v in rle["size"])  # type: ignore[union-attr]
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        problem = f"an RLE needs `size` [height, width] and `counts`: {error}"
        raise MaskFormatError(problem) from None
    runs = _compressed_counts(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if any(run < 0 for run in runs) or sum(runs) > height * width:
        raise MaskFormatError(f"RLE runs cover {sum(runs)} pixels of a {width} x {height} image")
    flat = np.zeros(height * width, np.uint8)
    start = 0
    for index, run in enumerate(runs):
        if index % 2:
            flat[start:start + run] = 255
        start += run
    return flat.reshape(width, height).T.copy()


def mask_outlines(mask: np.ndarray) -> list[Outline]:
    """The outer outlines of a mask's regions, in fractions of its size (holes are not kept: a
    defect's extent is its outline)."""
    height, width = mask.shape[:2]
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    outlines = []
    for contour in contours:
        points = contour.reshape(-1, 2).astype(np.float64) + 0.5  # pixel centres
        if len(points) < MIN_OUTLINE_POINTS:  # a region one or two pixels across: its square
            x0, y0 = points.min(0) - 0.5
            x1, y1 = points.max(0) + 0.5
            points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        outlines.append(tuple((float(x) / width, float(y) / height) for x, y in points))
    return outlines


def coco_outlines(segmentation: object, width: float, height: float) -> list[Outline]:
    """Outlines of a COCO annotation's `segmentation`: a list of polygons in pixels, or an RLE."""
    if isinstance(segmentation, dict):
        return mask_outlines(decode_rle(segmentation))
    if not isinstance(segmentation, list):
        raise MaskFormatError(f"`segmentation` is neither polygons nor an RLE: {segmentation!r}")
    return [_pairs(polygon, width, height) for polygon in segmentation if polygon]


def yolo_seg_outline(fields: Sequence[str]) -> Outline:
    """The outline of a YOLO-seg line's coordinates (after the class id): x y pairs, 0..1."""
    try:
        values = [float(value) for value in fields]
    except ValueError:
        raise MaskFormatError(f"polygon coordinates are not numbers: {' '.join(fields)}") from None
    return _pairs(values, 1.0, 1.0)


def outline_bounds(outline: Outline) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of an outline."""
    xs, ys = [x for x, _ in outline], [y for _, y in outline]
    return min(xs), min(ys), max(xs), max(ys)


def yolo_seg_line(class_id: int, outline: Outline) -> str:
    """One YOLO-seg label line: the class id, then the outline's x y fractions."""
    return f"{class_id} " + " ".join(f"{x:.6f} {y:.6f}" for x, y in outline)


def label_path(root: Path, image: str) -> Path:
    """Ultralytics' convention: the label of images/a/b.jpg is labels/a/b.txt."""
    parts = Path(image).with_suffix(".txt").parts
    parts = tuple("labels" if part == "images" else part for part in parts)
    return root.joinpath(*parts)
