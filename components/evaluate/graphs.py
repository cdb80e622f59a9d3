"""An exported graph as evaluation hands it to tracking (`TrackedRun.log_onnx_model`, MLflow's
ONNX flavor), with the checksum serving verifies before it loads it.

    graph = Graph(path, {"pixels": pixels[:2], "geometry": geometry[:2]})
    run.log_onnx_model(graph.path, "onnx", graph.example); sha256(graph.path)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
