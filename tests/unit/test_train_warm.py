"""Warm starts: a retraining fine-tunes on every new training item and as many older ones,
drawn from what the starting model saw, and starts from weights only of a model built alike."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from components.train.spec import ModelSpec, save_model
from components.train.tasks import TrainDataError
from components.train.trainer import load_start_weights
from components.train.warm import replay_rows


def _manifest(seen: int, added: int) -> pd.DataFrame:
    splits = ["train", "train", "val", "test", "train"]
    return pd.DataFrame({"item_id": [f"c{i}" for i in range(seen + added)],
                         "split": [splits[i % len(splits)] for i in range(seen + added)]})


def test_every_new_training_item_is_kept_and_joined_by_as_many_older_ones() -> None:
    manifest = _manifest(seen=100, added=20)
    rows = replay_rows(manifest, seen_items=100, replay=1.0, seed=7)
    new = manifest.iloc[100:].query("split == 'train'")
    assert list(rows["item_id"][:len(new)]) == list(new["item_id"])
    replayed = rows.iloc[len(new):]
    assert len(replayed) == len(new)
    older = set(manifest.iloc[:100].query("split == 'train'")["item_id"])
    assert set(replayed["item_id"]) <= older and replayed["item_id"].is_unique
    assert list(replay_rows(manifest, 100, 1.0, seed=7)["item_id"]) == list(rows["item_id"])


def test_a_replay_of_more_than_was_seen_takes_everything_seen() -> None:
    manifest = _manifest(seen=10, added=50)
    rows = replay_rows(manifest, seen_items=10, replay=2.0, seed=1)
    assert len(rows) == (manifest["split"] == "train").sum()  # new ones and all six older ones
    assert len(replay_rows(manifest, seen_items=10, replay=0.0, seed=1)) == \
        (manifest.iloc[10:]["split"] == "train").sum()


def test_nothing_new_to_learn_or_a_model_that_saw_more_than_there_is_is_refused() -> None:
    manifest = _manifest(seen=30, added=0)
    with pytest.raises(TrainDataError, match="no training items were added after"):
        replay_rows(manifest, seen_items=30, replay=1.0, seed=0)
    with pytest.raises(TrainDataError, match="saw 31 items, but the manifest has 30"):
        replay_rows(manifest, seen_items=31, replay=1.0, seed=0)


def test_a_start_loads_the_saved_weights_of_a_model_built_alike(tmp_path: Path) -> None:
    spec = ModelSpec(task="grade", classes=(), size=(96, 128), rectify=True, frozen_blocks=11,
                     dropout=0.1)
    saved = spec.build(imagenet=False)
    with torch.no_grad():
        for parameter in saved.head.parameters():
            parameter.add_(0.5)
    folder = save_model(tmp_path / "champion", saved, spec)
    fresh = spec.build(imagenet=False)
    load_start_weights(fresh, spec, folder)
    for name, value in saved.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name

    larger = ModelSpec(**{**spec.__dict__, "size": (192, 256)})
    with pytest.raises(TrainDataError, match=r"its size \(96, 128\) is not \(192, 256\)"):
        load_start_weights(larger.build(imagenet=False), larger, folder)


def test_weights_saved_by_another_layout_of_the_model_are_refused_by_name(tmp_path: Path) -> None:
    """A champion whose head has other tensors than this release builds cannot be warm-started
    from: the error says so instead of torch's list of mismatched tensors."""
    spec = ModelSpec(task="grade", classes=(), size=(96, 128), rectify=True, frozen_blocks=11,
                     dropout=0.1)
    folder = save_model(tmp_path / "champion", spec.build(imagenet=False), spec)
    weights = torch.load(folder / "model.pt", weights_only=True)
    del weights["head.severity_offsets"]
    torch.save(weights, folder / "model.pt")

    with pytest.raises(ValueError, match="another layout of the grade model"):
        load_start_weights(spec.build(imagenet=False), spec, folder)
