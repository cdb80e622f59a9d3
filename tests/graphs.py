"""ONNX graphs for tests that exercise serving, not learning: a detector that answers fixed raw
outputs, and a grader changed to fail on a share of photos (the untrained grader itself is
`components.evaluate.export.untrained_grader_graph`).

    grader = untrained_grader_graph(tmp / "model.onnx", size=(96, 128))
    erring = erring_grader_graph(grader, tmp / "erring.onnx", brightness_threshold=120.0)
    detector = detector_graph(tmp / "detector.onnx", raw)   # (4 + classes) x anchors
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

DETECTOR_IMGSZ = 64


def erring_grader_graph(source: Path, path: Path, brightness_threshold: float) -> Path:
    """`source` changed to answer NaN for photos whose mean pixel value is above the threshold:
    a challenger that errs on a share of requests."""
    graph = onnx.load(str(source))
    output = graph.graph.output[0].name
    for node in graph.graph.node:
        node.output[:] = [f"{name}_raw" if name == output else name for name in node.output]
    graph.graph.initializer.extend([
        helper.make_tensor("threshold", TensorProto.FLOAT, [], [brightness_threshold]),
        helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("per_image", TensorProto.INT64, [3], [-1, 1, 1])])
    graph.graph.node.extend([
        helper.make_node("ReduceMean", ["pixels"], ["brightness"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Greater", ["brightness", "threshold"], ["too_bright"]),
        helper.make_node("Where", ["too_bright", "nan", "zero"], ["poison"]),
        helper.make_node("Reshape", ["poison", "per_image"], ["poison_n11"]),
        helper.make_node("Add", [f"{output}_raw", "poison_n11"], [output])])
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
    return path


def detector_graph(path: Path, raw: np.ndarray) -> Path:
    """A detector graph that answers `raw` ((4 + classes) x anchors) for every image, with the
    metadata Ultralytics' exporter writes."""
    constant = helper.make_tensor("raw", TensorProto.FLOAT, [1, *raw.shape], raw.flatten())
    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["mean", "shape"], ["per_image"]),
             helper.make_node("Mul", ["per_image", "zero"], ["zeros"]),
             helper.make_node("Add", ["zeros", "raw"], ["output0"])]
    imgsz = DETECTOR_IMGSZ
    graph = helper.make_graph(
        nodes, "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", *raw.shape])],
        [constant, helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 1, 1]),
         helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    for key, value in {"names": "{0: 'scratch', 1: 'dent'}",
                       "imgsz": f"[{imgsz}, {imgsz}]"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
