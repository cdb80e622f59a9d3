"""Find exact and near duplicates within a batch and against every accepted item of the dataset,
so that the same photo cannot sit in train and in test, or be counted twice.

    found = find_duplicates(candidates, accepted, max_bits=20, min_similarity=0.96)

Exact means the same sha256. Near means perceptual hashes at most `max_bits` apart (see
`images.perceptual_hash` for what that catches) and, where both images' files are known, pixels
that agree: grey thumbnails correlating at least `min_similarity` (`images.pixel_signature`).
The hash alone calls distinct look-alikes copies (photos of one part type from a fixed camera,
small plain images: rendered digits of one class are often a few bits apart); the pixels tell a
copy from another photo of a similar thing. Within a batch the first occurrence stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.ingest.images import hash_words, pixel_signature
from components.ingest.model import Problem, Reason
from components.vision.photos import upright_rgb

_ROWS_PER_BLOCK = 512
# Thumbnails of a copy correlate at least this much (images.pixel_signature has the figures).
MIN_SIMILARITY = 0.96


@dataclass(frozen=True)
class Fingerprints:
    """Identities of a set of images: names for messages, sha256 and perceptual hashes."""

    names: list[str]
    sha256: list[str]
    phash: list[str]
    # The image files, to confirm a near hash on pixels; none given: hashes alone decide.
    paths: list[str] = field(default_factory=list)


class _Signatures:
    """Pixel signatures of a set of images, each read once and only when a hash asks for it;
    None for an image without a readable file (its hash then decides alone)."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = paths
        self._read: dict[int, np.ndarray | None] = {}

    def get(self, index: int) -> np.ndarray | None:
        if index not in self._read:
            self._read[index] = self._signature(index)
        return self._read[index]

    def _signature(self, index: int) -> np.ndarray | None:
        if index >= len(self._paths):
            return None
        try:
            return pixel_signature(np.asarray(upright_rgb(Path(self._paths[index]))))
        except (OSError, ValueError):
            return None


@dataclass(frozen=True)
class _PixelCheck:
    """Confirms near hashes between rows and columns on pixels, at `min_similarity`."""

    rows: _Signatures
    columns: _Signatures
    min_similarity: float

    def similarity(self, row: int, column: int) -> float | None:
        """Correlation of the two thumbnails; None where either image cannot be read."""
        a, b = self.rows.get(row), self.columns.get(column)
        return None if a is None or b is None else float(a @ b)

    def same_picture(self, row: int, column: int) -> bool:
        similarity = self.similarity(row, column)
        return similarity is None or similarity >= self.min_similarity


def _distances(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Hamming distances between every row hash and every column hash, word by word so the
    temporaries stay one (rows x columns) array of bytes each."""
    total = np.zeros((len(rows), len(columns)), dtype=np.uint16)
    for word in range(rows.shape[1]):
        total += np.bitwise_count(rows[:, word, None] ^ columns[None, :, word])
    return total


def _nearest(rows: np.ndarray, columns: np.ndarray, max_bits: int, earlier_only: bool,
             pixels: _PixelCheck | None):
    """For each row: the first column within `max_bits` that `pixels` confirms as the same
    picture (only columns before it when `earlier_only`, rows and columns then being the same
    hashes), and its distance; -1 where there is none."""
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
        for offset, close in enumerate(block <= max_bits):
            row = start + offset
            confirmed = (column for column in np.flatnonzero(close)
                         if pixels is None or pixels.same_picture(row, int(column)))
            first = next(confirmed, -1)
            if first >= 0:
                found[row], bits[row] = first, block[offset, first]
    return found, bits


def _alike(pixels: _PixelCheck | None, row: int, column: int) -> str:
    """How alike the pixels of a confirmed pair are, for the message."""
    similarity = None if pixels is None else pixels.similarity(row, column)
    return "" if similarity is None else f", pixels {similarity:.3f} alike"


def find_duplicates(
    batch: Fingerprints, accepted: Fingerprints, max_bits: int,
    min_similarity: float = MIN_SIMILARITY
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
    in_batch = _Signatures(batch.paths)
    against_accepted = (_PixelCheck(in_batch, _Signatures(accepted.paths), min_similarity)
                        if batch.paths else None)
    within_batch = _PixelCheck(in_batch, in_batch, min_similarity) if batch.paths else None
    near_accepted, accepted_bits = _nearest(hashes, hash_words(accepted.phash), max_bits, False,
                                            against_accepted)
    near_batch, batch_bits = _nearest(hashes, hashes, max_bits, True, within_batch)
    for position, name in enumerate(batch.names):
        if position in problems:
            continue
        if near_accepted[position] >= 0:
            column = int(near_accepted[position])
            problems[position] = Problem(
                Reason.ALREADY_ACCEPTED, f"{name}: near duplicate of accepted item "
                f"{accepted.names[column]} ({accepted_bits[position]} bits"
                f"{_alike(against_accepted, position, column)})")
        elif near_batch[position] >= 0:
            column = int(near_batch[position])
            problems[position] = Problem(
                Reason.NEAR_DUPLICATE, f"{name}: near duplicate of {batch.names[column]} in "
                f"this batch ({batch_bits[position]} bits{_alike(within_batch, position, column)})")
    return problems
