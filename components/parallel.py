"""Run a function over chunks of work in worker processes, results in order: forked processes
on this machine, or Dask workers (settings `parallel_backend`, `dask_scheduler`).

    for results in map_chunks(check_chunk, chunks, workers=2):
        ...

The card factory, the ingest image checks and image preparation are CPU-bound OpenCV and Pillow
work on many small images, so they share this one door to the cores. Forked workers need no
re-import of the caller's `__main__`; Dask's run anywhere its scheduler reaches (a local
cluster of `workers` processes when no scheduler is given). Either way each worker holds OpenCV
to one thread: the workers already use every core.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import cv2

from components.settings import load_settings

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
    (or one chunk) is asked, else on the settings' backend. `function` must be importable by
    name (a module-level function) for Dask's workers to run it."""
    workers = workers or default_workers()
    if workers == 1 or len(chunks) <= 1:
        yield from map(function, chunks)
        return
    settings = load_settings()
    if settings.parallel_backend == "dask":
        yield from _on_dask(function, chunks, workers, settings.dask_scheduler)
    else:
        yield from _on_forked_processes(function, chunks, workers)


def _on_forked_processes(function: Callable[[Chunk], Result], chunks: Sequence[Chunk],
                         workers: int) -> Iterator[Result]:
    """A pool of forked workers, shut down afterwards.

    Forking while OpenCV's thread pool runs copies the pool without its threads, and the workers
    deadlock inside cv2. OpenCV is held to one thread while the pool forks its workers (all of
    them, since `map` submits every chunk at once), then the caller's setting is restored.
    """
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


def _on_dask(function: Callable[[Chunk], Result], chunks: Sequence[Chunk], workers: int,
             scheduler: str | None) -> Iterator[Result]:
    """Every chunk submitted at once to the scheduler at `scheduler`, or to a local cluster of
    `workers` single-threaded processes made for this job; results in the chunks' order."""
    from distributed import Client, LocalCluster  # only the dask backend pays for the import

    cluster = None if scheduler else LocalCluster(
        n_workers=min(workers, len(chunks)), threads_per_worker=1, processes=True,
        dashboard_address=None, silence_logs=logging.WARNING)
    client = Client(scheduler or cluster, set_as_default=False)
    try:
        client.run(_start_worker)
        futures = client.map(function, chunks, pure=False)
        try:
            for future in futures:
                yield future.result()
        finally:
            client.cancel(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
