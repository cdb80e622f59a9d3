"""Training profiles from params.yaml (`train:`), typed: a misspelt key is an error, not a
silently ignored setting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from components.params import StrictParams

Profile = Literal["fast", "full"]


class BackboneProfile(StrictParams):
    """One budget for a backbone task (grade or classify)."""

    size: tuple[int, int] = Field(description="model input (width, height) in pixels")
    frozen_blocks: int = Field(ge=0, le=16, description="Lite0 blocks kept at ImageNet weights")
    views: int = Field(ge=1, description="cached views per training image: 1 plain + augmented")
    epochs: int = Field(ge=1)
    patience: int = Field(ge=1, description="epochs without a better validation score to stop")
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0, description="peak learning rate of the trained backbone blocks")
    head_lr: float = Field(gt=0, description="peak learning rate of the heads on image features")
    geometry_lr: float = Field(0.1, gt=0, description="peak learning rate of parameters on "
                               "geometry alone (the grader's centering uncertainty)")
    weight_decay: float = Field(ge=0)
    dropout: float = Field(ge=0, lt=1)
    seed: int
    warm_epochs: int = Field(4, ge=1, description="epochs of a warm start: fine-tuning the "
                             "model being replaced (retraining)")
    replay: float = Field(1.0, ge=0, description="older training items replayed per new one "
                          "in a warm start, so the model keeps what it knew")
    warm_lr_scale: float = Field(0.2, gt=0, le=1, description="a warm start's peak learning "
                                 "rates as a share of the profile's: it refines a trained model")
    processes: int = Field(1, ge=1, description="data-parallel training processes, each with "
                           "its share of every batch (distributed.py); 1: this process alone")
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32", description="the training forward pass: float32, or bfloat16 where autocast "
        "allows (CPUs with AVX-512 BF16 or AMX, GPUs); weights and updates stay float32. "
        "auto: bfloat16 where the CPU computes it natively (`settled`), else float32")

    def settled(self) -> BackboneProfile:
        """This profile with `auto` precision decided for this machine: what a run logs and
        trains with."""
        if self.precision != "auto":
            return self
        return self.model_copy(update={"precision": "bf16" if native_bf16() else "fp32"})


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX). Elsewhere
    PyTorch converts every operand and bfloat16 trains slower than float32."""
    try:
        flags = cpuinfo.read_text()
    except OSError:  # not Linux: no cheap way to tell, so the safe choice
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


class DetectProfile(StrictParams):
    """One budget for the YOLO detector."""

    model: str = Field(description="model YAML (trained from scratch) or a .pt to start from")
    epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    imgsz: int = Field(ge=32)
    batch: int = Field(ge=1)
    seed: int


class TaskParams(StrictParams):
    """Registered model name and the two profiles of one task."""

    model_name: str
    fast: BackboneProfile
    full: BackboneProfile


class DetectParams(StrictParams):
    model_name: str
    fast: DetectProfile
    full: DetectProfile


class TrainParams(StrictParams):
    """The `train:` section of params.yaml."""

    grade: TaskParams
    classify: TaskParams
    detect: DetectParams
