"""Train a backbone task (grade or classify) on one dataset folder, end to end.

    result = train_backbone(dataset_root, "grade", classes=(), profile=profile,
                            work_dir=cache / "card-grader" / key, key=key)

Steps: read the manifest and its `train` and `val` splits (validation is by item: the split
was fixed per item at ingest, so no item is ever in both), prepare every image once (rectified
card + geometry, cached), draw `views - 1` augmented copies of each training image, run the
frozen backbone part once per view (cached), fit the rest with early stopping (checkpointed),
then write the best model, its plots and sample predictions. `test` and `calibration` items are
never read here: they belong to evaluation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.train.augment import augment_card
from components.train.distributed import fit_on_processes
from components.train.frozen import FrozenPart
from components.train.loop import CachedSplit, FitResult, evaluate, fit
from components.train.metrics import confusion_matrix_png, prediction_sheet, training_curves_png
from components.train.model import TaskModel
from components.train.params import BackboneProfile
from components.train.spec import ModelSpec, load_model, save_model
from components.train.tasks import BackboneTask, Canvases, TrainDataError, backbone_task
from components.train.warm import WarmStart, replay_rows
from components.vision.prepare import prepare_images

SAMPLES = 12
Progress = Callable[[str, int, int], None]  # stage, done, total


@dataclass
class TrainResult:
    """What a training produced, for any task: final validation metrics, per-epoch history,
    the model folder, plots and timings."""

    task: str
    metrics: dict[str, float]
    history: list[dict[str, float]]
    epochs_run: int
    best_epoch: int
    images_per_s: float
    seconds: dict[str, float]
    model_dir: Path
    plots: list[Path] = field(default_factory=list)
    example_image: Path | None = None
    resumed_from_epoch: int = 0
    train_items: int = 0  # the items trained on (new and replayed ones in a warm start)


def read_splits(root: Path, warm: WarmStart | None = None, replay: float = 1.0,
                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and val rows of a dataset's manifest; a clear error when either is empty.
    With `warm`, the train rows are what the starting model has not seen plus `replay` times
    as many it has (warm.py)."""
    manifest_path = root / "manifest.csv"
    if not manifest_path.is_file():
        raise TrainDataError(f"{root} has no manifest.csv: ingest a batch first")
    manifest = pd.read_csv(manifest_path, dtype={"item_id": str})
    splits = {name: manifest[manifest["split"] == name].reset_index(drop=True)
              for name in ("train", "val")}
    if warm is not None:
        splits["train"] = replay_rows(manifest, warm.seen_items, replay, seed)
    for name, rows in splits.items():
        if rows.empty:
            raise TrainDataError(f"{manifest_path} has no {name!r} items "
                                 f"({len(manifest)} items in all)")
    return splits["train"], splits["val"]


