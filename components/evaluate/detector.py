"""The defect detector after training: its mAP and per-class precision/recall on a held-out split,
the ONNX graph that serving runs, and whether that graph answers like the PyTorch model.

    evaluation = evaluate_detector(model_dir, root, "test", out / "evaluation")
    evaluation.metrics["map50"], evaluation.metrics["recall.crease"], evaluation.plots
    graph = export_detector(model_dir, out / "export")              # out/export/detector.onnx
    parity = detector_parity(model_dir, graph, images, ParityLimits(max_abs_diff=1e-3))
    parity.passed

`model_dir` is what `save_detector` wrote (detector.pt, detector.json); `root` is an accepted
dataset as `train_detector` takes it, and is only read. `images` are HxWx3 uint8 BGR arrays, what
`DetectorPredictor` hands Ultralytics. Every Ultralytics call runs inside `contained_ultralytics`:
nothing is downloaded or pip-installed and none of its integrations runs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from unittest.mock import patch

import numpy as np
import onnxruntime
import torch
import yaml

from components.evaluate.parity import Parity, ParityLimits, compare_outputs
from components.splits import SPLIT_NAMES
from components.train.detector import (
    DetectorError,
    contained_ultralytics,
    final_metrics,
    write_yolo_dataset,
)
from components.train.loading import DEFAULT_CONFIDENCE, DETECTOR_SPEC, DETECTOR_WEIGHTS

if TYPE_CHECKING:
    from ultralytics import YOLO

MIN_OPSET = 17
ONNX_FILE = "detector.onnx"
VAL_DIR = "detector_val"  # under out_dir: the dataset yaml, links and Ultralytics' val run
RUN_NAME = "run"
# Ultralytics' file names -> the stable names a reviewer (and MLflow) finds them under
PLOTS = {"BoxPR_curve.png": "detector_pr_curve.png",
         "confusion_matrix.png": "detector_confusion_matrix.png"}
VAL_BATCH = 16
PARITY_BATCH = 16
NO_DETECTION = -1  # the label of an anchor with no class at DEFAULT_CONFIDENCE or above


@dataclass(frozen=True)
class DetectorEvaluation:
    """How the saved detector does on one split, and the plots that show it."""

    split: str
    images: int
    # map50, map50_95, precision, recall, and precision.<class>, recall.<class> for every class
    # (NaN for a class with no box in the split)
    metrics: dict[str, float]
    plots: list[Path]  # PR curve and confusion matrix, as Ultralytics' validator draws them


def evaluate_detector(model_dir: Path, root: Path, split: str, out_dir: Path) -> DetectorEvaluation:
    """mAP and per-class precision/recall of the detector saved in model_dir on the `split` items
    (normally "test") of the dataset at root; out_dir gets the plots and Ultralytics' val run."""
    if split not in SPLIT_NAMES:
        raise DetectorError(f"split {split!r} is not one of {', '.join(SPLIT_NAMES)}")
    out_dir = Path(out_dir).resolve()
    imgsz, classes = _read_spec(model_dir)
    work = out_dir / VAL_DIR
    dataset_yaml = write_yolo_dataset(root, work, splits=(split,))
    dataset_classes = list(yaml.safe_load(dataset_yaml.read_text())["names"].values())
    if dataset_classes != classes:
        raise DetectorError(f"{root} labels the classes {dataset_classes}, but the detector in "
                            f"{model_dir} was trained on {classes}: its metrics would be misnamed")
    drawn = work / RUN_NAME
    shutil.rmtree(drawn, ignore_errors=True)  # plots of an earlier evaluation are not this one's
    with contained_ultralytics():
        model = _load_yolo(model_dir)
        metrics = model.val(data=str(dataset_yaml), split=split, imgsz=imgsz, batch=VAL_BATCH,
                            device=_device(), workers=0, plots=True, verbose=False,
                            project=str(work), name=RUN_NAME, exist_ok=True)
    plots = []
    for source, name in PLOTS.items():  # no PR curve for a split with no box and no detection
        (out_dir / name).unlink(missing_ok=True)
        if (drawn / source).is_file():
            plots.append(Path(shutil.copyfile(drawn / source, out_dir / name)))
    images = len((work / f"{split}.txt").read_text().splitlines())
    return DetectorEvaluation(split=split, images=images,
                              metrics=final_metrics(metrics, model.names), plots=plots)


