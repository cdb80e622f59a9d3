"""The detector's starter checkpoint: trained from scratch on factory cards, resumed after an
interruption, and written with the record of how it was made only once the run has finished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.cards import detection_batch
from components.train.pretrain import PretrainConfig, pretrain_detector

TINY = PretrainConfig(cards=20, seed=3, epochs=2, imgsz=64, batch=8, device="cpu")


def test_an_interrupted_pretraining_resumes_and_only_a_finished_one_writes_the_starter(
        tmp_path: Path) -> None:
    starter = tmp_path / "models" / "detector-starter.pt"

    def die(row: dict[str, float]) -> None:
        raise RuntimeError("the session ended")

    cards = detection_batch(tmp_path / "work" / "cards", n=TINY.cards, seed=TINY.seed)
    with pytest.raises(RuntimeError, match="the session ended"):
        pretrain_detector(TINY, cards, tmp_path / "work", starter, on_epoch=die)
    assert not starter.exists()

    epochs: list[int] = []
    record = pretrain_detector(TINY, cards, tmp_path / "work", starter,
                               on_epoch=lambda row: epochs.append(int(row["epoch"])))

    assert epochs == [2]  # the first epoch was not trained again
    assert starter.is_file() and starter.stat().st_size > 1_000_000
    written = json.loads(starter.with_suffix(".json").read_text())
    assert written == record
    assert written["epochs_run"] == 2 and written["device"] == "cpu"
    assert written["config"]["cards"] == 20 and written["config"]["seed"] == 3
    assert {"val_map50", "val_recall.crease"} <= set(written)
