"""ONNX graphs for tests that exercise serving and releases, not learning: a detector that
answers fixed raw outputs, a grader changed to fail on a share of photos, and graders whose grade
is a rule of what they see, so a test knows exactly how well each grades (the untrained grader
itself is `components.evaluate.export.untrained_grader_graph`).

    grader = untrained_grader_graph(tmp / "model.onnx", size=(96, 128))
    erring = erring_grader_graph(grader, tmp / "erring.onnx", brightness_threshold=120.0)
    rule = rule_grader_graph(grader, tmp / "rule.onnx", GradeRule((90.0, 110.0), tint=3.5))
    detector = detector_graph(tmp / "detector.onnx", raw)   # (4 + classes) x anchors
    version = register_detector(client, uri, detector, sha256(detector))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from mlflow import MlflowClient
from onnx import TensorProto, helper

from components.tracking import TrackedRun
from components.vision.graph import OUTPUT
from model_registry.names import DETECTOR, TAG_ONNX_SHA256, TAG_ONNX_URI

DETECTOR_IMGSZ = 64


@dataclass(frozen=True)
class GradeRule:
    """A grade read from the pixels the grader sees: `lowest` plus the number of `edges` the
    mean brightness is above, plus one where the card's red tint (mean red minus mean
    brightness) is above `tint` (never, when None)."""

    edges: tuple[float, ...]
    tint: float | None = None
    lowest: int = 5


def erring_grader_graph(source: Path, path: Path, brightness_threshold: float) -> Path:
    """`source` changed to answer NaN for photos whose mean pixel value is above the threshold:
    a challenger that errs on a share of requests."""
    return _replace_output(source, path, "erring", [
        helper.make_tensor("threshold", TensorProto.FLOAT, [], [brightness_threshold]),
        helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("per_image", TensorProto.INT64, [3], [-1, 1, 1])], [
        helper.make_node("ReduceMean", ["pixels"], ["brightness"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Greater", ["brightness", "threshold"], ["too_bright"]),
        helper.make_node("Where", ["too_bright", "nan", "zero"], ["poison"]),
        helper.make_node("Reshape", ["poison", "per_image"], ["poison_n11"]),
        helper.make_node("Add", ["raw", "poison_n11"], [OUTPUT])])


def rule_grader_graph(source: Path, path: Path, rule: GradeRule) -> Path:
    """`source` changed to answer `rule`'s grade for every target with probability 0.91 (the
    network still runs, so latency and embeddings are a real grader's)."""
    tint = [2 / 3, -1 / 3, -1 / 3]  # red minus the mean of the three channels
    return _replace_output(source, path, "rule", [
        helper.make_tensor("edges", TensorProto.FLOAT, [1, len(rule.edges)], rule.edges),
        helper.make_tensor("count", TensorProto.FLOAT, [len(rule.edges), 1],
                           [1.0] * len(rule.edges)),
        helper.make_tensor("tint_weights", TensorProto.FLOAT, [3, 1], tint),
        helper.make_tensor("tint_threshold", TensorProto.FLOAT, [],
                           [np.inf if rule.tint is None else rule.tint]),
        helper.make_tensor("lowest", TensorProto.FLOAT, [], [float(rule.lowest)]),
        helper.make_tensor("grades", TensorProto.FLOAT, [1, 10], np.arange(1, 11, dtype=float)),
        helper.make_tensor("sure", TensorProto.FLOAT, [], [0.9]),
        helper.make_tensor("floor", TensorProto.FLOAT, [], [0.01]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("column", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("per_image", TensorProto.INT64, [3], [-1, 1, 10])], [
        helper.make_node("ReduceMean", ["pixels"], ["brightness"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["brightness", "column"], ["brightness_n1"]),
        helper.make_node("Greater", ["brightness_n1", "edges"], ["above"]),
        helper.make_node("Cast", ["above"], ["above_float"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["above_float", "count"], ["steps"]),
        helper.make_node("ReduceMean", ["pixels"], ["channels"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["channels", "tint_weights"], ["tint"]),
        helper.make_node("Greater", ["tint", "tint_threshold"], ["tinted"]),
        helper.make_node("Cast", ["tinted"], ["tint_step"], to=TensorProto.FLOAT),
        helper.make_node("Sum", ["lowest", "steps", "tint_step"], ["grade"]),
        helper.make_node("Equal", ["grade", "grades"], ["is_grade"]),
        helper.make_node("Cast", ["is_grade"], ["one_hot"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["one_hot", "sure"], ["peak"]),
        helper.make_node("Add", ["peak", "floor"], ["answer"]),
        helper.make_node("Reshape", ["answer", "per_image"], ["answer_n110"]),
        helper.make_node("Mul", ["raw", "zero"], ["ignored"]),
        helper.make_node("Add", ["ignored", "answer_n110"], [OUTPUT])])


def _replace_output(source: Path, path: Path, prefix: str,
                    initializers: list[onnx.TensorProto], nodes: list[onnx.NodeProto]) -> Path:
    """`source` with `nodes` computing its output anew from the pixels, its former output
    (`raw`) and `initializers`, saved to `path`. Every new name but the graph's input and output
    gets `prefix`, so a changed graph can be changed again."""
    def local(name: str) -> str:
        return name if name in ("pixels", OUTPUT) else f"{prefix}_{name}"

    graph = onnx.load(str(source))
    for node in graph.graph.node:
        node.output[:] = [local("raw") if name == OUTPUT else name for name in node.output]
    for tensor in initializers:
        tensor.name = local(tensor.name)
    for node in nodes:
        node.input[:] = [local(name) for name in node.input]
        node.output[:] = [local(name) for name in node.output]
    graph.graph.initializer.extend(initializers)
    graph.graph.node.extend(nodes)
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


def detector_registry(uri: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """A client of the registry at `uri` with the defect detector registered (no version yet),
    and MLFLOW_TRACKING_URI pointing there: logging a model resolves its run by it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(DETECTOR)
    return client


def register_detector(client: MlflowClient, uri: str, graph: Path, checksum: str) -> str:
    """A defect-detector version whose exported graph is `graph`, tagged as training and
    evaluation tag one (its task, the graph's URI and `checksum`)."""
    run = TrackedRun.open(uri, str(graph.parent / "artifacts"), DETECTOR, "exported graph")
    example = {"images": np.zeros((1, 3, DETECTOR_IMGSZ, DETECTOR_IMGSZ), np.float32)}
    graph_uri = run.log_onnx_model(graph, "onnx", example)
    version = client.create_model_version(DETECTOR, graph_uri, run_id=run.run_id).version
    for key, value in {"task": "detect", TAG_ONNX_URI: graph_uri,
                       TAG_ONNX_SHA256: checksum}.items():
        client.set_model_version_tag(DETECTOR, version, key, value)
    return version
