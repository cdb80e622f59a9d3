"""A trained backbone model on disk: `model.pt` (weights only) beside `model.json` (what it
needs to be rebuilt and fed). Training writes it, tracking logs it, serving and export load it.

    save_model(folder, model, spec)
    model, spec = load_model(folder)      # eval mode, ready to predict
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from components.train.model import TaskModel
from components.train.tasks import BackboneTask, backbone_task

WEIGHTS, SPEC = "model.pt", "model.json"


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild and feed a model: its task, classes, input size and frozen depth."""

    task: str
    classes: tuple[str, ...]
    size: tuple[int, int]  # width, height
    rectify: bool
    frozen_blocks: int
    dropout: float

    def backbone_task(self) -> BackboneTask:
        return backbone_task(self.task, self.classes)

    def build(self, imagenet: bool) -> TaskModel:
        return self.backbone_task().build(self.dropout, self.frozen_blocks, imagenet)


def save_model(folder: Path, model: TaskModel, spec: ModelSpec) -> Path:
    """Write weights and spec into `folder` (created); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / WEIGHTS)
    (folder / SPEC).write_text(json.dumps(asdict(spec), indent=2))
    return folder


def load_model(folder: Path) -> tuple[TaskModel, ModelSpec]:
    """The model saved in `folder`, in inference mode, and its spec."""
    raw = json.loads((folder / SPEC).read_text())
    spec = ModelSpec(**{**raw, "classes": tuple(raw["classes"]), "size": tuple(raw["size"])})
    model = spec.build(imagenet=False)
    weights = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:  # weights of another layout of the same task's model
        raise ValueError(f"the weights in {folder} were saved by another layout of the "
                         f"{spec.task} model than this Gradeline builds (an older release?): "
                         f"train a new version instead of loading this one") from error
    return model.eval(), spec
