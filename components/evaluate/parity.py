"""Does an exported model answer like the PyTorch model it came from? One verdict for every
backend (ONNX fp32, TensorRT, the detector's ONNX), so a failed parity is a failed gate.

    parity = compare_outputs("onnx fp32", torch_outputs, onnx_outputs, torch_labels, onnx_labels,
                             limits=ParityLimits(max_abs_diff=1e-3, same_prediction=0.999))
    parity.passed, parity.max_abs_diff, parity.same_prediction
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ParityLimits:
    """The most an exported output may differ, and the least share of identical predictions."""

    max_abs_diff: float = 1e-3
    same_prediction: float = 0.999


@dataclass(frozen=True)
class Parity:
    """How one backend's outputs compare with PyTorch's on the same inputs."""

    backend: str
    images: int
    max_abs_diff: float
    same_prediction: float  # share of images whose predicted grade (or class) is the same
    limits: ParityLimits

    @property
    def passed(self) -> bool:
        return (self.max_abs_diff <= self.limits.max_abs_diff
                and self.same_prediction >= self.limits.same_prediction)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed}


def compare_outputs(backend: str, reference: np.ndarray, exported: np.ndarray,
                    reference_labels: np.ndarray, exported_labels: np.ndarray,
                    limits: ParityLimits) -> Parity:
    """Parity of `exported` outputs against `reference` ones (same shape, one row per image)
    and of the labels each predicts."""
    if reference.shape != exported.shape:
        raise ValueError(f"{backend}: outputs of shape {exported.shape} cannot be compared with "
                         f"the reference's {reference.shape}")
    if len(reference) == 0:
        raise ValueError(f"{backend}: no images to compare")
    difference = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
    same = np.asarray(reference_labels) == np.asarray(exported_labels)
    return Parity(backend=backend, images=len(reference), max_abs_diff=float(difference.max()),
                  same_prediction=float(same.reshape(len(same), -1).all(axis=1).mean()),
                  limits=limits)


def parity_metrics(parities: list[Parity]) -> dict[str, float]:
    """Flat metric names for a run: `parity.<backend>.max_abs_diff` and `.same_prediction`."""
    return {f"parity.{p.backend.replace(' ', '_')}.{key}": value for p in parities
            for key, value in (("max_abs_diff", p.max_abs_diff),
                               ("same_prediction", p.same_prediction))}
