"""Predictions of a saved backbone model on photos, through the one shared preprocessing.

    predictor = Predictor.load(model_dir)
    predictor.predict([cv2.imread("card.jpg")])
    # [{"grade": 8, "probabilities": [...], "centering": 9, ..., "centering_lr": 52.1, ...}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from components.train.model import TaskModel
from components.train.spec import ModelSpec, load_model
from components.vision.prepare import prepare_photo


@dataclass(frozen=True)
class Predictor:
    """A model in inference mode with the spec that says how to feed it."""

    model: TaskModel
    spec: ModelSpec

    @classmethod
    def load(cls, folder: Path) -> Predictor:
        return cls(*load_model(folder))

    def predict(self, images: Sequence[np.ndarray]) -> list[dict[str, object]]:
        """One result per BGR photo: the grade with its probabilities, subgrades and measured
        centering for the grade task; the label with class probabilities for classify."""
        prepared = [prepare_photo(image, self.spec.rectify, self.spec.size) for image in images]
        pixels = torch.from_numpy(np.stack([p.pixels for p in prepared])).permute(0, 3, 1, 2)
        geometry = torch.from_numpy(np.stack([p.geometry for p in prepared]))
        with torch.no_grad():
            outputs = self.model(pixels.float() / 255, geometry)
        return self.spec.backbone_task().answers(outputs, [p.centering for p in prepared])
