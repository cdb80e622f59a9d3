"""Evaluate a trained grader end to end: agreement with the experts, calibration, conformal grade
sets, ONNX export with parity, int8, latency, and TensorRT where a GPU has it.

    evaluation = evaluate_grader(model_dir, dataset_root, out_dir, EvaluateParams())
    evaluation.agreement.overall["qwk"], evaluation.human_bar.verdict(...), evaluation.gates

Splits (components/splits.py): temperatures and conformal sets are fitted on `calibration`;
agreement, ECE and coverage are measured on `test`, which nothing else reads; parity and latency
run on `val` images; int8 activation ranges come from `train` images. Every image goes through
`prepare_photo` once, as in training and serving.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.evaluate.agreement import (
    AgreementReport,
    HumanBar,
    expert_agreement,
    expert_columns,
    human_bar,
)
from components.evaluate.baseline import baseline_qwk
from components.evaluate.calibration import (
    chance_ece,
    expected_calibration_error,
    fit_temperature,
    ordinal_probabilities,
    reliability_diagram_png,
)
from components.evaluate.export import calibrated_torch_model, export_grader, quantize_int8
from components.evaluate.gates import Gate, baseline_gate, grader_gates
from components.evaluate.graphs import Graph
from components.evaluate.latency import Latency, latency_metrics, measure_latency
from components.evaluate.params import EvaluateParams
from components.evaluate.parity import Parity, ParityLimits, compare_outputs, parity_metrics
from components.evaluate.plots import agreement_png, conformal_png, worst_errors_png
from components.evaluate.segmentation import segmentation_report
from components.evaluate.tensorrt import tensorrt_parity
from components.train.metrics import confusion_matrix_png
from components.train.model import ORDINAL_TARGETS, TaskModel
from components.train.rubric import GRADES
from components.train.severity import MAP_STRIDE, map_metadata
from components.train.spec import ModelSpec, load_model
from components.train.tasks import Canvases, GradeTask
from components.vision.conformal import ConformalGrades, conformal_report, fit_conformal
from components.vision.graph import GraderSession, median_grade
from components.vision.prepare import prepare_images

Progress = Callable[[str, int, int], None]  # stage, done, total
EVAL_SPLITS = ("val", "calibration", "test")
_BATCH = 32
# Defects at least this severe must be found (issue 15): lighter ones cost at most two grades.
SEGMENTATION_MIN_SEVERITY = 0.25


class EvaluationError(ValueError):
    """The model or the dataset cannot be evaluated: wrong task, missing split or column."""


@dataclass
class GraderEvaluation:
    """Everything the report, the gates and the summary read."""

    agreement: AgreementReport
    human_bar: HumanBar
    verdict: str  # the model grades "within", "above" or "below" the experts' own agreement
    temperatures: dict[str, float]
    ece_before: float
    ece_after: float
    ece_chance: dict[str, float]  # what a perfectly calibrated model would show (mean, p95)
    conformal: ConformalGrades
    coverage: dict[str, object]
    parity: list[Parity]
    int8: dict[str, object]
    latency: list[Latency]
    tensorrt: str  # "checked" or the reason it was skipped
    gates: list[Gate]
    onnx: Path
    onnx_int8: Path | None
    example: dict[str, np.ndarray]  # two validation inputs of the graphs, as a client sends them
    plots: list[Path] = field(default_factory=list)
    items: dict[str, int] = field(default_factory=dict)
    segmentation: list[dict[str, object]] = field(default_factory=list)

    def graphs(self) -> dict[str, Graph]:
        """The graphs to ship: fp32, and int8 when its kappa drop is within bounds."""
        return {"onnx": Graph(self.onnx, self.example),
                **({"onnx_int8": Graph(self.onnx_int8, self.example)} if self.onnx_int8 else {})}

    def metrics(self) -> dict[str, float]:
        """The figures as flat metrics for the version's run."""
        overall = self.agreement.overall
        return {
            **{f"eval.{k}": overall[k] for k in ("qwk", "mae", "exact", "within_one")},
            "eval.human_bar_qwk": self.human_bar.metric("qwk"),
            **{f"eval.qwk_{name}": s["qwk"] for name, s in self.agreement.per_subgrade.items()},
            **{f"eval.qwk_camera_{c}": s["qwk"] for c, s in self.agreement.per_camera.items()},
            "eval.ece_before": self.ece_before, "eval.ece_after": self.ece_after,
            "eval.ece_chance_mean": self.ece_chance["mean"],
            "eval.ece_chance_p95": self.ece_chance["p95"],
            "eval.temperature": self.temperatures["grade"],
            "eval.coverage": float(self.coverage["coverage"]),
            "eval.mean_set_size": float(self.coverage["mean_set_size"]),
            "eval.needs_review": float(self.coverage["needs_review"]),
            "int8.qwk": float(self.int8["qwk"]), "int8.kappa_drop": float(self.int8["kappa_drop"]),
            **parity_metrics(self.parity), **latency_metrics(self.latency),
            **{f"seg.{key}_{row['class']}": float(row[key]) for row in self.segmentation
               for key in ("recall", "iou", "false_alarms", "severity_r")
               if row[key] is not None},
        }

    def summary(self) -> dict[str, object]:
        """The figures as plain data: what `--json` prints and the HTML report shows."""
        return {
            "kind": "grader",
            "kappa": self.agreement.overall["qwk"],
            "human_bar": self.human_bar.metric("qwk"),
            "verdict": self.verdict,
            "agreement": self.agreement.as_dict(),
            "experts": self.human_bar.as_dict(),
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "ece_chance": self.ece_chance,
            "temperatures": self.temperatures,
            "coverage": self.coverage["coverage"],
            "mean_set_size": self.coverage["mean_set_size"],
            "conformal": {"target": self.conformal.coverage,
                          "threshold": self.conformal.threshold,
                          "calibration_items": self.conformal.calibration_items,
                          **self.coverage},
            "gates": [g.as_dict() for g in self.gates],
            "parity": [p.as_dict() for p in self.parity],
            "int8": self.int8,
            "latency": [row.as_dict() for row in self.latency],
            "tensorrt": self.tensorrt,
            "items": self.items,
            "segmentation": self.segmentation,
        }


