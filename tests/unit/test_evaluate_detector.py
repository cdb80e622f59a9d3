"""The trained detector is evaluated on its test split, exported to ONNX, and its graph answers
like the PyTorch model: one tiny detector (64 px, one epoch) serves every test, with the network
cut off so that anything Ultralytics tries to fetch shows up."""

from __future__ import annotations

import csv
import json
import math
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from components.evaluate.detector import (
    detector_parity,
    evaluate_detector,
    export_detector,
)
from components.evaluate.parity import ParityLimits
from components.train.detector import DetectorConfig, DetectorError, train_detector
from components.train.loading import save_detector
from components.vision.rubric import DEFECT_CLASSES
from tests.unit.test_detector import ingest_cards

ONE_EPOCH = DetectorConfig(epochs=1, imgsz=64, batch=8, patience=5, seed=0)
CLOSE = ParityLimits(max_abs_diff=1e-3, same_prediction=1.0)


def val_test_and_train(index: int) -> str:
    """Every fifth card in val, the next one in test and the rest in train."""
    return {0: "val", 1: "test"}.get(index % 5, "train")


@pytest.fixture(scope="module")
def network_calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[object]]:
    """Every address something tried to reach while the module ran; each try is refused."""
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise OSError("tests run offline")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics-config")))
        mp.setattr(socket, "getaddrinfo", refuse)
        mp.setattr(socket.socket, "connect", refuse)
        yield calls


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, network_calls: list[object]
            ) -> tuple[Path, Path]:
    """(model folder, dataset root) of a detector trained for one epoch at 64 px."""
    folder = tmp_path_factory.mktemp("detector")
    root = ingest_cards(folder, n=40, seed=5, split_of=val_test_and_train)
    result = train_detector(root, folder / "train", ONE_EPOCH)
    model_dir = save_detector(folder / "model", result.weights, ONE_EPOCH.imgsz, DEFECT_CLASSES)
    return model_dir, root


@pytest.fixture(scope="module")
def exported(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_detector(trained[0], tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def test_images(trained: tuple[Path, Path]) -> list[np.ndarray]:
    """The test split's photos as the predictor gets them (BGR), plus one cut to a different
    aspect ratio so that letterboxing pads."""
    root = trained[1]
    with (root / "manifest.csv").open(newline="") as f:
        paths = [row["image_path"] for row in csv.DictReader(f) if row["split"] == "test"]
    images = [cv2.imread(str(root / path)) for path in paths]
    return [*images, np.ascontiguousarray(images[0][:, : images[0].shape[1] // 2])]


def test_evaluation_reports_every_metric_for_every_class_and_draws_the_plots(
    trained: tuple[Path, Path], tmp_path: Path, network_calls: list[object]
) -> None:
    model_dir, root = trained
    dataset_before = sorted(p.relative_to(root) for p in root.rglob("*"))

    evaluation = evaluate_detector(model_dir, root, "test", tmp_path / "evaluation")

    assert evaluation.split == "test"
    assert evaluation.images == 8
    per_class = {f"{kind}.{name}" for name in DEFECT_CLASSES for kind in ("precision", "recall")}
    assert set(evaluation.metrics) == {"map50", "map50_95", "precision", "recall", *per_class}
    for name, value in evaluation.metrics.items():
        assert math.isnan(value) or 0.0 <= value <= 1.0, name
    for name in ("map50", "map50_95", "precision", "recall"):
        assert not math.isnan(evaluation.metrics[name]), name
    assert [plot.name for plot in evaluation.plots] == ["detector_pr_curve.png",
                                                        "detector_confusion_matrix.png"]
    for plot in evaluation.plots:
        assert plot.parent == tmp_path / "evaluation"
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == dataset_before  # no cache
    assert network_calls == []


def test_evaluating_a_split_with_no_items_names_it(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    model_dir, root = trained

    with pytest.raises(DetectorError, match="no 'calibration' items"):
        evaluate_detector(model_dir, root, "calibration", tmp_path)


def test_a_detector_trained_on_other_classes_is_refused(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    model_dir, root = trained
    other = shutil.copytree(model_dir, tmp_path / "other")
    (other / "detector.json").write_text(json.dumps({"imgsz": 64,
                                                     "classes": list(DEFECT_CLASSES)[::-1]}))

    with pytest.raises(DetectorError, match="misnamed"):
        evaluate_detector(other, root, "test", tmp_path / "evaluation")


def test_export_writes_an_opset_17_graph_with_a_dynamic_batch(
    trained: tuple[Path, Path], exported: Path, network_calls: list[object]
) -> None:
    graph = onnx.load(str(exported))

    assert exported.name == "detector.onnx" and exported.is_file()
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value")
    assert sorted(p.name for p in trained[0].iterdir()) == ["detector.json", "detector.pt"]
    assert network_calls == []


def test_export_refuses_an_opset_below_17(trained: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset 16"):
        export_detector(trained[0], tmp_path, opset=16)


def test_onnx_answers_like_pytorch_on_real_photos(
    trained: tuple[Path, Path], exported: Path, test_images: list[np.ndarray],
    network_calls: list[object]
) -> None:
    parity = detector_parity(trained[0], exported, test_images, CLOSE)

    assert parity.passed, parity.as_dict()
    assert parity.images == len(test_images) == 9
    assert network_calls == []


def test_parity_fails_when_no_difference_at_all_is_allowed(
    trained: tuple[Path, Path], exported: Path, test_images: list[np.ndarray]
) -> None:
    # The graph folds batch norms into the convolutions: float32 sums in another order.
    parity = detector_parity(trained[0], exported, test_images,
                             ParityLimits(max_abs_diff=0.0, same_prediction=1.0))

    assert parity.max_abs_diff > 0.0
    assert not parity.passed


def test_parity_fails_against_the_graph_of_another_model(
    trained: tuple[Path, Path], exported: Path, test_images: list[np.ndarray], tmp_path: Path
) -> None:
    from ultralytics import YOLO  # imported by the fixtures already, inside their containment

    model_dir = trained[0]
    other = YOLO(str(model_dir / "detector.pt"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in other.model.parameters():
            parameter.mul_(1 + 0.2 * torch.randn(parameter.shape, generator=generator))
    other.save(tmp_path / "other.pt")
    other_dir = save_detector(tmp_path / "other", tmp_path / "other.pt", ONE_EPOCH.imgsz,
                              DEFECT_CLASSES)
    other_graph = export_detector(other_dir, tmp_path / "other-export")

    parity = detector_parity(model_dir, other_graph, test_images, CLOSE)

    assert parity.max_abs_diff > CLOSE.max_abs_diff
    assert not parity.passed
