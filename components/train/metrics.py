"""The pictures of a training run a reviewer looks at: confusion matrix, training curves and a
sheet of sample predictions. The agreement figures themselves (QWK, class scores) are the vision
core's (`components/vision/agreement.py`), since every stage reports them.

Pure functions with no MLflow or Prefect: the caller logs what they return.

    confusion_matrix_png(expert_grades, predicted_grades, range(1, 11), out / "cm.png", "val")
    training_curves_png(history, out / "curves.png", "grader")
    prediction_sheet(images, captions, correct, out / "samples.png")

Plots use matplotlib's `Figure` directly rather than pyplot: no backend switch, no global figure
registry to leak into, and safe from any thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from components.vision.agreement import MetricsError, paired_labels

DPI = 110
SHEET_GAP = 6
SHEET_BACKGROUND = (235, 235, 235)
CAPTION_BAND = (255, 255, 255)
CAPTION_CORRECT = (0, 140, 0)
CAPTION_WRONG = (210, 0, 0)
CAPTION_FONT = cv2.FONT_HERSHEY_SIMPLEX
CAPTION_SCALE = 0.45
CAPTION_MARGIN = 4


def _writable(path: Path) -> Path:
    """path, with its parent folders created so the caller can write to it at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def confusion_matrix_png(
    expected: Sequence[object] | np.ndarray,
    predicted: Sequence[object] | np.ndarray,
    labels: Sequence[object],
    path: Path,
    title: str,
    axis_name: str = "grade",
) -> Path:
    """Draw a confusion matrix (rows expected, columns predicted, counts in cells, rows also
    shaded by share) to a PNG at path and return path; shading by row share keeps rare
    expected labels as readable as common ones."""
    expected_array, predicted_array = paired_labels(expected, predicted, labels)
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for truth, guess in zip(expected_array.tolist(), predicted_array.tolist(), strict=True):
        counts[index[truth], index[guess]] += 1
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)

    side = max(4.0, 0.45 * len(labels) + 2.5)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of row")
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if shares[row, column] > 0.5 else "black"
        ax.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    names = [str(label) for label in labels]
    ax.set_xticks(range(len(labels)), names)
    ax.set_yticks(range(len(labels)), names)
    ax.set_xlabel(f"predicted {axis_name}")
    ax.set_ylabel(f"expected {axis_name}")
    ax.set_title(f"{title} (n={len(expected_array)})")
    path = _writable(path)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def training_curves_png(history: Sequence[Mapping[str, float]], path: Path, title: str) -> Path:
    """Plot every numeric key of the per-epoch history dicts (except 'epoch') against 'epoch':
    losses on one axes, other metrics on a second axes (keys containing 'loss' are losses). PNG.

    A key missing from some epochs (validation every other epoch) is drawn where present; an
    entry without 'epoch' counts as its 1-based position. Raises MetricsError when there is
    nothing to plot.
    """
    series: dict[str, tuple[list[float], list[float]]] = {}
    for position, entry in enumerate(history, start=1):
        epoch = float(entry.get("epoch", position))
        for key, value in entry.items():
            if key != "epoch" and _is_number(value):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(epoch)
                ys.append(float(value))
    if not series:
        raise MetricsError("history has no numeric keys besides 'epoch' to plot")
    groups = [
        (ylabel, keys)
        for ylabel, keys in (
            ("loss", [key for key in series if "loss" in key]),
            ("metric", [key for key in series if "loss" not in key]),
        )
        if keys
    ]

    fig = Figure(figsize=(5.0 * len(groups), 4.0), layout="constrained")
    fig.suptitle(title)
    for ax, (ylabel, keys) in zip(
        fig.subplots(1, len(groups), squeeze=False)[0], groups, strict=True
    ):
        for key in keys:
            ax.plot(*series[key], marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    path = _writable(path)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _is_number(value: object) -> bool:
    """Whether value plots as a number; bools are flags, not metrics."""
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def prediction_sheet(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    correct: Sequence[bool],
    path: Path,
    columns: int = 6,
    tile_width: int = 160,
) -> Path:
    """Contact sheet of sample predictions: each RGB uint8 image scaled to tile_width wide
    (keeping aspect), with its caption (may hold one line like 'pred 7 / expert 8') under it on
    a white band, green caption when correct else red; images of different sizes allowed.
    Write PNG, return path.

    Each row is as tall as its tallest tile; a caption too wide for the tile is drawn smaller.
    Raises MetricsError on empty or mismatched inputs or an image that is not RGB uint8.
    """
    if not len(images) == len(captions) == len(correct):
        raise MetricsError(
            f"got {len(images)} images, {len(captions)} captions and {len(correct)} flags; "
            "each image needs one caption and one flag"
        )
    if len(images) == 0:
        raise MetricsError("no images for the prediction sheet")
    if columns < 1 or tile_width < 1:
        raise MetricsError(f"columns ({columns}) and tile_width ({tile_width}) must be >= 1")
    tiles = [
        _tile(image, caption, ok, tile_width, position)
        for position, (image, caption, ok) in enumerate(zip(images, captions, correct, strict=True))
    ]

    used_columns = min(columns, len(tiles))
    rows = [tiles[start : start + columns] for start in range(0, len(tiles), columns)]
    row_heights = [max(tile.shape[0] for tile in row) for row in rows]
    width = used_columns * tile_width + (used_columns + 1) * SHEET_GAP
    height = sum(row_heights) + (len(rows) + 1) * SHEET_GAP
    sheet = np.full((height, width, 3), SHEET_BACKGROUND, dtype=np.uint8)
    top = SHEET_GAP
    for row, row_height in zip(rows, row_heights, strict=True):
        for column, tile in enumerate(row):
            left = SHEET_GAP + column * (tile_width + SHEET_GAP)
            sheet[top : top + tile.shape[0], left : left + tile_width] = tile
        top += row_height + SHEET_GAP

    path = _writable(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write the prediction sheet to {path}")
    return path


def _tile(image: np.ndarray, caption: str, correct: bool, width: int, position: int) -> np.ndarray:
    """One RGB tile: the image scaled to width, then its caption lines on a white band."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MetricsError(
            f"images[{position}] has shape {image.shape} and dtype {image.dtype}; "
            "expected an RGB uint8 array of shape (height, width, 3)"
        )
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    interpolation = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (width, height), interpolation=interpolation)

    lines = caption.splitlines() or [""]
    (_, line_height), baseline = cv2.getTextSize("Ag", CAPTION_FONT, CAPTION_SCALE, 1)
    step = line_height + baseline + CAPTION_MARGIN
    band = np.full((len(lines) * step + CAPTION_MARGIN, width, 3), CAPTION_BAND, dtype=np.uint8)
    colour = CAPTION_CORRECT if correct else CAPTION_WRONG
    for number, line in enumerate(lines):
        (text_width, _), _ = cv2.getTextSize(line, CAPTION_FONT, CAPTION_SCALE, 1)
        scale = min(
            CAPTION_SCALE, CAPTION_SCALE * (width - 2 * CAPTION_MARGIN) / max(text_width, 1)
        )
        origin = (CAPTION_MARGIN, (number + 1) * step - baseline)
        cv2.putText(band, line, origin, CAPTION_FONT, scale, colour, 1, cv2.LINE_AA)
    return np.vstack([scaled, band])
