"""The defect detector: an Ultralytics YOLO model trained on an ingested detection dataset.

    config = DetectorConfig(epochs=30, imgsz=320, batch=16, patience=10, seed=0)
    result = train_detector(root, out_dir, config, on_epoch=log_metrics)
    result.weights, result.metrics["map50"], result.metrics["recall.crease"]

`root` is an accepted dataset (manifest.csv, images/, labels/, dataset.json); `out_dir` gets
dataset.yaml, train.txt and val.txt, a folder of links to the train and val items, and the
Ultralytics run (`run/weights/best.pt`, `run/weights/last.pt`, `run/results.csv`).

Four things keep Ultralytics inside its lane:
- Nothing is downloaded. A model YAML is built from scratch; a `.pt` must be a local file. The
  AMP check (which fetches yolo26n.pt) never runs: CUDA trains in bfloat16, which Ultralytics
  does not check, or in fp32 on GPUs without native bfloat16; CPU trains in fp32. The Arial font
  download, the PyPI update check and the pip install of a missing requirement (the exporter
  checks for onnx, onnxslim and onnxruntime) are switched off, and so is the DNS probe
  Ultralytics makes at import when this module is the first to import it (YOLO_OFFLINE).
- None of its integrations run (MLflow, DVC, TensorBoard, W&B, Comet, ClearML, Ray Tune, its
  Platform, usage events): the caller owns the MLflow run and logs what `on_epoch` gets, and the
  DVC callback must not touch our data repo. This holds whatever the user's Ultralytics settings
  file or environment says, and the settings file is never written.
- It keeps every core: on CPU it would set torch's thread count to the cores minus one for the
  whole process.
- The dataset is only read. Ultralytics writes a label cache beside the label folders, so it
  trains on links under `out_dir` and the cache lands there, not in the DVC-tracked dataset.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import torch
import yaml
from PIL import Image

if TYPE_CHECKING:
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.metrics import DetMetrics

TRAINING_SPLITS = ("train", "val")
RUN_NAME = "run"
LINKS_DIR = "links"


@dataclass(frozen=True)
class DetectorConfig:
    """How to train; the fast profile in params.yaml fills it."""

    epochs: int  # most epochs; early stopping may end sooner
    imgsz: int  # square training size in pixels, a multiple of 32
    batch: int  # images per step
    patience: int  # epochs without a better validation fitness before stopping
    seed: int
    model: str = "yolo11n.yaml"  # a model YAML (built from scratch) or a local .pt to fine-tune
    workers: int = 0  # dataloader worker processes (Ultralytics uses 0 on CPU whatever this says)
    device: str | None = None  # None: "0" when CUDA is available, else "cpu"


@dataclass(frozen=True)
class DetectorResult:
    """What a training produced and how well the best weights do on validation."""

    weights: Path  # best.pt
    # map50, map50_95, precision, recall, and precision.<class>, recall.<class> for every class
    # (NaN for a class with no box in the validation split)
    metrics: dict[str, float]
    epochs_run: int  # epochs the weights have been trained for, resumed ones included
    images_per_s: float  # training images per second of training (validation not counted)
    history: list[dict[str, float]]  # one row per epoch of this call, as on_epoch got them


class DetectorError(ValueError):
    """The dataset or the configuration cannot train a detector (no classes, an empty split)."""


def write_yolo_dataset(root: Path, out_dir: Path,
                       splits: Sequence[str] = TRAINING_SPLITS) -> Path:
    """Write <out_dir>/dataset.yaml plus one <split>.txt image list (absolute paths) per split
    from the manifest; returns the yaml path.

    The listed images are links under `<out_dir>/links/<split>/` to the dataset's files, each
    with its label linked where Ultralytics looks for it, so its label cache is written there
    and every split keeps one cache of its own. Ultralytics insists on `train` and `val` entries:
    one that is not among `splits` lists the first split's images (an evaluation reads only the
    split it names).
    """
    root, out_dir = Path(root).resolve(), Path(out_dir).resolve()
    classes = _read_classes(root)
    by_split = _read_items(root, tuple(splits))
    links = out_dir / LINKS_DIR
    shutil.rmtree(links, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    lists: dict[str, Path] = {}
    for split, items in by_split.items():
        images = [_link_item(root, links / split, image_path) for image_path in items]
        lists[split] = out_dir / f"{split}.txt"
        lists[split].write_text("".join(f"{image}\n" for image in images))
    first = lists[next(iter(lists))]
    entries = {split: str(lists.get(split, first)) for split in (*TRAINING_SPLITS, *lists)}
    spec = {"path": str(out_dir), **entries, "names": dict(enumerate(classes))}
    dataset_yaml = out_dir / "dataset.yaml"
    dataset_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    return dataset_yaml


def train_detector(
    root: Path,
    out_dir: Path,
    config: DetectorConfig,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    resume: bool = False,
) -> DetectorResult:
    """Train under out_dir (the Ultralytics run is out_dir/run), calling on_epoch after every
    epoch with that epoch's metrics; resume=True continues from out_dir's last.pt if it exists.

    A last.pt of a run that finished has nothing left to continue: training then starts afresh.
    """
    out_dir = Path(out_dir).resolve()
    dataset_yaml = write_yolo_dataset(root, out_dir)
    recorder = _Recorder(on_epoch)
    with contained_ultralytics():
        model, resuming = _load_model(config, out_dir / RUN_NAME / "weights" / "last.pt", resume)
        for event, callback in recorder.callbacks().items():
            model.add_callback(event, callback)
        model.train(data=str(dataset_yaml), resume=resuming, **_train_args(config, out_dir))
    trainer = model.trainer
    images = len(trainer.train_loader.dataset) * recorder.train_epochs
    return DetectorResult(
        weights=Path(trainer.best),
        metrics=final_metrics(trainer.validator.metrics, trainer.data["names"]),
        epochs_run=trainer.epoch + 1,
        images_per_s=round(images / recorder.train_seconds, 2) if recorder.train_seconds else 0.0,
        history=recorder.history,
    )


def _read_classes(root: Path) -> list[str]:
    """Class names from dataset.json, which must describe a detection dataset."""
    path = root / "dataset.json"
    if not path.is_file():
        raise DetectorError(f"{path} is missing: a detection dataset names its classes there")
    info = json.loads(path.read_text())
    if info.get("task", "detect") != "detect":
        raise DetectorError(f"{path} is a {info['task']!r} dataset, not a 'detect' one")
    classes = [str(name) for name in info.get("classes") or []]
    if not classes:
        raise DetectorError(f"{path} lists no classes: a detector needs at least one")
    return classes


def _read_items(root: Path, splits: tuple[str, ...]) -> dict[str, list[str]]:
    """Image paths (relative to root) of the items of each of `splits`; every split must have
    some and every image must be a file under root/images."""
    path = root / "manifest.csv"
    if not path.is_file():
        raise DetectorError(f"{path} is missing")
    if not splits:
        raise DetectorError("no split to write: name at least one")
    by_split: dict[str, list[str]] = {split: [] for split in splits}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"image_path", "split"} - set(reader.fieldnames or ())
        if missing:
            raise DetectorError(f"{path} lacks the column(s) {sorted(missing)}")
        for row in reader:
            if row["split"] in by_split:
                _check_image(root, row)
                by_split[row["split"]].append(row["image_path"])
    for split, items in by_split.items():
        if not items:
            raise DetectorError(f"{path} has no {split!r} items (needed: "
                                f"{', '.join(map(repr, splits))})")
    return by_split


def _check_image(root: Path, row: dict[str, str]) -> None:
    """An image must sit under root/images, where Ultralytics' convention finds its label."""
    relative = Path(row["image_path"])
    item = row.get("item_id") or row["image_path"]
    if relative.is_absolute() or relative.parts[:1] != ("images",) or ".." in relative.parts:
        raise DetectorError(f"item {item}: image_path {row['image_path']!r} is not under images/")
    if not (root / relative).is_file():
        raise DetectorError(f"item {item}: image {root / relative} does not exist")


