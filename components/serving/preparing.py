"""Uploads made ready for a grader off the event loop: decoding, finding and rectifying the card,
the image properties monitoring reads and the thumbnail it keeps, in threads of the service's
process or in worker processes.

    pool = PreparePool(workers=2, limits=UploadLimits(), thumbnails=home / "thumbnails")
    await pool.start()
    upload = await pool.prepare(data, grader.preparation, name=request_id)
    upload.photo, upload.prepared, upload.properties
    await pool.stop()

This work is Python and numpy between OpenCV calls, so threads take turns on one interpreter
lock with the event loop; a worker process per core (`workers=2` here) gave the service 2.0x
`mlflow models serve` closed-loop against 1.5x in threads (`workers=0`). But at twice the
capacity such workers starved the event loop and answers collapsed; at a lower priority they
held the overload and were no faster than threads (measured, README "Serve and promote"), so
`gradeline serve` uses threads unless `serve.prepare_in_processes` says otherwise.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from components.serving.uploads import UploadLimits, decode_upload
from components.thumbnails import save_thumbnail
from components.vision.models import GraderInput
from components.vision.properties import image_properties

Preparing = Callable[[np.ndarray], GraderInput]
_WORKER_NICENESS = 10


@dataclass(frozen=True)
class PreparedUpload:
    """One upload decoded (upright BGR), made ready for a grader, and measured for monitoring."""

    photo: np.ndarray
    prepared: GraderInput
    properties: dict[str, float]
    preparation: Preparing  # what made `prepared`: a grader with an equal one reads it as is


def prepare_upload(data: bytes, limits: UploadLimits, preparation: Preparing,
                   thumbnails: Path | None, name: str) -> PreparedUpload:
    """Decode `data` (UploadRejected when it is no acceptable photo), keep its thumbnail under
    `name` when `thumbnails` is set, and prepare it with `preparation`."""
    photo = decode_upload(data, limits)
    if thumbnails is not None:
        save_thumbnail(thumbnails, name, photo)
    return PreparedUpload(photo, preparation(photo), image_properties(photo), preparation)


def _ready() -> bool:
    """A task for each new worker, so it has imported everything before the first photo."""
    return True


def _yield_to_the_service() -> None:
    """Each worker runs at a lower priority than the service's process, whose event loop
    refuses what does not fit and whose graph finishes admitted photos: at twice the capacity,
    workers at the same priority starved it (answers fell from 28 to 11 a second, measured)."""
    os.nice(_WORKER_NICENESS)


class PreparePool:
    """Worker processes (or a few threads of this process, with `workers=0`) that run
    `prepare_upload`."""

    def __init__(self, workers: int, limits: UploadLimits, thumbnails: Path | None) -> None:
        if workers < 0:
            raise ValueError(f"PreparePool needs workers >= 0, got {workers}")
        self.workers, self.limits, self.thumbnails = workers, limits, thumbnails
        self._executor: Executor | None = None

    async def start(self) -> None:
        """Start the workers and wait until each has loaded its modules."""
        if self._executor is not None:
            return
        if self.workers == 0:
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="prepare")
            return
        # Spawned, not forked: the service's process already runs threads (uvicorn, ONNX
        # Runtime), and a fork copies their locks in whatever state they were.
        self._executor = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_yield_to_the_service)
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, _ready)
                               for _ in range(self.workers)))

    async def prepare(self, data: bytes, preparation: Preparing, name: str) -> PreparedUpload:
        """`prepare_upload` of one upload on a worker (`preparation` must pickle when the
        workers are processes, as a grader's `Preparation` does)."""
        if self._executor is None:
            raise RuntimeError("PreparePool is not running: call start() first")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, partial(prepare_upload, data, self.limits, preparation,
                                    self.thumbnails, name))

    async def stop(self) -> None:
        """Let the photos being prepared finish, then end the workers."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, True)
