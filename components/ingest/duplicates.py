"""Find exact and near duplicates within a batch and against every accepted item of the dataset,
so that the same photo cannot sit in train and in test, or be counted twice.

    found = find_duplicates(candidates, accepted, max_bits=20)   # {position: Problem}

Exact means the same sha256; near means perceptual hashes at most `max_bits` apart (see
`images.perceptual_hash` for what that catches). Within a batch the first occurrence stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.ingest.images import hash_words
from components.ingest.model import Problem, Reason

_ROWS_PER_BLOCK = 512


@dataclass(frozen=True)
class Fingerprints:
    """Identities of a set of images: names for messages, sha256 and perceptual hashes."""

    names: list[str]
    sha256: list[str]
    phash: list[str]


def _distances(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Hamming distances between every row hash and every column hash, word by word so the
    temporaries stay one (rows x columns) array of bytes each."""
    total = np.zeros((len(rows), len(columns)), dtype=np.uint16)
    for word in range(rows.shape[1]):
        total += np.bitwise_count(rows[:, word, None] ^ columns[None, :, word])
    return total


def _nearest(rows: np.ndarray, columns: np.ndarray, max_bits: int, earlier_only: bool):
    """For each row: the first column within `max_bits` (only columns before it when
    `earlier_only`, rows and columns then being the same hashes), and its distance; -1 where
    there is none."""
    found = np.full(len(rows), -1)
    bits = np.zeros(len(rows), dtype=np.uint16)
    if len(columns) == 0:
        return found, bits
    for start in range(0, len(rows), _ROWS_PER_BLOCK):
        stop = min(start + _ROWS_PER_BLOCK, len(rows))
        block = _distances(rows[start:stop], columns[:stop] if earlier_only else columns)
        if earlier_only:
            later = np.arange(block.shape[1])[None, :] >= np.arange(start, stop)[:, None]
            block[later] = np.iinfo(block.dtype).max
        close = block <= max_bits
        first = close.argmax(axis=1)
        found[start:stop] = np.where(close.any(axis=1), first, -1)
        bits[start:stop] = block[np.arange(len(block)), first]
    return found, bits


def find_duplicates(
    batch: Fingerprints, accepted: Fingerprints, max_bits: int
) -> dict[int, Problem]:
    """Positions in `batch` that repeat an accepted item or an earlier batch item, with why."""
    problems: dict[int, Problem] = {}
    accepted_sha = {sha: name for name, sha in zip(accepted.names, accepted.sha256, strict=True)}
    first_seen: dict[str, str] = {}
    for position, (name, sha) in enumerate(zip(batch.names, batch.sha256, strict=True)):
        if sha in accepted_sha:
            problems[position] = Problem(Reason.ALREADY_ACCEPTED, f"{name}: same bytes as "
                                         f"accepted item {accepted_sha[sha]}")
        elif sha in first_seen:
            problems[position] = Problem(Reason.DUPLICATE,
                                         f"{name}: same bytes as {first_seen[sha]} in this batch")
        else:
            first_seen[sha] = name
    hashes = hash_words(batch.phash)
    near_accepted, accepted_bits = _nearest(hashes, hash_words(accepted.phash), max_bits, False)
    near_batch, batch_bits = _nearest(hashes, hashes, max_bits, True)
    for position, name in enumerate(batch.names):
        if position in problems:
            continue
        if near_accepted[position] >= 0:
            other = accepted.names[near_accepted[position]]
            problems[position] = Problem(Reason.ALREADY_ACCEPTED, f"{name}: near duplicate of "
                                         f"accepted item {other} ({accepted_bits[position]} bits)")
        elif near_batch[position] >= 0:
            other = batch.names[near_batch[position]]
            problems[position] = Problem(Reason.NEAR_DUPLICATE, f"{name}: near duplicate of "
                                         f"{other} in this batch ({batch_bits[position]} bits)")
    return problems
