"""Contact sheets: a grid of a batch's photos with their defect boxes, grades and centering,
for people to look at (README, demo, reports) rather than read a manifest."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import cv2
import numpy as np

from components.cards.panel import PANEL
from components.vision.centering import CenteringError, draw_centering, measure_centering
from components.vision.rubric import DEFECT_CLASSES

_CAPTION_PX = 46
# One BGR colour per defect class, in DEFECT_CLASSES order.
_BOX_COLOURS = ((0, 0, 255), (0, 165, 255), (255, 0, 255), (0, 255, 255), (255, 255, 0),
                (0, 255, 0))


def _draw_labels(image: np.ndarray, label_file: Path) -> None:
    height, width = image.shape[:2]
    lines = label_file.read_text().splitlines() if label_file.exists() else []
    for line in lines:
        cls, cx, cy, w, h = line.split()
        x0, y0 = (float(cx) - float(w) / 2) * width, (float(cy) - float(h) / 2) * height
        x1, y1 = x0 + float(w) * width, y0 + float(h) * height
        cv2.rectangle(image, (int(x0), int(y0)), (int(np.ceil(x1)), int(np.ceil(y1))),
                      _BOX_COLOURS[int(cls)], 1)


def _caption(row: dict[str, str], width: int) -> np.ndarray:
    panel = "/".join(row[grader.name] for grader in PANEL)
    lines = (
        f"grade {row['grade']}  experts {panel}",
        f"C{row['centering']} Co{row['corners']} E{row['edges']} S{row['surface']}"
        f"  {float(row['centering_lr']):.0f}/{100 - float(row['centering_lr']):.0f}",
    )
    strip = np.full((_CAPTION_PX, width, 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(strip, text, (4, 18 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20),
                    1, cv2.LINE_AA)
    return strip


def contact_sheet(batch_dir: Path, count: int = 8, columns: int = 4) -> np.ndarray:
    """A BGR grid of the first `count` cards of a factory batch, each with its defect boxes,
    measured centering overlay and a caption of its grades."""
    with (Path(batch_dir) / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))[:count]
    if not rows:
        raise ValueError(f"{batch_dir} holds no cards")
    tiles = []
    for row in rows:
        image = cv2.imread(str(Path(batch_dir) / row["image_path"]))
        # Unmeasurable cards still show; the caption carries their true centering.
        with contextlib.suppress(CenteringError):
            image = draw_centering(image, measure_centering(image))
        _draw_labels(image, Path(batch_dir) / "labels" / f"{row['item_id']}.txt")
        tiles.append(np.vstack([image, _caption(row, image.shape[1])]))
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % columns)
    grid = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(grid)


def legend() -> str:
    """What the box colours mean, for captions next to a sheet."""
    names = ("red", "orange", "magenta", "yellow", "cyan", "green")
    return ", ".join(f"{kind} {colour}" for kind, colour in zip(DEFECT_CLASSES, names,
                                                                strict=True))