def _link_item(root: Path, links: Path, image_path: str) -> Path:
    """Link one image and, when it has one, its label into `links`; returns the image link."""
    inside = Path(image_path).relative_to("images")
    image = links / "images" / inside
    image.parent.mkdir(parents=True, exist_ok=True)
    image.symlink_to(root / image_path)
    label = root / "labels" / inside.with_suffix(".txt")
    if label.is_file():
        label_link = links / "labels" / inside.with_suffix(".txt")
        label_link.parent.mkdir(parents=True, exist_ok=True)
        label_link.symlink_to(label)
    return image


@contextmanager
def contained_ultralytics() -> Iterator[None]:
    """Ultralytics with no integration callbacks, no font download, no update check, no package
    installs, and only its warnings logged (progress reaches the caller through on_epoch).

    Replacing the one function that adds the integrations disables them all whatever the user's
    settings say, without writing the settings file; patch() fails loudly if an upgrade renames
    any of these.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")  # read at first import: no DNS probe, no PyPI check
    import ultralytics.data.utils
    import ultralytics.utils.callbacks
    import ultralytics.utils.checks
    import ultralytics.utils.patches
    import ultralytics.utils.plotting
    import ultralytics.utils.torch_utils

    # Importing Ultralytics replaces PIL's Image.open for the whole process with one that, on a
    # file PIL cannot identify, tries to install and import pi-heif and raises ImportError:
    # every later decode of a bad upload or ingested file would fail that way. Put PIL's back.
    Image.open = ultralytics.utils.patches._image_open

    logger = logging.getLogger("ultralytics")
    level = logger.level
    logger.setLevel(logging.WARNING)  # also hides its progress bars
    threads = torch.get_num_threads()
    try:
        with (
            patch.object(ultralytics.utils.callbacks, "add_integration_callbacks",
                         _no_integrations),
            patch.object(ultralytics.data.utils, "check_font", _no_font),
            patch.object(ultralytics.utils.plotting, "check_font", _no_font),
            patch.object(ultralytics.utils.checks, "AUTOINSTALL", False),
            patch.object(ultralytics.utils.checks, "check_pip_update_available", lambda: False),
            # CPU training sets torch's threads to the core count minus one, process-wide: half
            # the speed on two cores, and every later torch call of the process slowed too.
            patch.object(ultralytics.utils.torch_utils, "NUM_THREADS", threads),
        ):
            yield
    finally:
        logger.setLevel(level)
        torch.set_num_threads(threads)


def _no_integrations(instance: object) -> None:
    """Stands in for Ultralytics' add_integration_callbacks: adds nothing."""


