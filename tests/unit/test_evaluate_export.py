"""The exported grader answers like PyTorch: one real Lite0 grader at a tiny card size (64 x 96)
is exported once, with a different temperature per head, and quantized once, then run through
ONNX Runtime; parity verdicts and latency rows are checked on hand-made outputs and a fake
predictor with a known delay."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from components.evaluate.calibration import ordinal_probabilities
from components.evaluate.export import calibrated_torch_model, export_grader, quantize_int8
from components.evaluate.latency import THROUGHPUT_BATCH, latency_metrics, measure_latency
from components.evaluate.parity import ParityLimits, compare_outputs, parity_metrics
from components.train.model import ORDINAL_TARGETS, TaskModel
from components.train.rubric import CARD_RUBRIC, GRADES
from components.train.severity import DECODER_WIDTH, build_severity_grader
from components.vision.graph import GraderSession, median_grade, read_metadata

SIZE = (64, 96)  # width, height
ONES = np.ones(len(ORDINAL_TARGETS))
SCALED = np.array([2.0, 1.0, 0.5, 1.0, 1.0])  # grade softened, corners sharpened
METADATA = {"model": "card-grader", "version": 3, "temperatures": SCALED.tolist(),
            "spec": {"size": list(SIZE), "targets": list(ORDINAL_TARGETS)},
            "conformal": {"threshold": 0.12, "coverage": 0.9}, "note": "é ✓"}


def inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    width, height = SIZE
    return (rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8),
            rng.uniform(0.3, 0.7, (n, 4)).astype(np.float32))


@pytest.fixture(scope="module")
def model() -> TaskModel:
    torch.manual_seed(0)
    return build_severity_grader(frozen_blocks=11).eval()


@pytest.fixture(scope="module")
def graphs(model: TaskModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("export")
    scaled = export_grader(model, SIZE, SCALED, out / "new" / "grader.onnx", METADATA)
    pixels, geometry = inputs(8, seed=1)
    int8 = quantize_int8(scaled, out / "grader.int8.onnx", pixels, geometry,
                         float_convolutions=10)
    return {"scaled": scaled, "int8": int8}


@pytest.fixture(scope="module")
def sessions(graphs: dict[str, Path]) -> dict[str, GraderSession]:
    return {name: GraderSession(path) for name, path in graphs.items()}


def torch_outputs(model: TaskModel, temperatures: np.ndarray, pixels: np.ndarray,
                  geometry: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return calibrated_torch_model(model, temperatures)(
            torch.from_numpy(pixels), torch.from_numpy(geometry)).numpy()


def test_the_graph_is_opset_17_with_a_batch_axis(graphs: dict[str, Path]) -> None:
    graph = onnx.load(str(graphs["scaled"]))
    onnx.checker.check_model(graph)
    opset = {o.domain: o.version for o in graph.opset_import}
    assert opset[""] >= 17
    assert [i.name for i in graph.graph.input] == ["pixels", "geometry"]
    assert [o.name for o in graph.graph.output] == ["probabilities", "severity_maps"]
    # float pixels, 0..255: JSON clients send numbers, not bytes
    assert [i.type.tensor_type.elem_type for i in graph.graph.input] == \
        [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT]
    for value in (*graph.graph.input, *graph.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param, f"{value.name} has a fixed batch"


def test_same_padding_is_folded_into_the_convolutions(graphs: dict[str, Path]) -> None:
    """Lite0's asymmetric "same" padding lives in the Conv nodes (the stem and eleven depthwise
    convolutions), not in Pad nodes of their own: ONNX Runtime ran those, and reordered its
    layout around each, for 30% of the graph's time."""
    nodes = onnx.load(str(graphs["scaled"])).graph.node
    assert Counter(node.op_type for node in nodes)["Pad"] == 0
    pads = {node.name: list(a.ints) for node in nodes if node.op_type == "Conv"
            and ("_conv_stem" in node.name or "_depthwise_conv" in node.name)
            for a in node.attribute if a.name == "pads"}
    assert len(pads) == 12 and all(any(amounts) for amounts in pads.values())
    # a stride-2 window on an even side pads one pixel, on the bottom or right only
    assert any(amounts[:2] != amounts[2:] for amounts in pads.values())


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_runtime_answers_like_the_calibrated_torch_model(
        model: TaskModel, sessions: dict[str, GraderSession], batch: int) -> None:
    pixels, geometry = inputs(batch, seed=2)
    from_onnx = sessions["scaled"](pixels, geometry)
    from_torch = torch_outputs(model, SCALED, pixels, geometry)
    assert from_onnx.shape == (batch, len(ORDINAL_TARGETS), GRADES)
    assert np.abs(from_onnx - from_torch).max() < 1e-4
    np.testing.assert_allclose(from_onnx.sum(axis=-1), 1, atol=1e-5)
    assert from_onnx.min() >= -1e-6


