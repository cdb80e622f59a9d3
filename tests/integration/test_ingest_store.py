"""The accepted dataset with real DVC: the same batches give the same data version anywhere,
versions reach the remote, a failed push leaves the dataset exactly as it was, and a snapshot
of a past version is restored beside the working copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from dvc.repo import Repo
from PIL import Image

from components.ingest import (
    TASKS,
    DataRepo,
    DatasetStore,
    ImageLimits,
    IngestError,
    VersioningError,
    check_batch,
    read_batch,
)
from components.ingest.store import DatasetError

pytestmark = pytest.mark.integration


def _add(store: DatasetStore, batch: Path, batch_id: str) -> str:
    checked = check_batch(read_batch(batch, needs_boxes=False), TASKS["grade"], store.index(),
                          ImageLimits(), max_bits=20, workers=1)
    entry = {"batch_id": batch_id, "fingerprint": batch_id, "received": checked.received}
    return store.add_batch(checked.batch, checked.candidates, "grade", checked.classes, entry,
                           source=str(batch))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".dvc/" not in p.as_posix()}


def test_the_same_batches_give_the_same_data_version_on_any_machine(
        factory_batches: dict[str, Path], tmp_path: Path) -> None:
    versions = []
    for machine in ("a", "b"):
        store = DatasetStore(DataRepo(tmp_path / machine / "data", str(tmp_path / machine / "r")),
                             "grade")
        versions.append(_add(store, factory_batches["first"], "batch-1"))
        assert store.version() == versions[-1]
        assert (store.repo.root / "versions" / "grade" / f"{versions[-1]}.dvc.yaml").is_file()
        assert any((tmp_path / machine / "r").rglob("*.dir"))  # the folder listing was pushed

    assert versions[0] == versions[1]


def test_each_batch_makes_a_new_version_and_every_version_can_be_checked_out(
        factory_batches: dict[str, Path], tmp_path: Path) -> None:
    store = DatasetStore(DataRepo(tmp_path / "data", str(tmp_path / "remote")), "grade")
    first = _add(store, factory_batches["first"], "batch-1")
    second = _add(store, factory_batches["second"], "batch-2")
    other = DatasetStore(store.repo, "other")  # a third commit in the same DVC project
    _add(other, factory_batches["bad"], "batch-3")

    assert len({first, second, other.version()}) == 3 and len(store.manifest()) == 70
    kept = store.repo.root / "versions" / "grade" / f"{first}.dvc.yaml"
    (store.repo.root / "grade.dvc").write_text(kept.read_text())
    with Repo(str(store.repo.root)) as repo:
        repo.checkout(targets=[str(store.repo.root / "grade.dvc")], force=True)

    assert len(store.manifest()) == 40  # the first version's dataset is back


def test_a_failed_push_leaves_the_dataset_as_it_was(
        factory_batches: dict[str, Path], tmp_path: Path) -> None:
    good = DataRepo(tmp_path / "data", str(tmp_path / "remote"))
    first = _add(DatasetStore(good, "grade"), factory_batches["first"], "batch-1")
    before = _snapshot(good.root)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the remote folder should be")
    broken = DatasetStore(DataRepo(good.root, str(blocked / "remote")), "grade")

    with pytest.raises(VersioningError):
        _add(broken, factory_batches["second"], "batch-2")

    assert _snapshot(good.root) == before
    assert broken.version() == first
    assert len(broken.manifest()) == 40


def test_a_second_ingest_of_the_same_dataset_waits_and_then_says_why(tmp_path: Path) -> None:
    store = DatasetStore(DataRepo(tmp_path / "data", str(tmp_path / "remote")), "grade")

    busy = pytest.raises(IngestError, match="another ingest of dataset 'grade'")
    with store.locked(), busy, store.locked(timeout_s=0.3):
        pass

    with store.locked(timeout_s=0.3):  # released: free again
        pass


def test_accepted_photos_are_stored_without_their_camera_metadata(
        factory_batches: dict[str, Path], tmp_path: Path) -> None:
    batch = shutil.copytree(factory_batches["first"], tmp_path / "batch")
    photo = sorted((batch / "images").glob("*.jpg"))[0]
    exif = Image.Exif()
    exif[0x013B] = "Ada Lovelace"  # Artist: a person's name in the camera's EXIF
    with Image.open(photo) as image:
        image.save(photo, "JPEG", exif=exif, quality=95)
    store = DatasetStore(DataRepo(tmp_path / "data", str(tmp_path / "remote")), "grade")

    _add(store, batch, "batch-1")

    stored = list((store.root / "images").rglob("*.jpg"))
    assert len(stored) == 40 and not any(b"Ada Lovelace" in p.read_bytes() for p in stored)


def test_a_snapshot_is_the_working_copy_or_a_past_version_restored_beside_it(
        factory_batches: dict[str, Path], tmp_path: Path) -> None:
    repo = DataRepo(tmp_path / "data", str(tmp_path / "remote"))
    store = DatasetStore(repo, "grade", restored_in=tmp_path / "cache" / "grade")
    with pytest.raises(DatasetError, match="has no data yet"):
        store.snapshot("grade")
    first = _add(store, factory_batches["first"], "batch-1")
    second = _add(store, factory_batches["second"], "batch-2")

    current = store.snapshot("grade")
    past = store.snapshot("grade", first)

    assert (current.version, current.root) == (second, store.root)
    assert past.version == first and past.root.is_relative_to(tmp_path / "cache")
    assert len(pd.read_csv(past.root / "manifest.csv")) == 40 and len(store.manifest()) == 70
    assert past.classes == current.classes
    with pytest.raises(DatasetError, match="holds 'grade' labels, not 'detect'"):
        store.snapshot("detect")
    with pytest.raises(DatasetError, match="needs a folder to restore it in"):
        DatasetStore(repo, "grade").snapshot("grade", first)
