"""Copies of served photos: small ones of every photo, so that monitoring can show the ones that
drifted most, and large ones of the photos experts will review, with what the model measured.

    save_thumbnail(folder, "req-42", photo)      # <folder>/<sha256 of the id>[:24].jpg
    thumbnail_path(folder, "req-42")             # where it is, whether or not it exists
    save_review_copy(folder, "req-42", photo, overlay)   # <folder>/review/<hash>.jpg and .json
    read_review_copy(folder, "req-42")           # (its path, its overlay), or None

The prediction log keeps a photo's properties, not the photo; a thumbnail of at most
THUMBNAIL_SIDE pixels (a few kB) is enough for people to see what changed. An expert grading a
card needs it large (REVIEW_SIDE), with the card's outline, its print frame and the defects the
model found drawn on it (`review_overlay`, in the copy's pixels). Files are named by a hash of
the request id, so no id ever becomes a path; retention prunes both kinds alike.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

THUMBNAIL_SIDE = 160
REVIEW_SIDE = 1600


def thumbnail_path(folder: Path, request_id: str) -> Path:
    """Where the thumbnail of `request_id` lives under `folder`."""
    return folder / f"{hashlib.sha256(request_id.encode()).hexdigest()[:24]}.jpg"


def save_thumbnail(folder: Path, request_id: str, bgr: np.ndarray) -> Path:
    """Write a JPEG of `bgr` with its longer side at most THUMBNAIL_SIDE; its path."""
    return _save(thumbnail_path(folder, request_id), bgr, THUMBNAIL_SIDE, 85)[0]


def _save(path: Path, bgr: np.ndarray, side: int, quality: int) -> tuple[Path, float]:
    """Write a JPEG of `bgr` with its longer side at most `side`; its path and the scale."""
    scale = min(1.0, side / max(bgr.shape[:2]))
    small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path, scale


def review_overlay(centering: dict[str, object] | None,
                   defects: list[dict[str, object]]) -> dict[str, object]:
    """What the expert's page draws on a photo, in its pixels: the card's outline and its print
    frame (the centering measurement's corners) and each defect's class and box; never a
    grade, so that nothing anchors the expert's."""
    return {"outer": (centering or {}).get("outer_corners"),
            "inner": (centering or {}).get("inner_corners"),
            "defects": [{"class": defect["class"], "box": defect["box"]} for defect in defects]}


def save_review_copy(folder: Path, request_id: str, bgr: np.ndarray,
                     overlay: dict[str, object]) -> Path:
    """Write a large JPEG of `bgr` (longer side at most REVIEW_SIDE) and `overlay` scaled to
    it beside it; the JPEG's path."""
    path, scale = _save(_review_path(folder, request_id), bgr, REVIEW_SIDE, 90)
    scaled = {**overlay, **{key: _scaled(overlay.get(key), scale) for key in ("outer", "inner")},
              "defects": [{**defect, "box": _scaled(defect["box"], scale)}
                          for defect in overlay.get("defects", [])]}
    path.with_suffix(".json").write_text(json.dumps(scaled))
    return path


def read_review_copy(folder: Path, request_id: str) -> tuple[Path, dict[str, object]] | None:
    """The large copy of a served photo and its overlay, or None when none was kept."""
    path = _review_path(folder, request_id)
    if not (path.is_file() and path.with_suffix(".json").is_file()):
        return None
    return path, json.loads(path.with_suffix(".json").read_text())


def _review_path(folder: Path, request_id: str) -> Path:
    return folder / "review" / thumbnail_path(folder, request_id).name


def _scaled(values: object, scale: float) -> object:
    """Coordinates (numbers, or lists of them, nested) times `scale`; None stays None."""
    if values is None:
        return None
    if isinstance(values, list):
        return [_scaled(value, scale) for value in values]
    return round(float(values) * scale, 1)