def test_a_card_gets_the_same_answer_alone_and_in_a_batch(
        sessions: dict[str, GraderSession]) -> None:
    pixels, geometry = inputs(5, seed=3)
    session = sessions["scaled"]
    batch = session(pixels, geometry)
    alone = session(pixels[3:4], geometry[3:4])
    np.testing.assert_allclose(alone[0], batch[3], atol=1e-5)


def test_the_graph_divides_each_heads_logits_by_its_temperature(
        model: TaskModel, sessions: dict[str, GraderSession]) -> None:
    pixels, geometry = inputs(6, seed=4)
    scaled = sessions["scaled"](pixels, geometry)
    plain = torch_outputs(model, ONES, pixels, geometry)  # what the graph gave uncalibrated
    with torch.no_grad():
        logits = model(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255,
                       torch.from_numpy(geometry)).double().numpy()
    for i, (target, temperature) in enumerate(zip(ORDINAL_TARGETS, SCALED, strict=True)):
        expected = ordinal_probabilities(logits[:, i], temperature)
        assert np.abs(scaled[:, i] - expected).max() < 1e-4, target
        assert np.abs(plain[:, i] - ordinal_probabilities(logits[:, i])).max() < 1e-4, target
    assert np.abs(scaled[:, 0] - plain[:, 0]).max() > 1e-3  # grade at 2
    assert np.abs(scaled[:, 2] - plain[:, 2]).max() > 1e-3  # corners at 0.5
    np.testing.assert_allclose(scaled[:, 1], plain[:, 1], atol=1e-5)  # centering at 1


def test_metadata_round_trips_as_json(graphs: dict[str, Path], tmp_path: Path) -> None:
    assert read_metadata(graphs["scaled"]) == json.loads(json.dumps(METADATA))
    graph = onnx.load(str(graphs["scaled"]))
    foreign = graph.metadata_props.add()
    foreign.key, foreign.value = "producer.note", "not json"
    onnx.save(graph, str(tmp_path / "other.onnx"))
    assert read_metadata(tmp_path / "other.onnx") == json.loads(json.dumps(METADATA))


def test_the_session_takes_uint8_or_float_pixels_and_any_float_geometry(
        graphs: dict[str, Path]) -> None:
    pixels, geometry = inputs(2, seed=5)
    session = GraderSession(graphs["scaled"], threads=1)
    expected = session(pixels, geometry)
    np.testing.assert_array_equal(session(pixels.astype(np.float32), geometry), expected)
    np.testing.assert_array_equal(session(pixels.astype(np.float64),
                                          geometry.astype(np.float64)), expected)


