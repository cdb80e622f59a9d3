"""Load whichever predictor a model folder holds: a backbone model (`model.json`) or a YOLO
detector (`detector.json` beside its weights). One door, so the pyfunc, serving and tests
never guess from file names themselves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from components.train.predict import Predictor
from components.train.spec import SPEC

DETECTOR_SPEC, DETECTOR_WEIGHTS = "detector.json", "detector.pt"
DEFAULT_CONFIDENCE = 0.25


class ImagePredictor(Protocol):
    def predict(self, images: Sequence[np.ndarray]) -> list[dict[str, object]]: ...


@dataclass(frozen=True)
class DetectorPredictor:
    """Defect boxes of a YOLO model, in image pixels, with class names and confidences."""

    yolo: Any
    imgsz: int
    confidence: float = DEFAULT_CONFIDENCE

    def predict(self, images: Sequence[np.ndarray]) -> list[dict[str, object]]:
        results = self.yolo.predict(list(images), imgsz=self.imgsz, conf=self.confidence,
                                    verbose=False)
        return [{"defects": [{"class": result.names[int(c)], "confidence": round(float(p), 4),
                              "box": [round(float(v), 1) for v in box]}
                             for box, c, p in zip(result.boxes.xyxy.tolist(),
                                                  result.boxes.cls.tolist(),
                                                  result.boxes.conf.tolist(), strict=True)]}
                for result in results]


def save_detector(folder: Path, weights: Path, imgsz: int, classes: Sequence[str]) -> Path:
    """Copy a trained detector's weights into `folder` with the spec that feeds it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DETECTOR_WEIGHTS).write_bytes(weights.read_bytes())
    (folder / DETECTOR_SPEC).write_text(json.dumps({"imgsz": imgsz, "classes": list(classes)}))
    return folder


def load_predictor(folder: Path) -> ImagePredictor:
    """The predictor saved in `folder`."""
    if (folder / SPEC).is_file():
        return Predictor.load(folder)
    if (folder / DETECTOR_SPEC).is_file():
        from ultralytics import YOLO  # heavy: only when a detector is asked for

        spec = json.loads((folder / DETECTOR_SPEC).read_text())
        return DetectorPredictor(YOLO(str(folder / DETECTOR_WEIGHTS), task="detect"),
                                 spec["imgsz"])
    raise FileNotFoundError(f"{folder} holds neither {SPEC} nor {DETECTOR_SPEC}")