def export_detector(model_dir: Path, out_dir: Path, opset: int = MIN_OPSET) -> Path:
    """The detector as ONNX through Ultralytics' exporter (fp32, dynamic batch, opset >= 17, raw
    outputs without NMS); returns the .onnx path inside out_dir."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset}: the detector exports at opset {MIN_OPSET} or later")
    imgsz, _ = _read_spec(model_dir)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ONNX_FILE
    with tempfile.TemporaryDirectory() as scratch, contained_ultralytics():
        import ultralytics.engine.exporter

        # The exporter writes beside the .pt: a copy keeps model_dir as save_detector left it.
        weights = Path(shutil.copyfile(Path(model_dir) / DETECTOR_WEIGHTS,
                                       Path(scratch) / DETECTOR_WEIGHTS))
        model = _load_yolo(weights.parent)
        # Its one-time OpenVINO tip would write the user's Ultralytics settings file, and it
        # exports through torch's TorchScript exporter, which torch deprecates.
        with (patch.object(ultralytics.engine.exporter, "SETTINGS", {"openvino_msg": False}),
              warnings.catch_warnings()):
            warnings.simplefilter("ignore", DeprecationWarning)
            exported = model.export(format="onnx", dynamic=True, opset=opset, imgsz=imgsz,
                                    simplify=True, device="cpu")
        shutil.move(exported, target)
    return target


def detector_parity(model_dir: Path, onnx_path: Path, images: Sequence[np.ndarray],
                    limits: ParityLimits, backend: str = "detector onnx",
                    providers: Sequence[str] = ("CPUExecutionProvider",)) -> Parity:
    """Raw outputs of the ONNX graph (onnxruntime, CPU) against the PyTorch model's on the same
    letterboxed images, boxes divided by imgsz so that one limit fits scores and boxes.
    `providers` picks the runtime (TensorRT's execution provider builds an engine from it).

    The label compared per image is, for every anchor, the class the predictor would report there
    (its best class at DEFAULT_CONFIDENCE or above, else -1): anchors below the confidence are
    left out, where a rounding difference would flip a meaningless argmax.
    """
    imgsz, _ = _read_spec(model_dir)
    with contained_ultralytics():
        batch = letterbox(images, imgsz)
        reference = _torch_outputs(_load_yolo(model_dir), batch)
    exported = _onnx_outputs(onnx_path, batch, providers)
    return compare_outputs(backend, _scale_boxes(reference, imgsz),
                           _scale_boxes(exported, imgsz), _confident_classes(reference),
                           _confident_classes(exported), limits)


def letterbox(images: Sequence[np.ndarray], imgsz: int) -> np.ndarray:
    """N x 3 x imgsz x imgsz float32 RGB in [0, 1] from HxWx3 uint8 BGR images, letterboxed as
    Ultralytics' predictor does (scaled to fit, centred, padded with grey 114)."""
    from ultralytics.data.augment import LetterBox

    resize = LetterBox(new_shape=(imgsz, imgsz), auto=False)
    batch = []
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image {i}: expected HxWx3 uint8 BGR, got {image.dtype} "
                             f"{image.shape}")
        batch.append(resize(image=image)[..., ::-1].transpose(2, 0, 1))
    if not batch:
        raise ValueError("no images to compare")
    return (np.stack(batch) / 255).astype(np.float32)


def _confident_classes(outputs: np.ndarray) -> np.ndarray:
    """N x anchors: each anchor's best class where its score reaches DEFAULT_CONFIDENCE, else -1,
    from raw outputs N x (4 + classes) x anchors."""
    scores = outputs[:, 4:, :]
    return np.where(scores.max(axis=1) >= DEFAULT_CONFIDENCE, scores.argmax(axis=1), NO_DETECTION)


def _scale_boxes(outputs: np.ndarray, imgsz: int) -> np.ndarray:
    """Raw outputs with the box rows (x, y, w, h in pixels) divided by imgsz."""
    scaled = outputs.astype(np.float64)
    scaled[:, :4, :] /= imgsz
    return scaled


def _torch_outputs(model: YOLO, batch: np.ndarray) -> np.ndarray:
    """Raw outputs N x (4 + classes) x anchors of the PyTorch model, as trained (not fused)."""
    network = model.model.float().eval()
    with torch.inference_mode():
        chunks = [network(torch.from_numpy(batch[i:i + PARITY_BATCH]))
                  for i in range(0, len(batch), PARITY_BATCH)]
    # In eval mode the head answers (decoded outputs, raw head outputs); export keeps the first.
    return np.concatenate([(chunk[0] if isinstance(chunk, tuple) else chunk).numpy()
                           for chunk in chunks])


def _onnx_outputs(onnx_path: Path, batch: np.ndarray, providers: Sequence[str]) -> np.ndarray:
    """Raw outputs of the exported graph, run PARITY_BATCH images at a time (its batch is
    dynamic), on the first of `providers`; an error if ONNX Runtime fell back to another."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=list(providers))
    if session.get_providers()[0] != providers[0]:
        raise RuntimeError(f"ONNX Runtime could not use {providers[0]} for {onnx_path.name}; "
                           f"it offers {session.get_providers()}")
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: batch[i:i + PARITY_BATCH]})[0]
                           for i in range(0, len(batch), PARITY_BATCH)])


def _read_spec(model_dir: Path) -> tuple[int, list[str]]:
    """The training image size and class names saved beside the detector's weights."""
    spec_path, weights = Path(model_dir) / DETECTOR_SPEC, Path(model_dir) / DETECTOR_WEIGHTS
    if not spec_path.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{model_dir} holds no detector: {DETECTOR_SPEC} and "
                                f"{DETECTOR_WEIGHTS} are both needed")
    spec = json.loads(spec_path.read_text())
    return int(spec["imgsz"]), [str(name) for name in spec["classes"]]


def _load_yolo(model_dir: Path) -> YOLO:
    """The Ultralytics model of the detector in model_dir (call inside contained_ultralytics)."""
    from ultralytics import YOLO

    return YOLO(str(Path(model_dir) / DETECTOR_WEIGHTS), task="detect")


def _device() -> str:
    """The first GPU when there is one, as training picks it."""
    return "0" if torch.cuda.is_available() else "cpu"


def example_input(model_dir: Path, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """The exported graph's input for these images, keyed by its input name (`images`)."""
    imgsz, _ = _read_spec(model_dir)
    with contained_ultralytics():
        return {"images": letterbox(images, imgsz)}
