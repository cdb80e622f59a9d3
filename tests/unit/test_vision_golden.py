"""The fast preprocessing against the one before it (issue 19): the same factory photos of every
camera, prepared as the service prepares them, measured the same to within a tenth of a point of
centering. `golden/preprocessing.json` was written by the slower code on 2026-12-06."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from components.cards import synthesize_batch
from components.vision.prepare import prepare_photo
from components.vision.rubric import centering_subgrade

GOLDEN = json.loads((Path(__file__).parent / "golden" / "preprocessing.json").read_text())
SEEDS = {"studio": 31, "phone": 32, "warehouse": 33}


@pytest.mark.parametrize("camera", sorted(SEEDS))
def test_the_fast_preprocessing_measures_what_the_old_one_did(camera: str,
                                                                tmp_path: Path) -> None:
    synthesize_batch(tmp_path, n=12, seed=SEEDS[camera], camera=camera)
    golden = {row["photo"]: row for row in GOLDEN if row["camera"] == camera}
    assert len(golden) == 12
    for name, before in golden.items():
        prepared = prepare_photo(cv2.imread(str(tmp_path / "images" / name)), True, (152, 216))
        now = prepared.centering
        assert now is not None, f"{name}: the card is no longer found"
        assert abs(now.centering_lr - before["centering_lr"]) <= 0.1, name
        assert abs(now.centering_tb - before["centering_tb"]) <= 0.1, name
        assert centering_subgrade(now.centering_lr, now.centering_tb) == centering_subgrade(
            before["centering_lr"], before["centering_tb"]), name
        assert np.abs(np.array(now.outer_corners) - before["outer_corners"]).max() <= 0.05, name
        assert abs(float(prepared.pixels.mean()) - before["pixels_mean"]) <= 0.05, name
