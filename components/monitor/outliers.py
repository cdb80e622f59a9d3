"""The served photos farthest from the reference, and their contact sheet: what on-call looks at
first when drift is alerted.

    ids = most_drifted(reference, window, k=12)        # request ids, most drifted first
    sheet = most_drifted_sheet(reference, window, 12, read_thumbnail, folder / "most_drifted.png")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from components.monitor.drift import DriftError
from components.monitor.report import contact_sheet
from components.vision.properties import PROPERTY_NAMES


def property_z_scores(reference: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Robust z-score of every window photo's image properties against the reference:
    (value - reference median) / reference IQR; infinite off a property the reference never
    varies in."""
    ref = reference[list(PROPERTY_NAMES)].astype(float)
    median = ref.median()
    iqr = ref.quantile(0.75) - ref.quantile(0.25)
    offset = current[list(PROPERTY_NAMES)].astype(float) - median
    with np.errstate(divide="ignore", invalid="ignore"):
        z = offset / iqr
    return z.where(offset != 0, 0.0)


def most_drifted(reference: pd.DataFrame, current: pd.DataFrame, k: int) -> list[str]:
    """The request ids of the `k` window photos farthest from the reference on any image
    property (largest absolute robust z-score), most drifted first."""
    if "request_id" not in current.columns:
        raise DriftError("the window lacks the column request_id")
    farthest = property_z_scores(reference, current).abs().max(axis=1)
    order = np.argsort(-farthest.to_numpy(), kind="stable")[:k]
    return [str(current["request_id"].iloc[i]) for i in order]




def most_drifted_sheet(reference: pd.DataFrame, window: pd.DataFrame, count: int,
                       read_thumbnail: Callable[[str], np.ndarray | None],
                       path: Path) -> Path | None:
    """A contact sheet at `path` of the `count` window photos farthest from the reference, each
    captioned with its farthest property; None when no thumbnail of them can be read
    (`read_thumbnail(request_id)` gives the photo, or None)."""
    z_scores = property_z_scores(reference, window).set_axis(window["request_id"])
    photos = []
    for request_id in most_drifted(reference, window, count):
        image = read_thumbnail(request_id)
        if image is not None:
            farthest = z_scores.loc[request_id].abs().idxmax()
            z = z_scores.loc[request_id, farthest]
            photos.append((f"{request_id[:14]} {farthest} z={z:+.1f}", image))
    return contact_sheet(photos, path) if photos else None