def test_int8_graph_is_quantized_runs_and_keeps_the_metadata(
        graphs: dict[str, Path], sessions: dict[str, GraderSession]) -> None:
    graph = onnx.load(str(graphs["int8"]))
    ops = Counter(node.op_type for node in graph.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    weights = {init.name: init.data_type for init in graph.graph.initializer}
    int8_weights = [n for n in graph.graph.node if n.op_type == "DequantizeLinear"
                    and weights.get(n.input[0]) == onnx.TensorProto.INT8]
    convolutions = [node for node in graph.graph.node if node.op_type == "Conv"]
    assert len(int8_weights) == len(convolutions) - 10  # the convolutions' after the first 10
    assert read_metadata(graphs["int8"]) == read_metadata(graphs["scaled"])
    # The first convolutions read the photo at full resolution and stay float: int8 there cost
    # bench graders their QWK (0.059 lower with every one int8, 0.011-0.023 with the stem
    # float, none with the first 10 float).
    assert all(weights.get(conv.input[1]) == onnx.TensorProto.FLOAT
               for conv in convolutions[:10])

    pixels, geometry = inputs(8, seed=6)
    int8 = sessions["int8"](pixels, geometry)
    fp32 = sessions["scaled"](pixels, geometry)
    assert int8.shape == fp32.shape
    np.testing.assert_allclose(int8.sum(axis=-1), 1, atol=1e-5)
    difference = np.abs(int8 - fp32)
    assert 0 < difference.max() < 0.3
    assert difference.mean() < 0.03


def test_int8_needs_calibration_images(graphs: dict[str, Path], tmp_path: Path) -> None:
    pixels, geometry = inputs(0, seed=7)
    with pytest.raises(ValueError, match="training images"):
        quantize_int8(graphs["scaled"], tmp_path / "int8.onnx", pixels, geometry,
                      float_convolutions=10)


# parity

def test_onnx_fp32_passes_parity_and_int8_does_not(
        model: TaskModel, sessions: dict[str, GraderSession]) -> None:
    pixels, geometry = inputs(8, seed=8)
    reference = torch_outputs(model, SCALED, pixels, geometry)
    limits = ParityLimits(max_abs_diff=1e-3, same_prediction=0.999)
    verdicts = {}
    for name in ("scaled", "int8"):
        outputs = sessions[name](pixels, geometry)
        verdicts[name] = compare_outputs(name, reference, outputs, median_grade(reference),
                                         median_grade(outputs), limits)
    assert verdicts["scaled"].passed
    assert verdicts["scaled"].same_prediction == 1.0 and verdicts["scaled"].images == 8
    assert not verdicts["int8"].passed
    assert verdicts["int8"].max_abs_diff > 1e-3


def test_parity_by_hand() -> None:
    reference = np.zeros((4, 3))
    exported = reference.copy()
    exported[2, 1] = -0.002
    labels = np.array([[1, 2], [3, 4], [5, 6], [7, 8]])
    changed = labels.copy()
    changed[1, 1] = 5  # one of an image's labels differs: the image's prediction differs
    parity = compare_outputs("onnx fp32", reference, exported, labels, changed,
                             ParityLimits(max_abs_diff=1e-3, same_prediction=0.7))
    assert parity.max_abs_diff == pytest.approx(0.002)
    assert parity.same_prediction == 0.75
    assert parity.images == 4
    assert not parity.passed  # the difference is over its limit
    assert parity.as_dict()["passed"] is False
    assert parity_metrics([parity]) == {"parity.onnx_fp32.max_abs_diff": parity.max_abs_diff,
                                        "parity.onnx_fp32.same_prediction": 0.75}


@pytest.mark.parametrize(("max_abs_diff", "same", "passed"), [
    (1e-3, 0.75, True),      # both at their limits: inclusive
    (1.5e-3, 1.0, False),
    (0.0, 0.5, False),
    (float("nan"), 1.0, False),
])
def test_parity_passes_within_both_limits_only(max_abs_diff: float, same: float,
                                               passed: bool) -> None:
    reference = np.zeros((4, 1))
    exported = np.array([[max_abs_diff], [0.0], [0.0], [0.0]])
    labels = np.arange(4)
    exported_labels = np.where(np.arange(4) < round(4 * same), labels, -1)
    parity = compare_outputs("x", reference, exported, labels, exported_labels,
                             ParityLimits(max_abs_diff=1e-3, same_prediction=0.75))
    assert parity.passed is passed


def test_parity_refuses_outputs_it_cannot_compare() -> None:
    with pytest.raises(ValueError, match="shape"):
        compare_outputs("x", np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2), np.zeros(2),
                        ParityLimits())
    with pytest.raises(ValueError, match="no images"):
        compare_outputs("x", np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0),
                        ParityLimits())


# latency

