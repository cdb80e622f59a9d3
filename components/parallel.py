"""Run a function over chunks of work in forked worker processes, results in order.

    for results in map_chunks(check_chunk, chunks, workers=2):
        ...

Both the card factory and the ingest image checks are CPU-bound OpenCV and Pillow work on many
small images, so they share this one door to the cores. Workers are forked (no re-import of the
caller's `__main__`) with OpenCV held to one thread each: the pool already uses every core.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import cv2

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")


def default_workers() -> int:
    """Every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _start_worker() -> None:
    cv2.setNumThreads(1)


def map_chunks(
    function: Callable[[Chunk], Result],
    chunks: Sequence[Chunk],
    workers: int | None = None,
) -> Iterator[Result]:
    """Yield `function(chunk)` for each chunk in order; in the caller's process when one worker
    (or one chunk) is asked, else in a pool of forked workers that is shut down afterwards.

    Forking while OpenCV's thread pool runs copies the pool without its threads, and the workers
    deadlock inside cv2. OpenCV is held to one thread while the pool forks its workers (all of
    them, since `map` submits every chunk at once), then the caller's setting is restored.
    """
    workers = workers or default_workers()
    if workers == 1 or len(chunks) <= 1:
        yield from map(function, chunks)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)), initializer=_start_worker,
                               mp_context=multiprocessing.get_context("fork"))
    try:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            results = pool.map(function, chunks)
        finally:
            cv2.setNumThreads(threads)
        yield from results
    finally:
        pool.shutdown(cancel_futures=True)
