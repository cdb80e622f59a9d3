"""Trained models as MLflow pyfunc models: any MLflow client can load a version and grade
photos with it, with no Gradeline code installed beside it (the code travels with the model).

    model = mlflow.pyfunc.load_model("models:/card-grader/3")
    model.predict(pd.DataFrame({"image": [Path("card.jpg").read_bytes()]}))

Input: a frame with one column `image` of encoded image bytes (JPEG, PNG, ...). Output: one row
per image; nested values (probabilities, defect boxes) as JSON strings, so the frame has a
plain schema that `mlflow models serve` can send back as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

import components

IMAGE_COLUMN = "image"
MODEL_ARTIFACT = "model"


class PredictionError(ValueError):
    """An input row is not an image the model can read."""


def decode_images(encoded: Sequence[bytes]) -> list[np.ndarray]:
    """BGR images from encoded bytes; a clear error naming the first row that is no image."""
    images = []
    for row, data in enumerate(encoded):
        image = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise PredictionError(f"row {row}: {len(data)} bytes that are not a readable image")
        images.append(image)
    return images


def _flat(result: dict[str, object]) -> dict[str, object]:
    return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in result.items()}


class ImageModel(mlflow.pyfunc.PythonModel):
    """A pyfunc around a model folder: a backbone model (model.json) or a YOLO detector."""

    def load_context(self, context: Any) -> None:
        from components.train.loading import load_predictor

        self.predictor = load_predictor(Path(context.artifacts[MODEL_ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        images = decode_images(list(model_input[IMAGE_COLUMN]))
        return pd.DataFrame([_flat(r) for r in self.predictor.predict(images)])


def logged_model_folder(downloaded: Path) -> Path:
    """The model folder inside a downloaded copy of a model logged by `log_image_model`."""
    flavor = mlflow.models.Model.load(str(downloaded)).flavors["python_function"]
    return downloaded / flavor["artifacts"][MODEL_ARTIFACT]["path"]


def log_image_model(model_dir: Path, example_image: Path, name: str = "model") -> str:
    """Log `model_dir` as a pyfunc model of the active run, with a signature and an input
    example inferred from one real image; returns the logged model's URI."""
    example = pd.DataFrame({IMAGE_COLUMN: [example_image.read_bytes()]})
    probe = ImageModel()  # loaded here only to infer the output schema; logged models load lazily
    probe.load_context(type("Context", (), {"artifacts": {MODEL_ARTIFACT: str(model_dir)}}))
    signature = infer_signature(example, probe.predict(None, example))
    info = mlflow.pyfunc.log_model(
        name=name, python_model=ImageModel(), artifacts={MODEL_ARTIFACT: str(model_dir)},
        code_paths=[str(Path(components.__file__).parent)], signature=signature,
        input_example=example)
    return info.model_uri