class SleepyPredictor:
    """Sleeps a fixed time per call, and `cold` more on the first call of each batch size (as a
    real backend plans its first run); records the first pixel of each call's images."""

    def __init__(self, seconds: float, cold: float = 0.0) -> None:
        self.seconds, self.cold = seconds, cold
        self.calls: list[tuple[int, int]] = []  # (batch size, first pixel value)

    def __call__(self, pixels: np.ndarray, geometry: np.ndarray) -> np.ndarray:
        assert len(pixels) == len(geometry)
        first = all(size != len(pixels) for size, _ in self.calls)
        self.calls.append((len(pixels), int(pixels[0, 0, 0, 0])))
        time.sleep(self.seconds + (self.cold if first else 0.0))
        return pixels


def test_latency_of_a_predictor_with_a_known_delay() -> None:
    pixels = np.stack([np.full((2, 2, 3), value, np.uint8) for value in (10, 20, 30)])
    geometry = np.zeros((3, 4), np.float32)
    predict = SleepyPredictor(0.005, cold=0.3)

    row = measure_latency("fake", predict, pixels, geometry, runs=10, batch_runs=2, warmup=1)

    assert 4 <= row.p50_ms <= 50
    assert row.p50_ms <= row.p99_ms <= 100  # the cold first call is not counted
    # five milliseconds a batch of 32 at most: 6400 images/s at best; a counted cold call
    # would bring it under 32 * 3 / 0.3 = 320
    assert 330 <= row.images_per_s <= THROUGHPUT_BATCH / 0.005 * 1.01
    singles = [call for call in predict.calls if call[0] == 1]
    batches = [call for call in predict.calls if call[0] == THROUGHPUT_BATCH]
    assert len(singles) == 1 + 10 and len(batches) == 1 + 2
    assert len(predict.calls) == len(singles) + len(batches)
    assert [value for _, value in singles[:4]] == [10, 20, 30, 10]  # cycles through the images


def test_latency_of_the_exported_graph(sessions: dict[str, GraderSession]) -> None:
    pixels, geometry = inputs(2, seed=9)
    row = measure_latency("onnx fp32", sessions["scaled"], pixels, geometry,
                          runs=5, batch_runs=1, warmup=1)
    assert 0 < row.p50_ms <= row.p99_ms
    assert row.images_per_s > 0
    assert latency_metrics([row]) == {"latency.onnx_fp32.p50_ms": row.p50_ms,
                                      "latency.onnx_fp32.p99_ms": row.p99_ms,
                                      "latency.onnx_fp32.images_per_s": row.images_per_s}


def test_latency_needs_an_image() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        measure_latency("x", SleepyPredictor(0), np.empty((0, 2, 2, 3), np.uint8),
                        np.empty((0, 4), np.float32))


def test_one_run_gives_probabilities_pooled_features_and_severity_maps(
        model: TaskModel, graphs: dict[str, Path]) -> None:
    pixels, geometry = inputs(3, seed=9)
    answer = GraderSession(graphs["scaled"], embeddings=True).answer(pixels, geometry)
    with torch.no_grad():
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
        outputs = model.training_outputs(model.activations(images), torch.from_numpy(geometry))
        features = model.head.decode(model.activations(images))[1]
    plain = GraderSession(graphs["scaled"])
    np.testing.assert_allclose(answer.probabilities, plain(pixels, geometry), atol=1e-6)
    assert answer.embeddings.shape == (3, DECODER_WIDTH)
    assert np.abs(answer.embeddings - features.numpy()).max() < 1e-3
    width, height = SIZE
    classes = len(CARD_RUBRIC.defect_classes)
    assert answer.severity_maps.shape == (3, classes, height // 8, width // 8)
    assert np.abs(answer.severity_maps - outputs.maps.numpy()).max() < 1e-4
    without = plain.answer(pixels, geometry)
    assert without.embeddings is None and without.severity_maps is not None
    for name in ("scaled", "int8"):  # int8 keeps the second output
        assert [o.name for o in onnx.load(str(graphs[name])).graph.output] == [
            "probabilities", "severity_maps"]
