"""The grader as an ONNX graph that serving runs: preprocessing-ready pixels in, calibrated
grade probabilities out, with everything serving needs written into the graph's metadata.

    graph = export_grader(model, spec, temperatures, out / "card-grader.onnx", metadata)
    probabilities = GraderSession(graph)(pixels, geometry)  # graph.py: N x 5 x 10
    int8 = quantize_int8(graph, out / "card-grader.int8.onnx", training_pixels, geometry,
                         float_convolutions=10)

Inputs: `pixels`, the rectified card as RGB values 0..255, N x H x W x 3 (what `prepare_photo`
gives, as float32: JSON clients such as `mlflow models serve` send numbers, not bytes), and
`geometry`, N x 4 floats. Outputs: `probabilities`, N x len(ORDINAL_TARGETS) x GRADES, each
head's logits divided by its fitted temperature, so the graph answers calibrated; and
`severity_maps`, N x aspects x H/8 x W/8, where on the card each aspect's defects are and how
severe (0..1), which the service turns into the defects it names.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from torch import nn

from components.evaluate.padding import fold_pads_into_convs
from components.train.model import ORDINAL_TARGETS
from components.train.ordinal import grade_probabilities
from components.train.rubric import CARD_RUBRIC
from components.train.severity import SeverityGrader, build_severity_grader, map_metadata
from components.vision.graph import INPUTS, MAPS_OUTPUT, METADATA_PREFIX, OUTPUT

OPSET = 17
_CALIBRATION_BATCH = 8


class _CalibratedGrader(nn.Module):
    """RGB pixels (0..255, channels last) and geometry to temperature-scaled probabilities,
    and with `maps`, the severity maps they were graded from as a second output."""

    def __init__(self, model: SeverityGrader, temperatures: torch.Tensor,
                 maps: bool = False) -> None:
        super().__init__()
        self.model = model
        self.maps = maps
        self.register_buffer("temperatures", temperatures.float())

    def forward(self, pixels: torch.Tensor,
                geometry: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        images = pixels.permute(0, 3, 1, 2).float() / 255
        outputs = self.model.training_outputs(self.model.activations(images), geometry)
        logits = outputs.logits / self.temperatures[None, :, None]
        targets, thresholds = logits.shape[1], logits.shape[2]
        flat = grade_probabilities(logits.reshape(-1, thresholds))
        probabilities = flat.reshape(-1, targets, thresholds + 1)  # -1: any batch exports
        return (probabilities, outputs.maps) if self.maps else probabilities


def calibrated_torch_model(model: SeverityGrader, temperatures: np.ndarray) -> nn.Module:
    """The PyTorch twin of the exported graph: the reference parity and latency compare with."""
    return _CalibratedGrader(model, torch.from_numpy(np.asarray(temperatures))).eval()


def export_grader(model: SeverityGrader, size: tuple[int, int], temperatures: np.ndarray,
                  path: Path, metadata: dict[str, object]) -> Path:
    """Write the calibrated grader for cards of `size` (width, height) as ONNX (opset 17,
    any batch) at `path`; `metadata` values are stored as JSON under `gradeline.<key>`."""
    width, height = size
    example = (torch.zeros(1, height, width, 3), torch.zeros(1, 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # "same" padding is computed from the input size, which the trace fixes: the card is
        # always rectified to `size`, so that is the only size the graph needs.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        served = _CalibratedGrader(model, torch.from_numpy(np.asarray(temperatures)),
                                   maps=True).eval()
        torch.onnx.export(served, example, str(path), input_names=list(INPUTS),
                          output_names=[OUTPUT, MAPS_OUTPUT], opset_version=OPSET, dynamo=False,
                          dynamic_axes={name: {0: "batch"}
                                        for name in (*INPUTS, OUTPUT, MAPS_OUTPUT)})
    return write_metadata(path, metadata, fold_pads_into_convs)


def write_metadata(path: Path, metadata: dict[str, object],
                   rewrite: Callable[[onnx.ModelProto], object] | None = None) -> Path:
    """Add `metadata` (JSON values) to the graph at `path` under Gradeline's prefix, where
    serving and `read_metadata` find it, after `rewrite` (if any) changed the graph in the
    same load and save; `path`."""
    graph = onnx.load(str(path))
    if rewrite is not None:
        rewrite(graph)
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, json.dumps(value)
    onnx.save(graph, str(path))
    return path


class _Batches(CalibrationDataReader):
    """Training inputs fed to the int8 calibrator a few images at a time."""

    def __init__(self, pixels: np.ndarray, geometry: np.ndarray) -> None:
        self.batches = iter([{"pixels": pixels[i:i + _CALIBRATION_BATCH].astype(np.float32),
                              "geometry": geometry[i:i + _CALIBRATION_BATCH].astype(np.float32)}
                             for i in range(0, len(pixels), _CALIBRATION_BATCH)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def quantize_int8(fp32: Path, path: Path, pixels: np.ndarray, geometry: np.ndarray,
                  float_convolutions: int) -> Path:
    """Static int8 quantization (QDQ, per-channel weights) of an exported grader's convolutions
    but the first `float_convolutions`, activation ranges calibrated on `pixels`/`geometry` from
    the training split; the heads stay float and the metadata is kept.

    The first convolutions read the photo at full resolution, where a scratch or a print line
    differs from the paper around it by a few levels, which quantized inputs and weights blur.
    Measured on bench graders (2000 cards, test split; one thread, 304 x 432): every convolution
    int8 kept the fp32 grade on 41% of the cards (QWK 0.059 lower); all but the stem on 62-72%
    (0.008-0.023 lower, over the 0.01 allowed on bfloat16-trained graders), 13.4 ms a photo;
    all but the first 4, 10 or 20 (of 46) on 85%, 87% and 95%, the QWK unchanged (0.000 to
    0.002 higher), 14.4, 14.2 and 15.3 ms, against 18.0 for fp32. Percentile calibration and more
    calibration images did worse."""
    if len(pixels) == 0:
        raise ValueError("int8 calibration needs training images, got none")
    graph = onnx.load(str(fp32), load_external_data=False).graph
    kept_float = [node.name for node in graph.node if node.op_type == "Conv"][:float_convolutions]
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(path), _Batches(pixels, geometry),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        # Only the backbone's convolutions: the heads are a few thousand
                        # weights, and the centering head multiplies four measured numbers by
                        # weights in the tens, where one uint8 step of its input moves a logit
                        # by a whole grade (a kappa drop of 0.25 when the heads were int8).
                        op_types_to_quantize=["Conv"], nodes_to_exclude=kept_float)
    graph = onnx.load(str(path))
    source = onnx.load(str(fp32), load_external_data=False)
    del graph.metadata_props[:]
    graph.metadata_props.extend(source.metadata_props)
    onnx.save(graph, str(path))
    return path


def untrained_grader_graph(path: Path, size: tuple[int, int], frozen_blocks: int = 11,
                 data_version: str = "d-test") -> Path:
    """The severity grader with ImageNet weights and an untrained decoder, exported as evaluation
    exports a grader (temperatures 1, a conformal threshold, lineage): what serving loads, for
    measuring and testing serving without training."""
    model = build_severity_grader(frozen_blocks).eval()
    return export_grader(model, size, np.ones(len(ORDINAL_TARGETS)), path, {
        "spec": {"task": "grade", "size": list(size), "rectify": True,
                 "targets": list(ORDINAL_TARGETS), **map_metadata(CARD_RUBRIC)},
        "conformal": {"threshold": 0.2, "coverage": 0.9, "calibration_items": 0},
        "model": "card-grader", "version": 0, "data_version": data_version})
