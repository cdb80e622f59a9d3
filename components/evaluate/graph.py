"""Reading an exported grader without PyTorch: its metadata, an ONNX Runtime session, and the
grade its probabilities give. Serving needs only this, so it starts without importing torch.

    metadata = read_metadata(Path("model.onnx"))       # spec, temperatures, conformal, lineage
    probabilities = GraderSession(Path("model.onnx"))(pixels, geometry)   # N x 5 x 10
    grades = median_grade(probabilities)               # N x 5, grades 1..10
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

INPUTS = ("pixels", "geometry")
OUTPUT = "probabilities"
METADATA_PREFIX = "gradeline."


def median_grade(probabilities: np.ndarray) -> np.ndarray:
    """The grade (1..K) at which the cumulative probability first reaches one half: CORN's own
    rule, so calibrated probabilities keep the grade the raw model gives at temperature 1."""
    above = 1.0 - np.cumsum(probabilities, axis=-1)[..., :-1]  # P(grade > k), k = 1..K-1
    return 1 + (above > 0.5).sum(axis=-1)


def read_metadata(path: Path) -> dict[str, object]:
    """The `gradeline.*` metadata of an exported graph, decoded."""
    graph = onnx.load(str(path), load_external_data=False)
    return {p.key.removeprefix(METADATA_PREFIX): json.loads(p.value)
            for p in graph.metadata_props if p.key.startswith(METADATA_PREFIX)}


class GraderSession:
    """An ONNX Runtime session of an exported grader."""

    def __init__(self, path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 threads: int | None = None) -> None:
        options = onnxruntime.SessionOptions()
        if threads:  # else ONNX Runtime's default: one thread per physical core
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=list(providers))

    def __call__(self, pixels: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 (or float) RGB pixels N x H x W x 3 and geometry N x 4."""
        return self.session.run([OUTPUT], {"pixels": pixels.astype(np.float32),
                                           "geometry": geometry.astype(np.float32)})[0]
