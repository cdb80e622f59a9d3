"""The training loop of backbone tasks, on cached frozen-part activations: seeded, early-stopped
on the validation score, and checkpointed after every epoch so that a killed run resumes.

    result = fit(model, task, data, profile, checkpoint=work / "checkpoint.pt",
                 on_epoch=print, key="grade/fast/<data version>")

The checkpoint holds everything the next epoch needs (weights, optimizer, schedule, random
states, history, the best weights so far) and is replaced atomically, so a kill at any moment
leaves either the previous epoch's checkpoint or this one's. A checkpoint made for another
`key` (other data, task or profile) is ignored, never mixed in.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.train.distributed import Share
from components.train.model import TaskModel
from components.train.params import BackboneProfile
from components.train.tasks import BackboneTask

_EVAL_BATCH = 128


@dataclass(frozen=True)
class CachedSplit:
    """One split as the trained part sees it: activations per view (views x N x C x H x W,
    half precision to halve the memory), geometry (N x 4) and targets."""

    activations: torch.Tensor
    geometry: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.activations.shape[1]


@dataclass
class FitResult:
    """The best weights, when they were reached, and what every epoch measured."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]
    epochs_run: int
    fit_seconds: float
    images_per_s: float
    resumed_from_epoch: int


def evaluate(model: TaskModel, split: CachedSplit) -> torch.Tensor:
    """Outputs for the first view of a split, in inference mode."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model.forward_activations(split.activations[0, i:i + _EVAL_BATCH].float(),
                                                    split.geometry[i:i + _EVAL_BATCH])
                          for i in range(0, len(split), _EVAL_BATCH)])


def _parameter_groups(model: TaskModel, profile: BackboneProfile) -> list[dict[str, Any]]:
    """Trained backbone blocks, heads on image features, and heads on geometry alone, each
    with its own peak learning rate."""
    geometry = list(model.head.geometry_parameters())
    known = {id(p) for p in geometry}
    on_image = [p for p in model.head.parameters() if id(p) not in known]
    groups = [(list(p for p in model.backbone.parameters() if p.requires_grad), profile.lr),
              (on_image, profile.head_lr), (geometry, profile.geometry_lr)]
    return [{"params": params, "lr": lr} for params, lr in groups if params]


def _save_atomically(state: dict[str, Any], path: Path) -> None:
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _train_epoch(model: TaskModel, task: BackboneTask, train: CachedSplit,
                 optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
                 rng: np.random.Generator, profile: BackboneProfile, share: Share | None) -> float:
    """One pass over the training items, each seen in a randomly drawn cached view; with a
    `share`, this rank's part of each batch (every rank draws the same order and views). With
    `profile.precision` bf16 the forward pass runs in bfloat16 where PyTorch's autocast allows
    (the weights, their updates and the loss stay in float32)."""
    batch_size, bf16 = profile.batch_size, profile.precision == "bf16"
    model.train()
    order = rng.permutation(len(train))
    views = rng.integers(0, train.activations.shape[0], len(train))
    total = 0.0
    for start in range(0, len(order), batch_size):
        batch = torch.from_numpy(order[start:start + batch_size])
        mine = share.of(batch) if share else batch
        optimizer.zero_grad()
        if len(mine):
            activations = train.activations[torch.from_numpy(views[mine.numpy()]), mine].float()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                outputs = model.training_outputs(activations, train.geometry[mine])
            loss = task.loss(outputs, train.targets[mine])
            loss.backward()
            total += loss.item() * len(mine)
        if share:
            share.average_gradients(model)
        optimizer.step()
        schedule.step()
        if share:
            share.average_buffers(model)
    return (share.sum(total) if share else total) / len(order)


def _another_epoch(state: dict[str, Any], profile: BackboneProfile, share: Share | None) -> bool:
    """Whether to train one more epoch: rank 0 decides for every rank."""
    wanted = state["epoch"] < profile.epochs and state["stale"] < profile.patience
    return share.agree(wanted) if share else wanted


def fit(
    model: TaskModel,
    task: BackboneTask,
    train: CachedSplit,
    val: CachedSplit,
    profile: BackboneProfile,
    checkpoint: Path,
    key: str,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    share: Share | None = None,
) -> FitResult:
    """Train until `profile.epochs` or `profile.patience` epochs without a better validation
    score; resume from `checkpoint` when it was written for the same `key`. With a `share`
    (distributed.py), train in step with the other ranks: only rank 0 evaluates, decides,
    checkpoints and reports."""
    torch.manual_seed(profile.seed)
    rng = np.random.default_rng(profile.seed)
    groups = _parameter_groups(model, profile)
    optimizer = torch.optim.AdamW(groups, weight_decay=profile.weight_decay)
    steps_per_epoch = -(-len(train) // profile.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group["lr"] for group in groups],
        total_steps=profile.epochs * steps_per_epoch)
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_score": -np.inf, "best_epoch": 0,
                             "stale": 0, "best_state": copy.deepcopy(model.state_dict())}
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if saved["key"] == key:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
            torch.set_rng_state(saved["torch_rng"])
            rng.bit_generator.state = saved["numpy_rng"]
            state = saved["loop"]
    resumed_from = state["epoch"]
    if share:
        share.start_alike(model)
    started, trained_images = time.perf_counter(), 0
    while _another_epoch(state, profile, share):
        epoch_started = time.perf_counter()
        train_loss = _train_epoch(model, task, train, optimizer, schedule, rng, profile, share)
        trained_images += len(train)
        state["epoch"] += 1
        if share and not share.leader:
            continue
        outputs = evaluate(model, val)
        scores = task.score(outputs, val.targets)
        record = {"epoch": state["epoch"], "train_loss": train_loss,
                  "val_loss": task.loss(outputs, val.targets).item(),
                  **{f"val_{name}": value for name, value in scores.items() if name != "n"},
                  "epoch_seconds": time.perf_counter() - epoch_started}
        state["history"].append(record)
        if scores[task.primary] > state["best_score"]:
            state.update(best_score=scores[task.primary], best_epoch=state["epoch"], stale=0,
                         best_state=copy.deepcopy(model.state_dict()))
        else:
            state["stale"] += 1
        _save_atomically({"key": key, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                          "torch_rng": torch.get_rng_state(),
                          "numpy_rng": rng.bit_generator.state, "loop": state}, checkpoint)
        if on_epoch is not None:
            on_epoch(record)
    seconds = time.perf_counter() - started
    return FitResult(best_state=state["best_state"], best_epoch=state["best_epoch"],
                     best_score=float(state["best_score"]), history=state["history"],
                     epochs_run=state["epoch"], fit_seconds=seconds,
                     images_per_s=trained_images / seconds if trained_images else 0.0,
                     resumed_from_epoch=resumed_from)
