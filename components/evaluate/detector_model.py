"""Evaluate a trained defect detector end to end: mAP and per-class recall on the test split,
ONNX export through Ultralytics with parity on validation photos, TensorRT where a GPU has it,
and the gates, in the same shape the flow reads from the grader's evaluation.

    evaluation = evaluate_detector_model(model_dir, dataset_root, out_dir, EvaluateParams())
    evaluation.summary()["metrics"]["recall.crease"], evaluation.gates
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from components.evaluate.detector import (
    DetectorEvaluation,
    detector_parity,
    evaluate_detector,
    example_input,
    export_detector,
)
from components.evaluate.export import write_metadata
from components.evaluate.gates import Gate, detector_gates
from components.evaluate.grader import read_split_rows
from components.evaluate.graphs import Graph
from components.evaluate.params import EvaluateParams
from components.evaluate.parity import Parity, ParityLimits, parity_metrics
from components.evaluate.tensorrt import PROVIDER, tensorrt_unavailable
from components.train.loading import DETECTOR_SPEC

Progress = Callable[[str, int, int], None]
PARITY_IMAGES = 32  # validation photos the export is compared on


@dataclass
class DetectorModelEvaluation:
    """What the report, the gates and the summary read for a detector."""

    evaluation: DetectorEvaluation
    classes: list[str]
    parity: list[Parity]
    tensorrt: str
    gates: list[Gate]
    onnx: Path
    example: dict[str, np.ndarray]
    plots: list[Path] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {**{f"eval.{k}": v for k, v in self.evaluation.metrics.items()},
                **parity_metrics(self.parity)}

    def summary(self) -> dict[str, object]:
        return {"kind": "detector", "metrics": self.evaluation.metrics, "classes": self.classes,
                "images": self.evaluation.images, "gates": [g.as_dict() for g in self.gates],
                "parity": [p.as_dict() for p in self.parity], "tensorrt": self.tensorrt}

    def graphs(self) -> dict[str, Graph]:
        return {"onnx": Graph(self.onnx, self.example)}


def evaluate_detector_model(model_dir: Path, root: Path, out_dir: Path, params: EvaluateParams,
                            on_progress: Progress = lambda stage, done, total: None,
                            metadata: dict[str, object] | None = None
                            ) -> DetectorModelEvaluation:
    """Evaluate the detector saved in `model_dir` on the dataset at `root`; plots and the
    exported graph go to `out_dir`, and `metadata` (lineage) is written into the graph."""
    classes = json.loads((model_dir / DETECTOR_SPEC).read_text())["classes"]
    on_progress("evaluate detector", 0, 3)
    evaluation = evaluate_detector(model_dir, root, "test", out_dir)
    on_progress("evaluate detector", 1, 3)
    onnx_path = write_metadata(export_detector(model_dir, out_dir), metadata or {})
    val = read_split_rows(root, ("val",))["val"].head(PARITY_IMAGES)
    images = [cv2.imread(str(root / path), cv2.IMREAD_COLOR) for path in val["image_path"]]
    limits = ParityLimits(params.parity.max_abs_diff, params.parity.same_prediction)
    parities = [detector_parity(model_dir, onnx_path, images, limits)]
    on_progress("evaluate detector", 2, 3)
    tensorrt = tensorrt_unavailable()
    if tensorrt is None:
        parities.append(detector_parity(model_dir, onnx_path, images, limits,
                                        "detector tensorrt", (PROVIDER, "CPUExecutionProvider")))
        tensorrt = "checked"
    on_progress("evaluate detector", 3, 3)
    return DetectorModelEvaluation(
        evaluation=evaluation, classes=classes, parity=parities, tensorrt=tensorrt,
        gates=detector_gates(evaluation.metrics, classes, parities, params), onnx=onnx_path,
        example=example_input(model_dir, images[:2]), plots=evaluation.plots)
