"""The photo workers: an upload prepared in a worker process is what the grader's own
preparation gives in the service's process, and a refused upload comes back as the same refusal."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.cards import synthesize_batch
from components.serving.preparing import PreparePool
from components.serving.uploads import UploadLimits, UploadRejected, decode_upload
from components.thumbnails import thumbnail_path
from components.vision.models import Preparation
from components.vision.properties import image_properties


@pytest.mark.parametrize("workers", [0, 1])
def test_a_worker_prepares_as_the_grader_does(workers: int, tmp_path: Path) -> None:
    synthesize_batch(tmp_path / "batch", n=2, seed=3, camera="phone")
    photos = sorted((tmp_path / "batch" / "images").glob("*.jpg"))
    preparation = Preparation(rectify=True, size=(96, 128))

    async def scenario() -> list:
        pool = PreparePool(workers, UploadLimits(), tmp_path / "thumbnails")
        await pool.start()
        try:
            return await asyncio.gather(*(pool.prepare(path.read_bytes(), preparation,
                                                       f"request-{i}")
                                          for i, path in enumerate(photos)))
        finally:
            await pool.stop()

    for i, (path, upload) in enumerate(zip(photos, asyncio.run(scenario()), strict=True)):
        photo = decode_upload(path.read_bytes(), UploadLimits())
        expected = preparation(photo)
        assert np.array_equal(upload.photo, photo)
        assert np.array_equal(upload.prepared.pixels, expected.pixels)
        assert upload.prepared.centering == expected.centering
        assert upload.properties == image_properties(photo)
        assert upload.preparation == preparation
        assert thumbnail_path(tmp_path / "thumbnails", f"request-{i}").is_file()


def test_a_refused_upload_comes_back_from_a_worker_whole(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")

    async def scenario() -> None:
        pool = PreparePool(1, UploadLimits(), None)
        await pool.start()
        try:
            await pool.prepare(buffer.getvalue(), Preparation(True, (96, 128)), "tiny")
        finally:
            await pool.stop()

    with pytest.raises(UploadRejected) as refused:
        asyncio.run(scenario())
    assert refused.value.status == 422 and refused.value.reason == "too_small"
    assert "8 x 8" in refused.value.message


def test_a_pool_must_be_started_and_counts_its_workers() -> None:
    with pytest.raises(ValueError, match="workers >= 0"):
        PreparePool(-1, UploadLimits(), None)
    with pytest.raises(RuntimeError, match="start"):
        asyncio.run(PreparePool(0, UploadLimits(), None).prepare(b"", Preparation(True, (8, 8)),
                                                                  "x"))
