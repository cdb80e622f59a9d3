"""Log an exported graph with MLflow's ONNX flavor, so any MLflow client can load it without
Gradeline's code (`mlflow.pyfunc.load_model(uri).predict({"pixels": ..., "geometry": ...})`) and
`mlflow models serve -m <uri>` serves it.

    uri = log_onnx_model(run_id, graph, "onnx", {"pixels": pixels[:2], "geometry": geometry[:2]})
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import onnx


@dataclass(frozen=True)
class Graph:
    """An exported graph to log, with a real input MLflow infers its signature from."""

    path: Path
    example: dict[str, np.ndarray]


def sha256(path: Path) -> str:
    """Checksum of a file, which serving verifies before it loads the graph."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log_onnx_model(tracking_uri: str, run_id: str, graph: Path, name: str,
                   example: dict[str, np.ndarray]) -> str:
    """Log `graph` as model `name` of run `run_id`, its signature inferred from running the
    example inputs through it; returns the logged model's URI."""
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.onnx.log_model(onnx_model=onnx.load(str(graph)), name=name,
                                     input_example=example, save_as_external_data=False,
                                     onnx_execution_providers=["CPUExecutionProvider"])
    return info.model_uri
