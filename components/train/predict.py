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

from components.train.model import ORDINAL_TARGETS, TaskModel
from components.train.ordinal import grade_probabilities
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
        if self.spec.task == "classify":
            probabilities = outputs.softmax(dim=1).numpy()
            return [{"label": self.spec.classes[int(row.argmax())],
                     "probabilities": dict(zip(self.spec.classes, row.round(4).tolist(),
                                               strict=True))}
                    for row in probabilities]
        grades = self.spec.backbone_task().predictions(outputs).tolist()
        probabilities = grade_probabilities(outputs[:, 0]).numpy().round(4).tolist()
        results = []
        for item, item_grades, item_probabilities in zip(prepared, grades, probabilities,
                                                         strict=True):
            measured = item.centering
            results.append({**dict(zip(ORDINAL_TARGETS, item_grades, strict=True)),
                            "probabilities": item_probabilities,
                            "centering_lr": round(measured.centering_lr, 2) if measured else None,
                            "centering_tb": round(measured.centering_tb, 2) if measured else None})
        return results
