"""Latency and throughput of one predictor, measured the same way for every backend so the
rows of the table compare: p50/p99 milliseconds per image at batch 1, images/s at batch 32.

    row = measure_latency("onnx fp32", session, pixels, geometry, runs=50)
    row.p50_ms, row.p99_ms, row.images_per_s
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

THROUGHPUT_BATCH = 32
Predict = Callable[[np.ndarray, np.ndarray], object]


@dataclass(frozen=True)
class Latency:
    """One row of the latency table."""

    backend: str
    p50_ms: float  # per image, batch 1
    p99_ms: float
    images_per_s: float  # at batch THROUGHPUT_BATCH

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _batch(array: np.ndarray, size: int) -> np.ndarray:
    """`size` rows of `array`, repeated when it holds fewer."""
    return np.resize(array, (size, *array.shape[1:]))


def measure_latency(backend: str, predict: Predict, pixels: np.ndarray, geometry: np.ndarray,
                    runs: int = 50, batch_runs: int = 5, warmup: int = 3) -> Latency:
    """Time `predict` on single images (cycling through the given ones) and on full batches,
    after `warmup` calls of each that are not counted (first calls allocate and plan)."""
    if len(pixels) == 0:
        raise ValueError("latency needs at least one image")
    single = []
    for i in range(warmup + runs):
        row = i % len(pixels)
        started = time.perf_counter()
        predict(pixels[row:row + 1], geometry[row:row + 1])
        if i >= warmup:
            single.append(time.perf_counter() - started)
    batch_pixels = _batch(pixels, THROUGHPUT_BATCH)
    batch_geometry = _batch(geometry, THROUGHPUT_BATCH)
    for _ in range(warmup):
        predict(batch_pixels, batch_geometry)
    started = time.perf_counter()
    for _ in range(batch_runs):
        predict(batch_pixels, batch_geometry)
    elapsed = time.perf_counter() - started
    milliseconds = np.array(single) * 1000
    return Latency(backend=backend, p50_ms=round(float(np.percentile(milliseconds, 50)), 2),
                   p99_ms=round(float(np.percentile(milliseconds, 99)), 2),
                   images_per_s=round(THROUGHPUT_BATCH * batch_runs / elapsed, 1))


def latency_metrics(rows: list[Latency]) -> dict[str, float]:
    """Flat metric names for a run: `latency.<backend>.p50_ms`, `.p99_ms`, `.images_per_s`."""
    return {f"latency.{row.backend.replace(' ', '_')}.{key}": getattr(row, key) for row in rows
            for key in ("p50_ms", "p99_ms", "images_per_s")}