@dataclass(frozen=True)
class _Split:
    rows: pd.DataFrame
    pixels: np.ndarray
    geometry: np.ndarray
    to_photo: np.ndarray  # N x 3 x 3, each canvas to its photo
    logits: np.ndarray  # N x targets x GRADES - 1
    maps: np.ndarray  # N x defect classes x H/8 x W/8


def read_split_rows(root: Path, needed: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """Manifest rows of each needed split; a clear error for a missing split or column."""
    path = root / "manifest.csv"
    if not path.is_file():
        raise EvaluationError(f"{root} has no manifest.csv")
    manifest = pd.read_csv(path, dtype={"item_id": str})
    missing = [c for c in ("split", "image_path", "grade") if c not in manifest]
    if missing:
        raise EvaluationError(f"{path} lacks the columns {missing}")
    rows = {name: manifest[manifest["split"] == name].reset_index(drop=True) for name in needed}
    empty = [name for name, split in rows.items() if split.empty]
    if empty:
        raise EvaluationError(f"{path} has no items in the splits {empty} "
                              f"({len(manifest)} items in all): evaluation needs each of "
                              f"{list(needed)}")
    return rows


def _outputs(model: TaskModel, pixels: np.ndarray,
             geometry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits and severity maps of the model in inference mode, batch by batch."""
    model.eval()
    logits, maps = [], []
    with torch.no_grad():
        for start in range(0, len(pixels), _BATCH):
            images = torch.from_numpy(pixels[start:start + _BATCH]).permute(0, 3, 1, 2)
            outputs = model.training_outputs(model.activations(images.float() / 255),
                                             torch.from_numpy(geometry[start:start + _BATCH]))
            logits.append(outputs.logits.numpy())
            maps.append(outputs.maps.numpy())
    return np.concatenate(logits), np.concatenate(maps)


def _prepared(model: TaskModel, spec: ModelSpec, root: Path, rows: pd.DataFrame,
              on_progress: Progress, stage: str) -> _Split:
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        on_progress(stage, done, len(rows))

    paths = [root / p for p in rows["image_path"]]
    prepared = prepare_images(paths, spec.rectify, spec.size, on_progress=advance)
    return _Split(rows, prepared.pixels, prepared.geometry, prepared.to_photo,
                  *_outputs(model, prepared.pixels, prepared.geometry))


def _segmentation(model: TaskModel, spec: ModelSpec, root: Path,
                  test: _Split) -> list[dict[str, object]]:
    """Per defect class, how the test split's severity maps match its labeled defects; none
    when the dataset kept no masks."""
    if "severities" not in test.rows.columns:
        return []
    info = root / "dataset.json"  # the dataset's class names number its label lines
    classes = tuple(json.loads(info.read_text())["classes"]) if info.is_file() else spec.classes
    task = GradeTask(classes=classes)
    targets = task.map_targets(test.rows, Canvases(root, test.to_photo, spec.size))
    table = model.head.table
    return segmentation_report(test.maps, targets, list(table.defect_classes),
                               table.pristine_severity, SEGMENTATION_MIN_SEVERITY)


def _probabilities(logits: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """N x targets x GRADES probabilities of every ordinal output at its temperature."""
    return np.stack([ordinal_probabilities(logits[:, i], float(t))
                     for i, t in enumerate(temperatures)], axis=1)


def _temperatures(calibration: _Split) -> np.ndarray:
    """One temperature per ordinal output, fitted where the calibration rows label it."""
    temperatures = np.ones(len(ORDINAL_TARGETS))
    for i, target in enumerate(ORDINAL_TARGETS):
        if target in calibration.rows:
            temperatures[i] = fit_temperature(calibration.logits[:, i],
                                              calibration.rows[target].to_numpy())
    return temperatures


def _confusion_plots(rows: pd.DataFrame, predicted: np.ndarray, out_dir: Path) -> list[Path]:
    """The test split's confusion matrices: overall grade, each subgrade, each camera."""
    grades = list(range(1, GRADES + 1))
    plots = [confusion_matrix_png(rows["grade"], predicted[:, 0], grades,
                                  out_dir / "confusion_grade.png", "test: grade vs experts")]
    for i, target in enumerate(ORDINAL_TARGETS[1:], start=1):
        if target in rows:
            plots.append(confusion_matrix_png(rows[target], predicted[:, i], grades,
                                              out_dir / f"confusion_{target}.png",
                                              f"test: {target} subgrade vs labels",
                                              axis_name=target))
    if "camera" in rows:
        for camera, index in rows.groupby("camera").indices.items():
            plots.append(confusion_matrix_png(rows["grade"].to_numpy()[index], predicted[index, 0],
                                              grades, out_dir / f"confusion_camera_{camera}.png",
                                              f"test: grade vs experts, {camera} camera"))
    return plots


def _int8(fp32: Path, out_dir: Path, train: _Split, test: _Split, fp32_qwk: float,
          params: EvaluateParams) -> tuple[dict[str, object], Path]:
    """Quantize, then compare the int8 graph with fp32 on the test split."""
    path = quantize_int8(fp32, out_dir / "model.int8.onnx", train.pixels, train.geometry,
                         params.int8.float_convolutions)
    fp32_grades = median_grade(GraderSession(fp32)(test.pixels, test.geometry)[:, 0])
    int8_grades = median_grade(GraderSession(path)(test.pixels, test.geometry)[:, 0])
    qwk = expert_agreement(test.rows, int8_grades[:, None], ("grade",)).overall["qwk"]
    drop = fp32_qwk - qwk
    return {"qwk": qwk, "kappa_drop": drop,
            "same_grade_as_fp32": float((fp32_grades == int8_grades).mean()),
            "max_kappa_drop": params.int8.max_kappa_drop,
            "kept": bool(drop <= params.int8.max_kappa_drop)}, path


def _latency_table(model: TaskModel, temperatures: np.ndarray, graphs: dict[str, Path],
                   val: _Split, params: EvaluateParams) -> list[Latency]:
    eager = calibrated_torch_model(model, temperatures)

    def torch_eager(pixels: np.ndarray, geometry: np.ndarray) -> object:
        with torch.no_grad():
            return eager(torch.from_numpy(pixels), torch.from_numpy(geometry))

    backends = {"pytorch eager": torch_eager,
                **{name: GraderSession(path) for name, path in graphs.items()}}
    return [measure_latency(name, predict, val.pixels, val.geometry, params.latency.runs,
                            params.latency.batch_runs) for name, predict in backends.items()]


def evaluate_grader(model_dir: Path, root: Path, out_dir: Path, params: EvaluateParams,
                    on_progress: Progress = lambda stage, done, total: None,
                    metadata: dict[str, object] | None = None) -> GraderEvaluation:
    """Evaluate the grader saved in `model_dir` on the dataset at `root`; plots and graphs go
    to `out_dir`, and `metadata` (lineage) is written into the exported graph beside the
    calibration."""
    model, spec = load_model(model_dir)
    if spec.task != "grade":
        raise EvaluationError(f"{model_dir} holds a {spec.task!r} model; evaluation against the "
                              f"expert panel needs a grade model")
    rows = read_split_rows(root, ("train", *EVAL_SPLITS))
    experts = expert_columns(rows["test"])
    if len(experts) < 2:
        raise EvaluationError("the test split has fewer than two expert columns (grader_1, "
                              "grader_2, ...): there is no human bar to compare with")
    rng = np.random.default_rng(0)
    train_rows = rows["train"].iloc[np.sort(rng.permutation(len(rows["train"]))[
        :params.int8.calibration_images])].reset_index(drop=True)
    split = {name: _prepared(model, spec, root, split_rows, on_progress, f"prepare {name}")
             for name, split_rows in (*((n, rows[n]) for n in EVAL_SPLITS),
                                      ("train", train_rows))}
    val, calibration, test = split["val"], split["calibration"], split["test"]

    temperatures = _temperatures(calibration)
    before = _probabilities(test.logits, np.ones(len(temperatures)))[:, 0]
    after = _probabilities(test.logits, temperatures)
    predicted = median_grade(after)
    agreement = expert_agreement(test.rows, predicted)
    bar = human_bar(test.rows[experts])
    labels = test.rows["grade"].to_numpy()
    conformal = fit_conformal(_probabilities(calibration.logits, temperatures)[:, 0],
                              calibration.rows["grade"].to_numpy(), params.coverage)
    coverage = conformal_report(conformal, after[:, 0], labels)
    baseline = baseline_qwk(calibration.pixels, calibration.geometry,
                            calibration.rows["grade"].to_numpy(), test.pixels, test.geometry,
                            labels)

    on_progress("export", 0, 3)
    onnx_path = export_grader(model, spec.size, temperatures, out_dir / "model.onnx", {
        **(metadata or {}), "spec": {"task": spec.task, "size": list(spec.size),
                                     "rectify": spec.rectify, "targets": list(ORDINAL_TARGETS),
                                     **map_metadata(model.head.table)},
        "temperatures": temperatures.tolist(), "conformal": conformal.as_dict()})
    limits = ParityLimits(params.parity.max_abs_diff, params.parity.same_prediction)
    with torch.no_grad():
        reference = calibrated_torch_model(model, temperatures)(
            torch.from_numpy(val.pixels), torch.from_numpy(val.geometry)).numpy()

    def parity(backend: str, outputs: np.ndarray) -> Parity:
        return compare_outputs(backend, reference, outputs, median_grade(reference),
                               median_grade(outputs), limits)

    parities = [parity("onnx fp32", GraderSession(onnx_path)(val.pixels, val.geometry))]
    on_progress("export", 1, 3)
    int8, int8_path = _int8(onnx_path, out_dir, split["train"], test,
                            agreement.overall["qwk"], params)
    on_progress("export", 2, 3)
    trt_outputs, tensorrt = tensorrt_parity(onnx_path, val.pixels, val.geometry)
    if trt_outputs is not None:
        parities.append(parity("tensorrt", trt_outputs))
    on_progress("export", 3, 3)
    on_progress("latency", 0, 1)
    latency = _latency_table(model, temperatures, {"onnx fp32": onnx_path, "onnx int8": int8_path},
                             val, params)
    on_progress("latency", 1, 1)

    ece_before = expected_calibration_error(before, labels)
    ece_after = expected_calibration_error(after[:, 0], labels)
    ece_chance = chance_ece(after[:, 0])
    plots = [*_confusion_plots(test.rows, predicted, out_dir),
             reliability_diagram_png({"before scaling": before, "after scaling": after[:, 0]},
                                     labels, out_dir / "reliability.png",
                                     f"test: grade calibration, T = {temperatures[0]:.2f}"),
             conformal_png(coverage, params.coverage, out_dir / "conformal.png"),
             agreement_png(agreement.overall, bar, out_dir / "agreement.png"),
             worst_errors_png(test.pixels, test.maps, predicted[:, 0], labels, MAP_STRIDE,
                              out_dir / "worst_errors.png")]
    return GraderEvaluation(
        agreement=agreement, human_bar=bar, verdict=bar.verdict(agreement.overall["qwk"]),
        temperatures=dict(zip(ORDINAL_TARGETS, temperatures.tolist(), strict=True)),
        ece_before=ece_before, ece_after=ece_after, ece_chance=ece_chance,
        conformal=conformal, coverage=coverage,
        parity=parities, int8=int8, latency=latency, tensorrt=tensorrt,
        gates=[*grader_gates(agreement.overall["qwk"], bar.metric("qwk"), ece_after,
                             ece_chance["p95"], float(coverage["coverage"]), len(labels),
                             parities, params),
               baseline_gate(agreement.overall["qwk"], baseline,
                             params.gates.baseline_margin)],
        onnx=onnx_path, onnx_int8=int8_path if int8["kept"] else None,
        example={"pixels": val.pixels[:2].astype(np.float32), "geometry": val.geometry[:2]},
        plots=plots,
        items={name: len(s.rows) for name, s in split.items()},
        segmentation=_segmentation(model, spec, root, test))
