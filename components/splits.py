"""The dataset splits every stage agrees on, and a stable split for items that bring none.

Training fits on `train`, early-stops on `val`, calibration (temperature, conformal sets) fits on
`calibration`, and the expert-agreement report reads only `test`.
"""

from __future__ import annotations

import hashlib

SPLITS: tuple[tuple[str, float], ...] = (
    ("train", 0.7),
    ("val", 0.1),
    ("calibration", 0.1),
    ("test", 0.1),
)
SPLIT_NAMES: tuple[str, ...] = tuple(name for name, _ in SPLITS)


def split_for(roll: float, leave_out: tuple[str, ...] = ()) -> str:
    """The split whose share of [0, 1) contains `roll`, the splits in `leave_out` given none
    (the others' shares grow in proportion)."""
    kept = [(name, share) for name, share in SPLITS if name not in leave_out]
    if not kept:
        raise ValueError(f"leaving out {', '.join(leave_out)} leaves no split")
    whole, total = sum(share for _, share in kept), 0.0
    for name, share in kept:
        total += share / whole
        if roll < total:
            return name
    return kept[-1][0]


def stable_split(key: str, leave_out: tuple[str, ...] = ()) -> str:
    """A split drawn from a hash of `key` (an item id): the same item lands in the same split in
    every batch and on every machine, so re-labeled copies cannot cross from train to test.
    `leave_out` names splits the item may not land in (a biased sample never goes to test)."""
    digest = hashlib.sha256(key.encode()).digest()
    return split_for(int.from_bytes(digest[:8], "big") / 2**64, leave_out)
