"""Edit factory batches the way users break them: manifest rows, and broken files of the kinds
users upload, made cheaply for the ingest tests."""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def read_rows(batch: Path) -> list[dict[str, str]]:
    """The manifest rows of a batch folder, as text."""
    with (batch / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(batch: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> None:
    """Replace the batch's manifest by `rows`, with `columns` (default: the first row's keys)."""
    columns = columns or list(rows[0])
    with (batch / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png_bomb(path: Path, side: int = 30000) -> Path:
    """A valid greyscale PNG of side x side black pixels: under 1 MB on disk, `side`² bytes
    once decoded (900 MB at 30000), which is what a decompression bomb is."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat)
                     + _chunk(b"IEND", b""))
    return path


def write_truncated_png(path: Path, width: int = 96, height: int = 128) -> Path:
    """A noisy PNG cut to half its length, as an interrupted upload leaves it."""
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    data = cv2.imencode(".png", pixels)[1].tobytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_corrupt_jpeg(path: Path) -> Path:
    """Starts like a JPEG, then garbage: no decoder can make an image of it."""
    path.write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(1).bytes(2000))
    return path
