"""The one factory of a home's dataset: its data folder, DVC remote and restore folder all come
from the settings, and nothing is created until the dataset is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.ingest.store import DatasetError, DatasetStore
from components.settings import load_settings


def test_a_dataset_of_a_home_lives_in_its_data_folder_and_restores_in_its_cache(
        tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)

    store = DatasetStore.of(settings, "grade")

    assert store.root == settings.data_dir / "grade"
    assert store.repo.remote == settings.dvc_remote
    assert store.restored_in == settings.cache_dir / "datasets" / "grade"
    assert not settings.data_dir.exists()


def test_a_snapshot_of_a_dataset_without_data_says_to_ingest_first(tmp_path: Path) -> None:
    store = DatasetStore.of(load_settings(home=tmp_path), "grade")

    with pytest.raises(DatasetError, match="`gradeline ingest` a batch with --task grade first"):
        store.snapshot("grade")
