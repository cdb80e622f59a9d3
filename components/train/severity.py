"""The card grader: a map of defect severity per aspect at native resolution, the worst of each
aspect measured from it, and the rubric applied to those measurements.

    model = build_severity_grader(frozen_blocks=11)      # ImageNet weights loaded
    logits = model(images, geometry)                     # N x 5 x 9 cumulative logits
    outputs = model.training_outputs(model.activations(images), geometry)
    outputs.maps                                         # N x 6 x H/8 x W/8 severities 0..1

Why this shape (measured on 2000 factory cards, issue 15): a global mean of features gives one
worn corner 1/48 of the vector and cannot express "the weakest subgrade caps the grade", and at
192 x 256 a scratch is under a pixel wide. Here Lite0's frozen blocks see the rectified card at
about 4.5 px/mm; a light decoder joins their stride-16 context with stride-8 detail (U-Net
style) into one severity map per defect class (corner wear, edge whitening, scratch, crease,
stain, print line): a defect segmentation whose values are severities. The maximum over the
maps of an aspect's classes (surface: scratch, crease, stain, print line) is the aspect's
worst defect. The centering subgrade comes from the classical measurement, the others
from those severities, both through the rubric's own table (`rubric.py`), each with a learned
uncertainty; the overall grade's probabilities are the rubric applied to every likely
combination of subgrades, with the experts' own spread around each combination's score
(learned thresholds and a per-card width), so they are calibrated where a measurement sits on a
step of the table as well as where experts disagree.

The frozen part's output is the stride-8 activations folded into channels (space to depth) and
stacked with the stride-16 ones: one tensor, so training caches it like any frozen part.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from components.train.backbone import (
    STAGES,
    EfficientNetLite0,
    build_backbone,
    load_imagenet_weights,
    normalise,
)
from components.train.model import TaskModel
from components.train.rubric import (
    CARD_RUBRIC,
    GRADES,
    RubricTable,
    grade_logits,
    rubric_metadata,
    rubric_score,
    subgrade_combinations,
    subgrade_logits,
)

# Blocks of Lite0 up to the end of stage 3 (stride 8), where the decoder's detail comes from.
SKIP_BLOCKS = 5
# Stride-16 blocks end stages 4 (8 blocks) and 5 (11 blocks); deeper ones run at stride 32.
STRIDE_16_BLOCKS = (8, 9, 10, 11)
DECODER_WIDTH = 64
MAP_STRIDE = 8  # pixels of the rectified card per cell of a severity map
# Starting uncertainties: a worst side share to half a percentage point, a severity to 0.03,
# the overall grade to a third of a grade (the experts' own spread).
_SHARE_SCALE, _SEVERITY_SCALE, _GRADE_SCALE = 0.5, 0.03, 0.3
_PRISTINE_LOGIT = -4.0


class GraderOutputs(NamedTuple):
    """The grader's logits and the measurements behind them: each aspect's worst severity
    (what training compares with the manifest) and the per-class maps it is the maximum of
    (what the service reports as the defects found)."""

    logits: torch.Tensor  # N x 5 x 9
    worst: torch.Tensor  # N x aspects
    maps: torch.Tensor  # N x defect classes x H/8 x W/8


def _channels_after(blocks: int) -> int:
    """Output channels of Lite0 after its first `blocks` blocks."""
    seen = 0
    for *_, channels, repeats in STAGES:
        seen += repeats
        if blocks <= seen:
            return channels
    raise ValueError(f"Lite0 has {seen} blocks, not {blocks}")


def _separable(channels: int, kernel: int = 3) -> nn.Sequential:
    """Depthwise k x k then pointwise 1 x 1, batch norm, ReLU6: a MobileNet layer."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU6())


def _pointwise(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, bias=False),
                         nn.BatchNorm2d(channels_out), nn.ReLU6())


