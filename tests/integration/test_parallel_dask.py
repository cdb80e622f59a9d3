"""Image-parallel work on Dask (settings `parallel_backend: dask`): the card factory writes the
same bytes as on forked processes, and ingest's image checks run on the workers of a scheduler
given by address, with the same results in the same order. Dask's clusters here are local ones
on loopback, started and closed by the tests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster

from components.cards import synthesize_batch
from components.ingest.images import ImageLimits, check_images

pytestmark = pytest.mark.integration


def _digest(folder: Path) -> str:
    """One hash of every file of a batch but batch.json (which records how long it took)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "batch.json"):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GRADELINE_PARALLEL_BACKEND", "dask")
    yield


def test_the_factory_writes_the_same_bytes_on_dask(backend: None, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    on_dask = synthesize_batch(tmp_path / "dask", n=80, seed=5, workers=2)
    monkeypatch.setenv("GRADELINE_PARALLEL_BACKEND", "processes")
    synthesize_batch(tmp_path / "processes", n=80, seed=5, workers=2)

    assert on_dask.count == 80
    assert _digest(tmp_path / "dask") == _digest(tmp_path / "processes")


def test_image_checks_run_on_the_workers_of_a_scheduler_given_by_address(
        backend: None, factory_batches: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    paths = sorted(path for batch in factory_batches.values()
                   for path in (batch / "images").glob("*.jpg"))  # 130: three chunks
    here = check_images(paths, ImageLimits(), workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        monkeypatch.setenv("GRADELINE_DASK_SCHEDULER", cluster.scheduler_address)
        on_dask = check_images(paths, ImageLimits(), workers=2)
        ran = set(cluster.scheduler.task_prefixes)

    assert on_dask == here and len(here) == len(paths) == 130
    assert ran == {"check_chunk"}  # dask names tasks after the function, less its underscore
    assert os.environ["GRADELINE_DASK_SCHEDULER"].startswith("tcp://127.0.0.1:")
