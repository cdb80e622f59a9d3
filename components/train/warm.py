"""Warm starts: a retraining fine-tunes the model it replaces instead of starting from ImageNet.

    warm = WarmStart(champion_dir, seen_items=store.items_at(champion_data_version))
    rows = replay_rows(manifest, warm.seen_items, replay=1.0, seed=7)

The champion has already learnt from the first `seen_items` rows of the manifest (it only
grows). Fine-tuning on the new training items alone would let it forget the older cameras and
cards, so each new item is joined by `replay` older ones drawn at random: the model keeps what
it knew, learns what is new, and trains on a fraction of the data for a few epochs, which is
what keeps continuous retraining fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.train.tasks import TrainDataError


@dataclass(frozen=True)
class WarmStart:
    """Where to start from: a saved model folder and how many leading manifest rows it saw."""

    model_dir: Path
    seen_items: int


def replay_rows(manifest: pd.DataFrame, seen_items: int, replay: float,
                seed: int) -> pd.DataFrame:
    """The training rows of a warm start: every `train` row after the first `seen_items`
    manifest rows, then `replay` times as many earlier `train` rows drawn at random (all of
    them when there are fewer), the new ones first."""
    if not 0 <= seen_items <= len(manifest):
        raise TrainDataError(f"the starting model saw {seen_items} items, but the manifest has "
                             f"{len(manifest)}")
    training = manifest["split"] == "train"
    new = manifest[training & (np.arange(len(manifest)) >= seen_items)]
    if new.empty:
        raise TrainDataError(f"no training items were added after the starting model's "
                             f"{seen_items}: nothing new to fine-tune on")
    older = manifest[training & (np.arange(len(manifest)) < seen_items)]
    count = min(len(older), round(replay * len(new)))
    drawn = older.sample(n=count, random_state=seed).sort_index()
    return pd.concat([new, drawn]).reset_index(drop=True)
