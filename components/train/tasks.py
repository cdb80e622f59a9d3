"""What differs between backbone tasks, behind one interface: targets from the manifest, the
head, the loss, validation scores and how a prediction reads. The training loop, caching,
checkpoints and tracking are shared and never branch on the task.

    task = backbone_task("grade", classes=())
    targets = task.targets(manifest)
    loss = task.loss(model(images, geometry), targets[batch])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from components.train.model import ORDINAL_TARGETS, SoftmaxHead, TaskModel, build_model
from components.train.ordinal import grade_probabilities, ordinal_loss, predicted_grade
from components.train.regions import IGNORED, severity_targets
from components.train.rubric import CARD_RUBRIC, GRADES
from components.train.severity import MAP_STRIDE, GraderOutputs, build_severity_grader
from components.vision.agreement import classification_metrics, grading_metrics
from components.vision.centering import CenteringMeasurement
from components.vision.labels import label_path
from components.vision.tasks import plugin_for

UNKNOWN = 0  # an ordinal target a manifest does not give; its loss and score skip it
GRADE_LOSS_WEIGHT = 2.0  # the overall grade is what clients buy; subgrades help it learn
# A severity 0.05 off costs about what one wrong subgrade step does.
SEVERITY_LOSS_WEIGHT = 10.0
# The severity maps against the labeled defect regions, cell by cell (regions.py).
MAP_LOSS_WEIGHT = 5.0
# Each class's defect mass per card against the labeled one (`_map_loss`), in square-root cells.
MASS_LOSS_WEIGHT = 1.0
SEVERITY_COLUMNS = tuple(f"{aspect}_severity" for aspect in CARD_RUBRIC.severity_aspects)
_SCALARS = len(ORDINAL_TARGETS) + len(SEVERITY_COLUMNS)  # grade targets before the maps


@dataclass(frozen=True)
class Canvases:
    """Where a split's labeled regions land on the model's input: the dataset folder (its
    label files), each photo's canvas-to-photo homography (N x 3 x 3) and the canvas size."""

    root: Path
    to_photo: np.ndarray
    size: tuple[int, int]


class TrainDataError(ValueError):
    """The dataset cannot train this task: a missing column, an empty split, one class only."""


def _grades(targets: torch.Tensor) -> np.ndarray:
    """The grade and subgrade columns of grade targets, as integers."""
    return targets[:, :len(ORDINAL_TARGETS)].long().numpy()


