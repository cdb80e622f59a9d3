"""Small copies of served photos, so that monitoring can show the ones that drifted most.

    save_thumbnail(folder, "req-42", photo)      # <folder>/<sha256 of the id>[:24].jpg
    thumbnail_path(folder, "req-42")             # where it is, whether or not it exists

The prediction log keeps a photo's properties, not the photo; a thumbnail of at most
THUMBNAIL_SIDE pixels (a few kB) is enough for people to see what changed. The file is named by
a hash of the request id, so no id ever becomes a path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

THUMBNAIL_SIDE = 160


def thumbnail_path(folder: Path, request_id: str) -> Path:
    """Where the thumbnail of `request_id` lives under `folder`."""
    return folder / f"{hashlib.sha256(request_id.encode()).hexdigest()[:24]}.jpg"


def save_thumbnail(folder: Path, request_id: str, bgr: np.ndarray) -> Path:
    """Write a JPEG of `bgr` with its longer side at most THUMBNAIL_SIDE; its path."""
    scale = min(1.0, THUMBNAIL_SIDE / max(bgr.shape[:2]))
    small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    path = thumbnail_path(folder, request_id)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path
