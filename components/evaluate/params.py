"""Evaluation parameters from params.yaml (`evaluate:`), typed: a misspelt gate is an error, not
a gate that silently never closes."""

from __future__ import annotations

from pydantic import Field

from components.params import StrictParams


class GateParams(StrictParams):
    """Thresholds a candidate must meet before promotion may start."""

    kappa_margin: float = Field(0.02, ge=0, description="QWK may fall this far below the "
                                "experts' own leave-one-out QWK")
    max_ece: float = Field(0.05, gt=0, le=1, description="expected calibration error after "
                           "temperature scaling")
    coverage_margin: float = Field(0.02, ge=0, lt=1, description="conformal coverage on the "
                                   "test split may fall this far below its target")
    baseline_margin: float = Field(0.0, ge=0, description="QWK must beat the linear baseline's "
                                   "less this (0: beat it outright)")
    min_detector_recall: float = Field(0.8, ge=0, le=1, description="recall of every defect "
                                       "class on the test split")


class ParityParams(StrictParams):
    """How closely an exported graph must answer like PyTorch on the validation images."""

    max_abs_diff: float = Field(1e-3, gt=0)
    same_prediction: float = Field(0.999, gt=0, le=1)


class Int8Params(StrictParams):
    """Static int8 quantization: calibration images and the kappa it may cost."""

    calibration_images: int = Field(64, ge=1, description="training images that set the "
                                    "activation ranges")
    max_kappa_drop: float = Field(0.01, ge=0, description="the int8 graph is kept only when its "
                                  "test QWK is at most this far below fp32's")
    float_convolutions: int = Field(10, ge=0, description="the first convolutions, which read "
                                    "the photo at full resolution, stay float")


class LatencyParams(StrictParams):
    runs: int = Field(50, ge=1, description="timed single-image calls per backend")
    batch_runs: int = Field(5, ge=1, description="timed calls at batch 32 per backend")


class EvaluateParams(StrictParams):
    """The `evaluate:` section of params.yaml."""

    coverage: float = Field(0.9, gt=0, lt=1, description="conformal target: the share of "
                            "cards whose grade set holds the experts' grade")
    gates: GateParams = GateParams()
    parity: ParityParams = ParityParams()
    int8: Int8Params = Int8Params()
    latency: LatencyParams = LatencyParams()
