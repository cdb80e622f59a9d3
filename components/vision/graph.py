"""Reading an exported grader without PyTorch: its metadata, an ONNX Runtime session, and the
grade its probabilities give. Serving needs only this, so it starts without importing torch.

    metadata = read_metadata(Path("model.onnx"))       # spec, temperatures, conformal, lineage
    probabilities = GraderSession(Path("model.onnx"))(pixels, geometry)   # N x 5 x 10
    grades = median_grade(probabilities)               # N x 5, grades 1..10
    answer = GraderSession(path, embeddings=True).answer(pixels, geometry)
    answer.probabilities, answer.embeddings, answer.severity_maps

The embeddings are the graph's pooled features, which monitoring compares with the reference's.
The exported graph does not name them as an output: the session exposes the output of the
graph's last global-average ReduceMean, so every graph registered so far has them too. Severity
maps (N x aspects x H/8 x W/8) are an output of graders exported since the severity grader;
older graphs answer without them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

INPUTS = ("pixels", "geometry")
OUTPUT = "probabilities"
MAPS_OUTPUT = "severity_maps"
METADATA_PREFIX = "gradeline."


def median_grade(probabilities: np.ndarray) -> np.ndarray:
    """The grade (1..K) at which the cumulative probability first reaches one half: the
    model's own rule (`ordinal.predicted_grade`), so calibrated probabilities keep the grade
    the raw model gives at temperature 1."""
    above = 1.0 - np.cumsum(probabilities, axis=-1)[..., :-1]  # P(grade > k), k = 1..K-1
    return 1 + (above > 0.5).sum(axis=-1)


def read_metadata(path: Path) -> dict[str, object]:
    """The `gradeline.*` metadata of an exported graph, decoded."""
    graph = onnx.load(str(path), load_external_data=False)
    return {p.key.removeprefix(METADATA_PREFIX): json.loads(p.value)
            for p in graph.metadata_props if p.key.startswith(METADATA_PREFIX)}


@dataclass(frozen=True)
class GraphAnswer:
    """One run of a grader graph: N x 5 x 10 probabilities and what else the graph gives."""

    probabilities: np.ndarray
    embeddings: np.ndarray | None  # N x C pooled features
    severity_maps: np.ndarray | None  # N x aspects x H/8 x W/8


class GraderSession:
    """An ONNX Runtime session of an exported grader."""

    def __init__(self, path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 threads: int | None = None, embeddings: bool = False) -> None:
        options = onnxruntime.SessionOptions()
        # One thread per core unless told otherwise, set explicitly: left at ONNX Runtime's
        # default, the same session ran one photo in 10 ms on some starts and 18 ms on others
        # here (its default pins its threads to cores, and both then shared one).
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        graph: str | bytes = str(path)
        self.embedding_output: str | None = None
        if embeddings:
            model = onnx.load(str(path))
            self.embedding_output = expose_pooled_features(model)
            graph = model.SerializeToString()
        self.session = onnxruntime.InferenceSession(graph, options, providers=list(providers))
        outputs = {output.name for output in self.session.get_outputs()}
        self.maps_output = MAPS_OUTPUT if MAPS_OUTPUT in outputs else None

    def _run(self, outputs: list[str], pixels: np.ndarray, geometry: np.ndarray) -> list:
        return self.session.run(outputs, {"pixels": pixels.astype(np.float32),
                                          "geometry": geometry.astype(np.float32)})

    def __call__(self, pixels: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 (or float) RGB pixels N x H x W x 3 and geometry N x 4."""
        return self._run([OUTPUT], pixels, geometry)[0]

    def answer(self, pixels: np.ndarray, geometry: np.ndarray) -> GraphAnswer:
        """Probabilities, embeddings (when the session was opened with them and the graph
        pools) and severity maps (when the graph has them), in one run."""
        wanted = [OUTPUT, *(name for name in (self.embedding_output, self.maps_output) if name)]
        found = dict(zip(wanted, self._run(wanted, pixels, geometry), strict=True))
        pooled = found.get(self.embedding_output) if self.embedding_output else None
        return GraphAnswer(found[OUTPUT],
                           None if pooled is None else pooled.reshape(len(pooled), -1),
                           found.get(self.maps_output) if self.maps_output else None)


def expose_pooled_features(model: onnx.ModelProto) -> str | None:
    """Add the output of the graph's last global pooling of features (a ReduceMean or
    GlobalAveragePool not applied to an input) to its outputs; its name, or None if it has none."""
    inputs = {graph_input.name for graph_input in model.graph.input}
    pools = [node for node in model.graph.node
             if node.op_type in ("ReduceMean", "GlobalAveragePool") and node.input[0] not in inputs]
    if not pools:
        return None
    name = pools[-1].output[0]
    if name not in {output.name for output in model.graph.output}:
        model.graph.output.append(onnx.helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, None))
    return name
