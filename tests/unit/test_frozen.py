"""The frozen part run by ONNX Runtime gives PyTorch's activations, for any batch size."""

from __future__ import annotations

import numpy as np
import torch

from components.train.frozen import FrozenPart
from components.train.severity import build_severity_grader


def test_onnx_runtime_activations_match_pytorch() -> None:
    model = build_severity_grader(frozen_blocks=11).eval()
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 48, 3), dtype=np.uint8)

    from_onnx = FrozenPart(model, height=64, width=48)(pixels)
    with torch.no_grad():
        from_torch = model.activations(torch.from_numpy(pixels).permute(0, 3, 1, 2) / 255)

    assert from_onnx.dtype == torch.float16 and from_onnx.shape == from_torch.shape
    assert torch.allclose(from_onnx.float(), from_torch.half().float(), rtol=2e-3, atol=2e-3)
