"""TensorRT through ONNX Runtime's TensorRT execution provider, where a CUDA device and the
provider exist; elsewhere a one-line reason why it was skipped, for the report.

    outputs, status = tensorrt_parity(graph, pixels, geometry)
    # (None, "skipped: no CUDA device") on a CPU machine
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import torch

from components.vision.graph import GraderSession

PROVIDER = "TensorrtExecutionProvider"


def tensorrt_unavailable() -> str | None:
    """Why TensorRT cannot run here, or None when it can."""
    if not torch.cuda.is_available():
        return "skipped: no CUDA device on this machine"
    if PROVIDER not in onnxruntime.get_available_providers():
        return (f"skipped: onnxruntime {onnxruntime.__version__} has no {PROVIDER} "
                f"(install onnxruntime-gpu with TensorRT libraries)")
    return None


def tensorrt_parity(graph: Path, pixels: np.ndarray,
                    geometry: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Outputs of a TensorRT engine built from `graph` on these inputs, with the status line;
    None and the reason when TensorRT is unavailable."""
    reason = tensorrt_unavailable()
    if reason is not None:
        return None, reason
    session = GraderSession(graph, providers=(PROVIDER, "CPUExecutionProvider"))
    active = session.session.get_providers()[0]
    if active != PROVIDER:
        return None, f"skipped: ONNX Runtime fell back to {active} when building the engine"
    return session(pixels, geometry), "checked"
