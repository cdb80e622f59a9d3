"""Backbone task models: EfficientNet-Lite0, frozen up to a block, then a task's heads.

    model = build_model(SoftmaxHead(classes=3), frozen_blocks=8)   # ImageNet weights loaded
    outputs = model(images, geometry)                       # images RGB in 0..1, N x 3 x H x W

The first `frozen_blocks` blocks keep their ImageNet weights (edges, textures and small parts
transfer as they are) and run in inference mode; the blocks after them and the heads learn.
Because the frozen part never changes, training can run it once per image view and cache its
activations (`activations`), then train on them (`forward_activations`): on two CPU cores that
is the difference between minutes and an hour. `forward` chains both, which is what export and
serving use. The classifier pools the last block's features; the grader (`severity.py`) reads
maps instead and shares everything else here.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from components.train.backbone import (
    FEATURES,
    EfficientNetLite0,
    build_backbone,
    load_imagenet_weights,
    normalise,
)
from components.train.rubric import CARD_RUBRIC

# Batch-norm momentum of the trained blocks. The ImageNet weights come with TensorFlow's 0.99
# decay (momentum 0.01): over the few hundred steps of a fine-tune, running statistics that
# slow lag far behind the features the blocks learn on cards, and validation scores computed
# with them sat near zero for the first epochs while the training loss fell.
TRAINED_BN_MOMENTUM = 0.1
# Outputs of the grader, in order: the overall grade, then the rubric's subgrades.
ORDINAL_TARGETS = ("grade", *CARD_RUBRIC.aspects)


class SoftmaxHead(nn.Module):
    """One logit per class, for plain classification; geometry is ignored."""

    def __init__(self, classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(FEATURES, classes)

    def forward(self, features: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))

    def geometry_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())


class TaskModel(nn.Module):
    """A backbone frozen up to `frozen_blocks`, then the trained blocks and a task head."""

    def __init__(self, backbone: EfficientNetLite0, head: nn.Module, frozen_blocks: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.frozen_blocks = frozen_blocks
        for module in self.frozen_modules():
            module.requires_grad_(False)
        frozen = {id(m) for module in self.frozen_modules() for m in module.modules()}
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d) and id(module) not in frozen:
                module.momentum = TRAINED_BN_MOMENTUM

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and the first `frozen_blocks` blocks."""
        backbone = self.backbone
        return [backbone._conv_stem, backbone._bn0, *backbone._blocks[:self.frozen_blocks]]

    def train(self, mode: bool = True) -> TaskModel:
        """Train the learning part; the frozen part keeps its batch-norm statistics."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def activations(self, images: torch.Tensor) -> torch.Tensor:
        """Output of the frozen part for RGB images in 0..1: what training caches."""
        return self.backbone.activations(normalise(images), self.frozen_blocks)

    def forward_activations(self, activations: torch.Tensor,
                            geometry: torch.Tensor) -> torch.Tensor:
        features = self.backbone.features_from(activations, self.frozen_blocks)
        return self.head(features, geometry)

    def training_outputs(self, activations: torch.Tensor, geometry: torch.Tensor) -> object:
        """What the task's loss reads in training: the outputs, unless a model has more."""
        return self.forward_activations(activations, geometry)

    def forward(self, images: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        return self.forward_activations(self.activations(images), geometry)


def build_model(head: nn.Module, frozen_blocks: int, imagenet: bool = True) -> TaskModel:
    """A task model on Lite0, with the shipped ImageNet weights unless `imagenet` is False
    (as when a checkpoint's weights are about to be loaded)."""
    backbone = build_backbone()
    if imagenet:
        load_imagenet_weights(backbone)
    return TaskModel(backbone, head, frozen_blocks)