def _no_font(font: str = "Arial.ttf") -> None:
    """Stands in for Ultralytics' check_font, which downloads Arial: the labels on the plots
    an evaluation draws fall back to PIL's default font."""


def _load_model(config: DetectorConfig, last: Path, resume: bool) -> tuple[YOLO, bool]:
    """The model to train and whether it resumes an unfinished run from `last`."""
    from ultralytics import YOLO

    if resume and last.is_file():
        model = YOLO(str(last))
        if model.ckpt.get("epoch", -1) >= 0 and model.ckpt.get("optimizer") is not None:
            return model, True
    source = Path(config.model)
    if source.suffix == ".pt" and not source.is_file():
        raise DetectorError(f"model {config.model} is not a local file (nothing is downloaded)")
    if source.suffix not in {".pt", ".yaml", ".yml"}:
        raise DetectorError(f"model {config.model!r} is neither a model YAML nor a .pt file")
    return YOLO(config.model), False


def _train_args(config: DetectorConfig, out_dir: Path) -> dict[str, Any]:
    """Ultralytics training arguments for `config`, writing the run to out_dir/run."""
    device = config.device or ("0" if torch.cuda.is_available() else "cpu")
    if "," in device:  # DDP trains in subprocesses, out of reach of our callbacks and patches
        raise DetectorError(f"device {device!r}: training runs on one device")
    return {
        "epochs": config.epochs,
        "imgsz": config.imgsz,
        "batch": config.batch,
        "patience": config.patience,
        "seed": config.seed,
        "deterministic": True,
        "workers": config.workers,
        "device": device,
        "amp": _precision(device),
        "save_dir": str(out_dir / RUN_NAME),
        "plots": False,
        "verbose": False,
    }


def _precision(device: str) -> str | bool:
    """bfloat16 on CUDA GPUs that do it natively, else fp32: Ultralytics checks fp16 AMP by
    downloading yolo26n.pt, and skips that check for bfloat16."""
    if device == "cpu" or device.startswith("mps") or not torch.cuda.is_available():
        return False
    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else False


class _Recorder:
    """Ultralytics callbacks that time the training passes and report each epoch's metrics."""

    def __init__(self, on_epoch: Callable[[dict[str, float]], None] | None) -> None:
        self.on_epoch = on_epoch
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self.train_epochs = 0
        self._epoch_started = 0.0

    def callbacks(self) -> dict[str, Callable[[DetectionTrainer], None]]:
        return {
            "on_train_epoch_start": self._start,
            "on_train_epoch_end": self._stop,
            "on_fit_epoch_end": self._report,
        }

    def _start(self, trainer: DetectionTrainer) -> None:
        self._epoch_started = time.perf_counter()

    def _stop(self, trainer: DetectionTrainer) -> None:
        self.train_seconds += time.perf_counter() - self._epoch_started
        self.train_epochs += 1

    def _report(self, trainer: DetectionTrainer) -> None:
        # Ultralytics fires this event once more after validating best.pt at the end; that
        # validation runs without a trainer, which is how it is told apart from an epoch's.
        if not trainer.validator.training:
            return
        losses = trainer.label_loss_items(trainer.tloss, prefix="train")
        row = {"epoch": trainer.epoch + 1,
               **{name.split("/", 1)[1]: float(value) for name, value in losses.items()},
               "map50": float(trainer.metrics["metrics/mAP50(B)"]),
               "map50_95": float(trainer.metrics["metrics/mAP50-95(B)"])}
        self.history.append(row)
        if self.on_epoch:
            self.on_epoch(row)


def final_metrics(metrics: DetMetrics, names: dict[int, str]) -> dict[str, float]:
    """Mean and per-class validation metrics from Ultralytics' DetMetrics."""
    precision, recall, map50, map50_95 = (float(x) for x in metrics.mean_results())
    result = {"map50": map50, "map50_95": map50_95, "precision": precision, "recall": recall}
    per_class = {int(c): i for i, c in enumerate(metrics.ap_class_index)}
    for index, name in names.items():
        row = per_class.get(index)
        result[f"precision.{name}"] = math.nan if row is None else float(metrics.box.p[row])
        result[f"recall.{name}"] = math.nan if row is None else float(metrics.box.r[row])
    return result
