"""Training's task plugins, one door for every task: grade and classify train the Lite0
backbone (trainer.py), detect trains YOLO (detector.py); each returns the same `TrainResult`,
so the flow and its tracking never branch on the task.

    result = train_task("detect", root, classes, params, "fast", work_dir, on_progress, on_epoch)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import pandas as pd

from components.train.detector import DetectorConfig, train_detector
from components.train.loading import DetectorPredictor, load_predictor, save_detector
from components.train.metrics import prediction_sheet, training_curves_png
from components.train.params import BackboneProfile, DetectProfile, Profile, TrainParams
from components.train.tasks import TrainDataError
from components.train.trainer import SAMPLES, Progress, TrainResult, train_backbone
from components.train.warm import WarmStart
from components.vision.tasks import plugin_for

EpochCallback = Callable[[dict[str, float]], None]


def model_name_for(task: str, params: TrainParams) -> str:
    """The registered model name a task trains by default."""
    return getattr(params, task).model_name


def profile_for(task: str, params: TrainParams, profile: Profile) -> object:
    """The typed profile of a task (what the run logs as its training config), its `auto`
    settings decided for this machine."""
    chosen = getattr(getattr(params, task), profile)
    return chosen.settled() if isinstance(chosen, BackboneProfile) else chosen


class Trains(Protocol):
    """How one task type trains (see `train_task` for the arguments)."""

    def __call__(self, task: str, root: Path, classes: tuple[str, ...], profile: Profile,
                 chosen: object, work_dir: Path, on_progress: Progress,
                 on_epoch: EpochCallback, weights: Path | None,
                 warm: WarmStart | None) -> TrainResult: ...


@dataclass(frozen=True)
class Recipe:
    """Training's plugin for a task type: how it trains, and whether it can fine-tune a
    registered version of its model (what retraining does) instead of starting over."""

    train: Trains
    warm_starts: bool


def train_task(task: str, root: Path, classes: tuple[str, ...], params: TrainParams,
               profile: Profile, work_dir: Path, on_progress: Progress,
               on_epoch: EpochCallback, weights: Path | None = None,
               warm: WarmStart | None = None) -> TrainResult:
    """Train `task` on the dataset at `root` with the named profile; `work_dir` holds caches
    and checkpoints, so a second call after a crash resumes. `weights`: a detector's .pt to
    start from instead of its YAML; `warm`: a backbone model to fine-tune (warm.py)."""
    recipe = plugin_for(RECIPES, task, "training")
    return recipe.train(task, root, classes, profile, profile_for(task, params, profile),
                        work_dir, on_progress, on_epoch, weights, warm)


def _train_backbone(task: str, root: Path, classes: tuple[str, ...], profile: Profile,
                    chosen: object, work_dir: Path, on_progress: Progress,
                    on_epoch: EpochCallback, weights: Path | None,
                    warm: WarmStart | None) -> TrainResult:
    if weights is not None:
        raise TrainDataError(f"a {task} model starts from ImageNet or a warm start, not from "
                             f"a weights file")
    return train_backbone(root, task, classes, chosen, work_dir, key=f"{task}/{profile}",
                          on_progress=on_progress, on_epoch=on_epoch, warm=warm)


def _train_detector(task: str, root: Path, classes: tuple[str, ...], profile: Profile,
                    chosen: object, work_dir: Path, on_progress: Progress,
                    on_epoch: EpochCallback, weights: Path | None,
                    warm: WarmStart | None) -> TrainResult:
    if warm is not None:
        raise TrainDataError("a detector starts from a .pt file (weights), not a warm start")
    assert isinstance(chosen, DetectProfile)
    return _train_detect(root, classes, chosen, work_dir, on_progress, on_epoch, weights)


def _train_detect(root: Path, classes: tuple[str, ...], profile: DetectProfile, work_dir: Path,
                  on_progress: Progress, on_epoch: EpochCallback,
                  weights: Path | None) -> TrainResult:
    config = DetectorConfig(epochs=profile.epochs, imgsz=profile.imgsz, batch=profile.batch,
                            patience=profile.patience, seed=profile.seed,
                            model=str(weights) if weights else profile.model)

    def epoch_done(record: dict[str, float]) -> None:
        on_progress("train epochs", int(record["epoch"]), profile.epochs)
        on_epoch(record)

    yolo_dir = work_dir / "yolo"
    resumed = yolo_dir.is_dir()
    result = train_detector(root, yolo_dir, config, on_epoch=epoch_done, resume=resumed)
    model_dir = save_detector(work_dir / "model", result.weights, profile.imgsz, classes)
    history = result.history
    best = max(history, key=lambda record: record.get("map50_95", 0.0)) if history else {}
    plots = [training_curves_png(history, work_dir / "plots" / "training_curves.png",
                                 f"detect: {result.epochs_run} epochs"),
             _detection_sheet(root, model_dir, work_dir / "plots" / "sample_predictions.png")]
    manifest = pd.read_csv(root / "manifest.csv")
    example = root / manifest.loc[manifest["split"] == "val", "image_path"].iloc[0]
    return TrainResult(task="detect", metrics={f"val_{k}": v for k, v in result.metrics.items()},
                       history=history, epochs_run=result.epochs_run,
                       best_epoch=int(best.get("epoch", result.epochs_run)),
                       images_per_s=result.images_per_s, seconds={}, model_dir=model_dir,
                       plots=plots, example_image=example,
                       train_items=int((manifest["split"] == "train").sum()))


def _detection_sheet(root: Path, model_dir: Path, path: Path) -> Path:
    """Validation photos with predicted boxes (green) over the labeled ones (red)."""
    predictor = load_predictor(model_dir)
    assert isinstance(predictor, DetectorPredictor)
    manifest = pd.read_csv(root / "manifest.csv")
    rows = manifest[manifest["split"] == "val"].head(SAMPLES)
    images = [cv2.imread(str(root / p)) for p in rows["image_path"]]
    drawn, captions = [], []
    for image_path, image, found in zip(rows["image_path"], images, predictor.predict(images),
                                        strict=True):
        height, width = image.shape[:2]
        labels = root / Path(image_path.replace("images/", "labels/", 1)).with_suffix(".txt")
        truth = np.loadtxt(labels, ndmin=2) if labels.is_file() and labels.stat().st_size else []
        for _, cx, cy, w, h in truth:
            cv2.rectangle(image, (int((cx - w / 2) * width), int((cy - h / 2) * height)),
                          (int((cx + w / 2) * width), int((cy + h / 2) * height)), (0, 0, 255), 1)
        for defect in found["defects"]:
            x0, y0, x1, y1 = (int(v) for v in defect["box"])
            cv2.rectangle(image, (x0, y0), (x1, y1), (0, 200, 0), 1)
        drawn.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        captions.append(f"found {len(found['defects'])} / labeled {len(truth)}")
    correct = [len(found) == len(truth) for found, truth in
               zip([c.split()[1] for c in captions], [c.split()[-1] for c in captions],
                   strict=True)]
    return prediction_sheet(drawn, captions, correct, path)


RECIPES: dict[str, Recipe] = {"grade": Recipe(_train_backbone, warm_starts=True),
                              "classify": Recipe(_train_backbone, warm_starts=True),
                              "detect": Recipe(_train_detector, warm_starts=False)}
