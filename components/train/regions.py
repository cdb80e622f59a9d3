"""Labeled defect regions drawn onto the model's canvas: per defect class, the severity each
cell of its severity map should read, so the grader learns where each defect lies and what it
is, and not only how bad the worst one is.

    maps = severity_targets(lines, severities, classes, CARD_RUBRIC, (320, 448), to_photo,
                            canvas=(304, 432), stride=8)    # defect classes x 54 x 38

A cell reads the worst severity among the regions of its class that touch it, 0 where none
does. Cells beside a region that none touches are `IGNORED`: an outline drawn a pixel wide of
the defect, or a cached view shifted by augmentation, must not teach the model that the edge of
a defect is clean paper. A region whose severity the labels do not give is ignored too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from components.train.rubric import RubricTable
from components.vision.labels import yolo_seg_outline

IGNORED = -1.0
_SHIFT = 4  # fractional bits of cv2's fixed-point drawing


def _cells(mask: np.ndarray, stride: int) -> np.ndarray:
    """Which cells of a stride x stride grid over `mask` hold any set pixel."""
    height, width = mask.shape
    return mask.reshape(height // stride, stride, width // stride, stride).max(axis=(1, 3)) > 0


def _drawn(outline: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """The canvas pixels an outline (k x 2 canvas coordinates) covers, its border included."""
    mask = np.zeros((canvas[1], canvas[0]), np.uint8)
    points = [np.round(outline * (1 << _SHIFT)).astype(np.int32)]
    cv2.fillPoly(mask, points, 1, cv2.LINE_8, _SHIFT)
    cv2.polylines(mask, points, True, 1, 1, cv2.LINE_8, _SHIFT)  # a sliver has no inside
    return mask


def severity_targets(lines: Sequence[str], severities: Sequence[float], classes: Sequence[str],
                     table: RubricTable, photo_size: tuple[float, float], to_photo: np.ndarray,
                     canvas: tuple[int, int], stride: int) -> np.ndarray:
    """Defect classes (the rubric's) x H/stride x W/stride target severities of one item from
    its YOLO-seg label `lines` (outlines in fractions of the photo, class ids into `classes`)
    and their `severities` (NaN: unknown); `to_photo` maps canvas pixels (width x height
    `canvas`) to the photo's."""
    width, height = canvas
    if width % stride or height % stride:
        raise ValueError(f"the canvas {width} x {height} is not whole cells of {stride} pixels")
    shape = (len(table.defect_classes), height // stride, width // stride)
    targets = np.zeros(shape, np.float32)
    unknown = np.zeros(shape, bool)
    from_photo = np.linalg.inv(to_photo)
    for line, severity in zip(lines, severities, strict=True):
        class_id, *coordinates = line.split()
        name = classes[int(class_id)]
        if name not in table.defect_classes or len(coordinates) < 6:
            continue  # a class the rubric does not grade, or a box without a mask
        drawn = table.defect_classes.index(name)
        outline = np.array(yolo_seg_outline(coordinates)) * photo_size
        on_canvas = cv2.perspectiveTransform(outline[None], from_photo)[0]
        cells = _cells(_drawn(on_canvas, canvas), stride)
        if math.isnan(severity):
            unknown[drawn] |= cells
        else:
            targets[drawn][cells] = np.maximum(targets[drawn][cells], severity)
    touched = (targets > 0) | unknown
    near = np.stack([cv2.dilate(t.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
                     for t in touched])
    targets[near & (targets == 0)] = IGNORED
    return targets