class SeverityHeads(nn.Module):
    """Decoder, severity maps, and the rubric on their maxima (see the module docstring)."""

    def __init__(self, frozen_blocks: int, dropout: float = 0.2,
                 table: RubricTable = CARD_RUBRIC, width: int = DECODER_WIDTH) -> None:
        super().__init__()
        if frozen_blocks not in STRIDE_16_BLOCKS:
            raise ValueError(f"the severity grader reads stride-16 features: frozen_blocks must "
                             f"be one of {STRIDE_16_BLOCKS}, got {frozen_blocks}")
        self.table = table
        self.skip_channels = 4 * _channels_after(SKIP_BLOCKS)
        # No dilation: PyTorch's CPU backward of a dilated depthwise convolution took 4.9 s
        # per batch of 32 against 0.07 s undilated (measured), so depth gives the reach.
        self.context = nn.Sequential(_pointwise(_channels_after(frozen_blocks), width),
                                     *(_separable(width, 5) for _ in range(3)))
        self.detail = nn.Sequential(_pointwise(self.skip_channels // 4 + width, width),
                                    _separable(width), _separable(width))
        self.dropout = nn.Dropout2d(dropout)
        self.maps = nn.Conv2d(width, len(table.defect_classes), 1)
        self.aspect_classes = table.aspect_classes()
        # Start from a pristine card (severity 0.02 everywhere): a defect is what is learned,
        # and maxima of maps starting at 0.5 graded every card a 5 for the first epochs.
        nn.init.constant_(self.maps.bias, _PRISTINE_LOGIT)
        self.log_share_scale = nn.Parameter(torch.tensor(math.log(_SHARE_SCALE)))
        self.log_severity_scales = nn.Parameter(
            torch.full((len(table.severity_aspects),), math.log(_SEVERITY_SCALE)))
        # What the maps' maximum reads above an aspect's true worst severity: the maximum of
        # many noisy cells lies above the truth (measured: corners +0.04, a subgrade lost on a
        # third of cards), so the subgrades learn to take it off.
        self.severity_offsets = nn.Parameter(torch.zeros(len(table.severity_aspects)))
        # Grade thresholds start at the rubric's rounding (k + 0.5); gaps stay positive.
        self.first_threshold = nn.Parameter(torch.tensor(1.5))
        self.raw_gaps = nn.Parameter(torch.full((GRADES - 2,), math.log(math.e - 1)))
        self.log_grade_scale = nn.Parameter(torch.tensor(math.log(_GRADE_SCALE)))
        self.uncertainty = nn.Linear(width, 1)
        nn.init.zeros_(self.uncertainty.weight)
        nn.init.zeros_(self.uncertainty.bias)
        self.register_buffer("combination_scores",
                             rubric_score(table, subgrade_combinations(table)), persistent=False)

    def decode(self, activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Severity maps N x defect classes x H/8 x W/8 in 0..1, and the pooled context
        N x width."""
        detail = F.pixel_shuffle(activations[:, :self.skip_channels], 2)
        context = self.context(activations[:, self.skip_channels:])
        pooled = context.mean(dim=(2, 3))
        joined = torch.cat([detail, F.interpolate(context, scale_factor=2.0, mode="bilinear",
                                                  align_corners=False)], dim=1)
        maps = torch.sigmoid(self.maps(self.dropout(self.detail(joined))))
        return maps, pooled

    def forward(self, activations: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """Cumulative logits N x (1 + aspects) x 9: the overall grade, then each subgrade."""
        return self.outputs(activations, geometry).logits

    def outputs(self, activations: torch.Tensor, geometry: torch.Tensor) -> GraderOutputs:
        """The logits and the severities they were graded from; the rubric part in float32
        even when training runs the decoder in bfloat16 (its 10^4 combinations would round)."""
        maps, pooled = self.decode(activations)
        with torch.autocast("cpu", enabled=False):
            return self._graded(maps.float(), pooled.float(), geometry)

    def _graded(self, maps: torch.Tensor, pooled: torch.Tensor,
                geometry: torch.Tensor) -> GraderOutputs:
        per_class = maps.amax(dim=(2, 3))
        worst = torch.stack([per_class[:, classes].amax(dim=1) for classes in self.aspect_classes],
                            dim=1)
        worst_share = 50.0 + 10.0 * geometry[:, 3]  # see prepare.geometry_features
        subgrades = subgrade_logits(self.table, worst_share, worst - self.severity_offsets,
                                    self.log_share_scale.exp(), self.log_severity_scales.exp())
        thresholds = self.first_threshold + torch.cat(
            [torch.zeros(1), torch.cumsum(F.softplus(self.raw_gaps), dim=0)])
        scale = torch.exp(self.log_grade_scale + self.uncertainty(pooled))
        grade = grade_logits(subgrades, self.combination_scores, thresholds, scale)
        return GraderOutputs(torch.cat([grade[:, None], subgrades], dim=1), worst, maps)

    def geometry_parameters(self) -> Iterator[nn.Parameter]:
        """The measured aspect's uncertainty: one number, learned at the geometry rate."""
        return iter([self.log_share_scale])


class SeverityGrader(TaskModel):
    """Lite0 frozen to a stride-16 block (its later blocks dropped: never run), then
    `SeverityHeads`. The frozen part hands over stride-8 and stride-16 activations at once."""

    head: SeverityHeads

    def __init__(self, backbone: EfficientNetLite0, head: SeverityHeads,
                 frozen_blocks: int) -> None:
        backbone._blocks = backbone._blocks[:frozen_blocks]
        del backbone._conv_head, backbone._bn1, backbone._fc
        super().__init__(backbone, head, frozen_blocks)

    def activations(self, images: torch.Tensor) -> torch.Tensor:
        backbone = self.backbone
        detail = backbone.activations(normalise(images), SKIP_BLOCKS)
        context = backbone.run_blocks(detail, SKIP_BLOCKS, self.frozen_blocks)
        return torch.cat([F.pixel_unshuffle(detail, 2), context], dim=1)

    def forward_activations(self, activations: torch.Tensor,
                            geometry: torch.Tensor) -> torch.Tensor:
        return self.head(activations, geometry)

    def training_outputs(self, activations: torch.Tensor,
                         geometry: torch.Tensor) -> GraderOutputs:
        """Logits, worst severities and severity maps in one pass."""
        return self.head.outputs(activations, geometry)


def map_metadata(table: RubricTable) -> dict[str, object]:
    """What a server needs to read the exported severity maps without PyTorch: their classes
    in channel order, the aspects, the severity that is still pristine, the cell size and how
    subgrades combine."""
    return {"severity_aspects": list(table.severity_aspects),
            "defect_classes": list(table.defect_classes),
            "pristine_severity": table.pristine_severity, "map_stride": MAP_STRIDE,
            "rubric": rubric_metadata(table)}


def build_severity_grader(frozen_blocks: int, dropout: float = 0.2,
                          imagenet: bool = True) -> SeverityGrader:
    """The grader on Lite0, with the shipped ImageNet weights unless `imagenet` is False (as
    when a checkpoint's weights are about to be loaded)."""
    head = SeverityHeads(frozen_blocks, dropout)
    backbone = build_backbone()
    if imagenet:
        load_imagenet_weights(backbone)
    return SeverityGrader(backbone, head, frozen_blocks)