@dataclass(frozen=True)
class GradeTask:
    """Ordinal grades 1..10 and the four subgrades (any subgrade column may be missing)."""

    name: str = "grade"
    rectify: bool = True
    primary: str = "qwk"
    axis_name: str = "grade"
    classes: tuple[str, ...] = field(default=())

    def build(self, dropout: float, frozen_blocks: int, imagenet: bool) -> TaskModel:
        """The severity grader (severity.py): severity maps and the rubric on their maxima."""
        return build_severity_grader(frozen_blocks, dropout, imagenet)

    def targets(self, manifest: pd.DataFrame, canvases: Canvases | None = None) -> torch.Tensor:
        """N x (5 + aspects [+ defect classes x H/8 x W/8]) floats: the grade and subgrades (UNKNOWN
        where a column is missing), each aspect's worst defect severity where the manifest
        measures it (`<aspect>_severity`, as the card factory writes; NaN where it does not),
        and, given `canvases` and a dataset that kept its defect masks (a `severities`
        column), the severity maps' targets, flattened (regions.py)."""
        if "grade" not in manifest.columns:
            raise TrainDataError("the manifest has no 'grade' column")
        columns = [manifest[t] if t in manifest.columns else pd.Series(UNKNOWN, manifest.index)
                   for t in ORDINAL_TARGETS]
        grades = pd.concat(columns, axis=1).fillna(UNKNOWN).to_numpy(dtype=np.float32)
        severities = np.stack([pd.to_numeric(manifest[c], errors="coerce").to_numpy(np.float32)
                               if c in manifest.columns else np.full(len(manifest), np.nan,
                                                                     np.float32)
                               for c in SEVERITY_COLUMNS], axis=1)
        columns = [grades, severities]
        if canvases is not None and "severities" in manifest.columns:
            columns.append(self.map_targets(manifest, canvases).reshape(len(manifest), -1))
        return torch.from_numpy(np.concatenate(columns, axis=1))

    def map_targets(self, manifest: pd.DataFrame, canvases: Canvases) -> np.ndarray:
        """N x defect classes x H/8 x W/8: each item's labeled regions on its canvas; an item
        without a label file is all IGNORED (nothing known about where its defects lie)."""
        width, height = canvases.size
        maps = []
        for (_, row), to_photo in zip(manifest.iterrows(), canvases.to_photo, strict=True):
            path = label_path(canvases.root, str(row["image_path"]))
            if not path.is_file():
                maps.append(np.full((len(CARD_RUBRIC.defect_classes), height // MAP_STRIDE,
                                     width // MAP_STRIDE), IGNORED, np.float32))
                continue
            lines = path.read_text().splitlines()
            severities = [float(v) for v in str(row["severities"]).split()] if lines else []
            maps.append(severity_targets(lines, severities, self.classes, CARD_RUBRIC,
                                         (float(row["width"]), float(row["height"])), to_photo,
                                         canvases.size, MAP_STRIDE))
        return np.stack(maps)

    def loss(self, outputs: torch.Tensor | GraderOutputs, targets: torch.Tensor) -> torch.Tensor:
        """Ordinal loss on the grade (weighted) and the subgrades; in training, also the
        distance of each aspect's measured worst severity from the manifest's, if known, and
        of the severity maps from the labeled regions, where the targets carry them."""
        logits = outputs.logits if isinstance(outputs, GraderOutputs) else outputs
        grades = targets[:, :len(ORDINAL_TARGETS)].long()
        losses = [ordinal_loss(logits[:, i], grades[:, i]) for i in range(len(ORDINAL_TARGETS))]
        loss = GRADE_LOSS_WEIGHT * losses[0] + sum(losses[1:])
        if isinstance(outputs, GraderOutputs):
            severities = targets[:, len(ORDINAL_TARGETS):_SCALARS]
            known = ~torch.isnan(severities)
            if known.any():
                distance = (outputs.worst - severities)[known].abs().mean()
                loss = loss + SEVERITY_LOSS_WEIGHT * distance
            if targets.shape[1] > _SCALARS:
                loss = loss + MAP_LOSS_WEIGHT * _map_loss(
                    outputs.maps, targets[:, _SCALARS:].reshape(outputs.maps.shape))
        return loss

    def predictions(self, outputs: torch.Tensor) -> np.ndarray:
        """Predicted grade and subgrades, N x 5."""
        return torch.stack([predicted_grade(outputs[:, i]) for i in range(len(ORDINAL_TARGETS))],
                           dim=1).numpy()

    def answers(self, outputs: torch.Tensor,
                centerings: Sequence[CenteringMeasurement | None]) -> list[dict[str, object]]:
        """What a prediction says of each photo: the grade and subgrades, the grade's
        probabilities and the measured centering (None where no card was found)."""
        probabilities = grade_probabilities(outputs[:, 0]).numpy().round(4).tolist()
        return [{**dict(zip(ORDINAL_TARGETS, grades, strict=True)),
                 "probabilities": item_probabilities,
                 "centering_lr": round(measured.centering_lr, 2) if measured else None,
                 "centering_tb": round(measured.centering_tb, 2) if measured else None}
                for grades, item_probabilities, measured
                in zip(self.predictions(outputs).tolist(), probabilities, centerings,
                       strict=True)]

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """QWK, MAE, exact and within-one of the grade; QWK of each subgrade given."""
        predicted, expected = self.predictions(outputs), _grades(targets)
        scores = grading_metrics(expected[:, 0], predicted[:, 0], range(1, GRADES + 1))
        for i, name in enumerate(ORDINAL_TARGETS[1:], start=1):
            known = expected[:, i] != UNKNOWN
            if known.any():
                scores[f"qwk_{name}"] = grading_metrics(expected[known, i], predicted[known, i],
                                                        range(1, GRADES + 1))["qwk"]
        return scores

    def captions(self, outputs: torch.Tensor, targets: torch.Tensor) -> list[tuple[str, bool]]:
        predicted, expected = self.predictions(outputs)[:, 0], _grades(targets)[:, 0]
        confidence = grade_probabilities(outputs[:, 0]).max(dim=1).values.numpy()
        return [(f"pred {p} ({c:.0%}) / expert {e}", bool(p == e))
                for p, c, e in zip(predicted, confidence, expected, strict=True)]

    def confusion(self, outputs: torch.Tensor,
                  targets: torch.Tensor) -> tuple[list[object], list[object], list[object]]:
        """Expected and predicted overall grades, and the axis labels of their matrix."""
        return (_grades(targets)[:, 0].tolist(), self.predictions(outputs)[:, 0].tolist(),
                list(range(1, GRADES + 1)))


def _map_loss(maps: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean severity read on clean cells plus, per defect class labeled in the batch, the
    mean binary cross-entropy against the severity on the cells its defects cover: clean paper
    and every class count alike, however few cells they cover (a stain is a few cells, four
    worn corners many). Cross-entropy, not the distance: a class's sigmoid pushed far below
    its defects by the clean cells has no gradient left for a distance (measured: the edge map
    of one seed never learnt, edges QWK 0.39), while cross-entropy pulls it back in
    proportion to how far it reads below.

    Plus, per labeled item and class, how far the map's defect mass (`defect_mass`) lies from
    the labeled one: a mean over every clean cell hardly charges a defect smeared over the
    cells around it. Measured on the bench grader's test cards (evaluation's segmentation
    table): surface maps read 0.25 or worse on 15-30% of the cards without their class, and
    scratches had an IoU of 0.04; with the mass, 0-2% and 0.39."""
    covered, clean = targets > 0, targets == 0
    loss = maps[clean].mean() if clean.any() else maps.sum() * 0
    cells = covered.sum(dim=(0, 2, 3))
    labeled = cells > 0
    if labeled.any():
        entropy = F.binary_cross_entropy(maps, targets.clamp(0, 1), reduction="none")
        per_class = (entropy * covered).sum(dim=(0, 2, 3))
        loss = loss + (per_class[labeled] / cells[labeled]).mean()
    known = (targets >= 0).flatten(2).any(dim=2).any(dim=1)
    if known.any():
        mass_error = (defect_mass(maps) + 1).sqrt() - (defect_mass(targets.clamp(min=0)) + 1).sqrt()
        loss = loss + MASS_LOSS_WEIGHT * mass_error[known].abs().mean()
    return loss


def defect_mass(maps: torch.Tensor) -> torch.Tensor:
    """N x classes: each class's severity above pristine summed over an item's cells, a
    defect's extent and severity in one number."""
    return F.relu(maps - CARD_RUBRIC.pristine_severity).sum(dim=(2, 3))


@dataclass(frozen=True)
class ClassifyTask:
    """One label per image from a fixed set of classes (the ImageFolder kind of task)."""

    classes: tuple[str, ...]
    name: str = "classify"
    rectify: bool = False
    primary: str = "accuracy"
    axis_name: str = "class"

    def build(self, dropout: float, frozen_blocks: int, imagenet: bool) -> TaskModel:
        """Lite0's pooled features and one softmax layer."""
        return build_model(SoftmaxHead(len(self.classes), dropout), frozen_blocks, imagenet)

    def targets(self, manifest: pd.DataFrame, canvases: Canvases | None = None) -> torch.Tensor:
        """N class indices of the `label` column (`canvases` unused: a class has no region)."""
        if "label" not in manifest.columns:
            raise TrainDataError("the manifest has no 'label' column")
        unknown = sorted(set(manifest["label"].astype(str)) - set(self.classes))
        if unknown:
            raise TrainDataError(f"labels {unknown} are not among the classes {self.classes}")
        if len(self.classes) < 2:
            raise TrainDataError(f"classification needs two classes or more, got {self.classes}")
        index = {name: i for i, name in enumerate(self.classes)}
        return torch.tensor([index[label] for label in manifest["label"].astype(str)])

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def answers(self, outputs: torch.Tensor,
                centerings: Sequence[CenteringMeasurement | None]) -> list[dict[str, object]]:
        """The likeliest label of each photo with every class's probability (a class task
        measures no centering)."""
        return [{"label": self.classes[int(row.argmax())],
                 "probabilities": dict(zip(self.classes, row.round(4).tolist(), strict=True))}
                for row in outputs.softmax(dim=1).numpy()]

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        predicted = outputs.argmax(dim=1).numpy()
        return classification_metrics([self.classes[i] for i in targets.numpy()],
                                      [self.classes[i] for i in predicted], self.classes)

    def captions(self, outputs: torch.Tensor, targets: torch.Tensor) -> list[tuple[str, bool]]:
        probabilities = outputs.softmax(dim=1)
        confidence, predicted = probabilities.max(dim=1)
        return [(f"{self.classes[p]} ({c:.0%}) / {self.classes[t]}", bool(p == t))
                for p, c, t in zip(predicted.tolist(), confidence.tolist(), targets.tolist(),
                                   strict=True)]

    def confusion(self, outputs: torch.Tensor,
                  targets: torch.Tensor) -> tuple[list[object], list[object], list[object]]:
        return ([self.classes[i] for i in targets.tolist()],
                [self.classes[i] for i in outputs.argmax(dim=1).tolist()], list(self.classes))


BackboneTask = GradeTask | ClassifyTask


# The task plugins of the Lite0 backbone, each made for a dataset's classes.
BACKBONE_TASKS: dict[str, Callable[[tuple[str, ...]], BackboneTask]] = {
    "grade": lambda classes: GradeTask(classes=classes),
    "classify": ClassifyTask,
}


def backbone_task(name: str, classes: tuple[str, ...]) -> BackboneTask:
    """The backbone's task plugin for `name`, for the dataset's `classes`."""
    return plugin_for(BACKBONE_TASKS, name, "backbone training")(classes)