def _cached_array(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load arrays saved at `path`, or build and save them (atomically) first."""
    if path.is_file():
        with np.load(path) as saved:
            return dict(saved)
    arrays = build()
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **arrays)
    os.replace(partial, path)
    return arrays


def _views(pixels: np.ndarray, views: int, seed: int) -> np.ndarray:
    """The plain images followed by `views - 1` augmented copies: views x N x H x W x 3."""
    rng = np.random.default_rng(seed)
    copies = [pixels] + [np.stack([augment_card(p, rng) for p in pixels])
                         for _ in range(views - 1)]
    return np.stack(copies)


def train_backbone(
    root: Path,
    task_name: str,
    classes: tuple[str, ...],
    profile: BackboneProfile,
    work_dir: Path,
    key: str,
    on_progress: Progress | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    workers: int | None = None,
    warm: WarmStart | None = None,
) -> TrainResult:
    """Train `task_name` on the dataset at `root`; caches and the checkpoint live in `work_dir`,
    so running again with the same `key` resumes instead of starting over. With `warm`, fine-tune
    that model for `profile.warm_epochs` at `warm_lr_scale` of the learning rates, on new items
    and a replay of older ones (warm.py); its caches need a `work_dir` of their own."""
    progress = on_progress or (lambda stage, done, total: None)
    task = backbone_task(task_name, classes)
    train_rows, val_rows = read_splits(root, warm, profile.replay, profile.seed)
    for rows in (train_rows, val_rows):  # labels the task cannot train on fail before any work
        task.targets(rows)
    spec = ModelSpec(task=task.name, classes=tuple(classes), size=profile.size,
                     rectify=task.rectify, frozen_blocks=profile.frozen_blocks,
                     dropout=profile.dropout)
    work_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    paths = [root / p for p in pd.concat([train_rows, val_rows])["image_path"]]
    done = 0

    def prepared_some(count: int) -> None:
        nonlocal done
        done += count
        progress("prepare images", done, len(paths))

    width, height = profile.size
    prepared = _cached_array(
        work_dir / f"images-{width}x{height}-{'card' if task.rectify else 'photo'}.npz",
        lambda: prepare_images(paths, task.rectify, profile.size, workers,
                               prepared_some)._asdict())
    pixels, geometry = prepared["pixels"], torch.from_numpy(prepared["geometry"])
    n_train = len(train_rows)
    # With each photo's canvas known, labeled regions become targets too.
    train_targets = task.targets(train_rows, Canvases(root, prepared["to_photo"][:n_train],
                                                      profile.size))
    val_targets = task.targets(val_rows, Canvases(root, prepared["to_photo"][n_train:],
                                                  profile.size))
    timings["prepare_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    torch.manual_seed(profile.seed)
    model = spec.build(imagenet=True)
    if warm is not None:
        load_start_weights(model, spec, warm.model_dir)
        scale = profile.warm_lr_scale
        profile = profile.model_copy(update={
            "epochs": profile.warm_epochs, "lr": profile.lr * scale,
            "head_lr": profile.head_lr * scale, "geometry_lr": profile.geometry_lr * scale})
        key = f"{key}/warm-{warm.seen_items}"
    progress("cache frozen features", 0, profile.views + 1)

    def cache_activations() -> dict[str, np.ndarray]:
        frozen = FrozenPart(model, height, width)
        train_views = _views(pixels[:n_train], profile.views, profile.seed)
        cached = []
        for index, view in enumerate(train_views):
            cached.append(frozen(view).numpy())
            progress("cache frozen features", index + 1, profile.views + 1)
        return {"train": np.stack(cached), "val": frozen(pixels[n_train:]).numpy()}

    activations = _cached_array(
        work_dir / f"activations-{profile.frozen_blocks}-{profile.views}.npz", cache_activations)
    train = CachedSplit(torch.from_numpy(activations["train"]), geometry[:n_train],
                        train_targets)
    val = CachedSplit(torch.from_numpy(activations["val"])[None], geometry[n_train:],
                      val_targets)
    timings["cache_seconds"] = time.perf_counter() - started

    def epoch_done(record: dict[str, float]) -> None:
        progress("train epochs", int(record["epoch"]), profile.epochs)
        if on_epoch is not None:
            on_epoch(record)

    trainer = fit_on_processes if profile.processes > 1 else fit
    fitted = trainer(model, task, train, val, profile, work_dir / "checkpoint.pt", key,
                     epoch_done)
    timings["fit_seconds"] = fitted.fit_seconds
    model.load_state_dict(fitted.best_state)
    outputs = evaluate(model, val)
    metrics = {f"val_{name}": value for name, value in task.score(outputs, val.targets).items()}
    model_dir = save_model(work_dir / "model", model, spec)
    plots = _plots(task, outputs, val, pixels[n_train:], fitted, work_dir / "plots")
    example = root / val_rows["image_path"].iloc[0]
    return TrainResult(task=task.name, metrics=metrics, history=fitted.history,
                       epochs_run=fitted.epochs_run, best_epoch=fitted.best_epoch,
                       images_per_s=fitted.images_per_s, seconds=timings, model_dir=model_dir,
                       plots=plots, example_image=example,
                       resumed_from_epoch=fitted.resumed_from_epoch, train_items=n_train)


def load_start_weights(model: TaskModel, spec: ModelSpec, folder: Path) -> None:
    """Load the weights saved in `folder` into `model`, which must be built the same way."""
    start, saved = load_model(folder)
    differs = [name for name in ("task", "classes", "size", "frozen_blocks")
               if getattr(saved, name) != getattr(spec, name)]
    if differs:
        raise TrainDataError(f"cannot warm-start from {folder}: its " + ", ".join(
            f"{name} {getattr(saved, name)!r} is not {getattr(spec, name)!r}" for name in differs))
    model.load_state_dict(start.state_dict())


def _plots(task: BackboneTask, outputs: torch.Tensor, val: CachedSplit, val_pixels: np.ndarray,
           fitted: FitResult, folder: Path) -> list[Path]:
    """Training curves, the validation confusion matrix and a sheet of sample predictions."""
    expected, predicted, labels = task.confusion(outputs, val.targets)
    shown = np.linspace(0, len(val) - 1, min(SAMPLES, len(val))).astype(int)
    captions = task.captions(outputs[shown], val.targets[shown])
    return [
        training_curves_png(fitted.history, folder / "training_curves.png",
                            f"{task.name}: best epoch {fitted.best_epoch}"),
        confusion_matrix_png(expected, predicted, labels, folder / "val_confusion.png",
                             f"{task.name}: validation, {len(val)} items",
                             task.axis_name),
        prediction_sheet([val_pixels[i] for i in shown], [c for c, _ in captions],
                         [ok for _, ok in captions], folder / "sample_predictions.png"),
    ]
