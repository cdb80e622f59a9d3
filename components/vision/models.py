"""The exported graphs as the service runs them: a grader that turns decoded photos into the full
answer a client reads, and a detector that finds defects with boxes.

    grader = OnnxGrader.load(Path("model.onnx"), expected_sha256=tags["onnx.sha256"],
                             model="card-grader", version=3)
    inputs = [grader.prepare(bgr) for bgr in photos]       # per request, before batching
    answers = grader.grade(inputs)                          # one ONNX run for the whole batch

Everything the graph needs to be used correctly (input size, rectification, temperatures, the
conformal threshold, lineage) is read from the graph's own metadata, written by evaluation, so a
served model cannot drift from the one the reviewer approved. Preprocessing is the training code's
`prepare_photo`: one module shared by training and serving, so they cannot skew.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime

from components.vision.centering import CenteringMeasurement
from components.vision.conformal import ConformalGrades
from components.vision.graph import GraderSession, median_grade, read_metadata
from components.vision.prepare import prepare_photo

# Ultralytics' predictor defaults: boxes below this confidence are no defect, and overlapping
# boxes of one class above this IoU are one defect.
DETECTION_CONFIDENCE = 0.25
DETECTION_IOU = 0.45
_LETTERBOX_GREY = 114


class ChecksumMismatch(RuntimeError):
    """A downloaded graph is not the one evaluation registered: it is never loaded."""


def verify_checksum(path: Path, expected_sha256: str | None) -> None:
    """Refuse a graph whose sha256 differs from the registered one (or that has none)."""
    if not expected_sha256:
        raise ChecksumMismatch(f"{path.name}: the version carries no checksum; evaluate it first")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected_sha256:
        raise ChecksumMismatch(f"{path.name}: sha256 {digest[:12]}... differs from the registered "
                               f"{expected_sha256[:12]}...; refusing to load it")


@dataclass(frozen=True)
class GraderInput:
    """One photo made ready for the graph, with what the answer reports beside the grades."""

    pixels: np.ndarray
    geometry: np.ndarray
    centering: CenteringMeasurement | None
    to_photo: np.ndarray  # the pixels' coordinates to the photo's (3 x 3 homography)


@dataclass(frozen=True)
class Preparation:
    """How a grader's photos are prepared (the training code's `prepare_photo`): a value, so
    a worker process can be sent it and two graders fed alike can share one prepared input."""

    rectify: bool
    size: tuple[int, int]  # width, height

    def __call__(self, bgr: np.ndarray) -> GraderInput:
        prepared = prepare_photo(bgr, self.rectify, self.size)
        return GraderInput(prepared.pixels, prepared.geometry, prepared.centering,
                           prepared.to_photo)


@dataclass(frozen=True)
class GradedDefect:
    """A defect the grade was read from: its class, the aspect it counts towards, its
    severity and its box in the photo."""

    defect_class: str
    aspect: str
    severity: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the uploaded photo's pixels

    def as_dict(self) -> dict[str, object]:
        return {"class": self.defect_class, "aspect": self.aspect,
                "severity": round(self.severity, 3), "box": [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class GradeAnswer:
    """The grader's answer for one photo."""

    grade: int
    probabilities: list[float]  # P(grade = 1..10)
    grade_set: list[int]  # the conformal set, a contiguous range of grades
    subgrades: dict[str, int]
    embedding: list[float] | None = None  # the backbone's pooled features, for monitoring
    defects: list[GradedDefect] = field(default_factory=list)
    capped_by: str | None = None  # the aspect whose subgrade caps the grade

    @property
    def needs_review(self) -> bool:
        """A set of more than one grade is a card a human should look at."""
        return len(self.grade_set) > 1


def capping_aspect(rubric: dict[str, object] | None, subgrades: dict[str, int]) -> str | None:
    """The aspect whose subgrade caps the overall grade (its weakest, when the weighted mean
    would exceed it by more than the rubric's lead), or None when the mean decides or the
    graph names no rubric (`rubric_metadata` in evaluation writes it)."""
    if not rubric or set(rubric["weights"]) != set(subgrades):
        return None
    weighted = sum(weight * subgrades[aspect] for aspect, weight in rubric["weights"].items())
    weakest = min(subgrades, key=subgrades.__getitem__)
    return weakest if weighted > subgrades[weakest] + rubric["max_lead_over_weakest"] else None


def graded_defects(maps: np.ndarray, class_aspects: dict[str, str], to_photo: np.ndarray,
                   threshold: float, stride: int) -> list[GradedDefect]:
    """Each connected region of a defect class's severity map (classes x h x w in the order
    of `class_aspects`, one cell per `stride` pixels of the rectified card) at or above
    `threshold`, worst first."""
    found = []
    for (defect_class, aspect), severity in zip(class_aspects.items(), maps, strict=True):
        regions, labels, stats, _ = cv2.connectedComponentsWithStats(
            (severity >= threshold).astype(np.uint8), connectivity=8)
        for region in range(1, regions):
            x, y, width, height, _ = stats[region]
            corners = np.array([[[x, y], [x + width, y], [x + width, y + height],
                                 [x, y + height]]], np.float32) * stride
            in_photo = cv2.perspectiveTransform(corners, to_photo)[0]
            box = (*in_photo.min(axis=0).tolist(), *in_photo.max(axis=0).tolist())
            found.append(GradedDefect(defect_class, aspect,
                                      float(severity[labels == region].max()), box))
    return sorted(found, key=lambda defect: -defect.severity)


def centering_answer(centering: CenteringMeasurement | None) -> dict[str, object] | None:
    """Measured centering as graders write it (left/right and top/bottom, e.g. "55/45")."""
    if centering is None:
        return None
    lr, tb = centering.centering_lr, centering.centering_tb
    return {"left_right": f"{round(lr)}/{100 - round(lr)}",
            "top_bottom": f"{round(tb)}/{100 - round(tb)}",
            "centering_lr": round(lr, 2), "centering_tb": round(tb, 2),
            "borders_mm": [round(b, 3) for b in centering.borders_mm]}


def answer_fields(answer: GradeAnswer,
                  centering: CenteringMeasurement | None) -> dict[str, object]:
    """What a grader says about one photo, as JSON fields: the service's answer and a batch
    inspection's report both carry exactly these."""
    return {
        "grade": answer.grade,
        "probabilities": {str(g + 1): p for g, p in enumerate(answer.probabilities)},
        "grade_set": answer.grade_set,
        "needs_review": answer.needs_review,
        "subgrades": answer.subgrades,
        "capped_by": answer.capped_by,
        "graded_defects": [d.as_dict() for d in answer.defects],
        "centering": centering_answer(centering),
    }


class OnnxGrader:
    """A verified grader graph and the metadata it carries."""

    def __init__(self, path: Path, model: str, version: int, threads: int | None = None) -> None:
        metadata = read_metadata(path)
        spec = metadata["spec"]
        self.model, self.version = model, version
        self.data_version = metadata.get("data_version")
        self.size = (int(spec["size"][0]), int(spec["size"][1]))
        self.rectify = bool(spec["rectify"])
        self.targets = [str(target) for target in spec["targets"]]
        self.rubric = spec.get("rubric")
        aspects = (self.rubric or {}).get("defect_aspects", {})
        self.class_aspects = {str(c): str(aspects.get(c, c)) for c in spec.get("defect_classes",
                                                                            [])}
        self.defect_threshold = float(spec.get("pristine_severity", 0.05))
        self.map_stride = int(spec.get("map_stride", 8))
        self.conformal = ConformalGrades(**metadata["conformal"])
        # A run alone uses `threads` (every core by default: 10 ms a photo at 304 x 432 here,
        # against 18 on one thread); a run that starts while another is running uses one
        # thread, so two batches share two cores instead of four threads fighting for them.
        self.session = GraderSession(path, threads=threads, embeddings=True)
        self._beside = GraderSession(path, threads=1, embeddings=True)
        self._running = 0
        self._running_lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, expected_sha256: str | None, model: str, version: int,
             threads: int | None = None) -> OnnxGrader:
        """The grader at `path` once its checksum matches the registered one."""
        verify_checksum(path, expected_sha256)
        return cls(path, model, version, threads)

    @property
    def preparation(self) -> Preparation:
        return Preparation(self.rectify, self.size)

    def prepare(self, bgr: np.ndarray) -> GraderInput:
        """Rectify and resize one photo as training did."""
        return self.preparation(bgr)

    def grade(self, inputs: list[GraderInput]) -> list[GradeAnswer]:
        """Answers for a batch of prepared photos, in one run of the graph (safe to call from
        several threads at once)."""
        pixels = np.stack([item.pixels for item in inputs])
        with self._running_lock:
            session = self.session if self._running == 0 else self._beside
            self._running += 1
        try:
            answer = session.answer(pixels, np.stack([item.geometry for item in inputs]))
        finally:
            with self._running_lock:
                self._running -= 1
        probabilities, pooled, maps = answer.probabilities, answer.embeddings, answer.severity_maps
        if not np.isfinite(probabilities).all():
            raise FloatingPointError(f"{self.model} version {self.version} answered non-finite "
                                     "probabilities")
        grades = median_grade(probabilities)  # N x targets
        sets = self.conformal.sets(probabilities[:, 0])
        return [GradeAnswer(grade=int(grades[i, 0]),
                            probabilities=[round(float(p), 5) for p in probabilities[i, 0]],
                            grade_set=[int(g) + 1 for g in np.flatnonzero(sets[i])],
                            subgrades={target: int(grades[i, t])
                                       for t, target in enumerate(self.targets) if t > 0},
                            embedding=None if pooled is None
                            else [round(float(v), 4) for v in pooled[i]],
                            defects=[] if maps is None else graded_defects(
                                maps[i], self.class_aspects, inputs[i].to_photo,
                                self.defect_threshold, self.map_stride),
                            capped_by=capping_aspect(self.rubric, {
                                target: int(grades[i, t])
                                for t, target in enumerate(self.targets) if t > 0}))
                for i in range(len(inputs))]


@dataclass(frozen=True)
class Defect:
    """One detected defect, its box in the uploaded photo's pixels (x1, y1, x2, y2)."""

    label: str
    confidence: float
    box: tuple[float, float, float, float]

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "confidence": round(self.confidence, 4),
                "box": [round(v, 1) for v in self.box]}

    def as_box(self) -> dict[str, object]:
        """The defect as logs, reviews and inspection reports name it: class, box, confidence
        (the service's answer says `label`, which clients already read)."""
        return {"class": self.label, "box": [round(v, 1) for v in self.box],
                "confidence": round(self.confidence, 4)}


def letterbox_one(bgr: np.ndarray, imgsz: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """3 x imgsz x imgsz float32 RGB in [0, 1] as Ultralytics' LetterBox(auto=False) makes it
    (scaled to fit, centred, grey padding), with the scale and the (left, top) padding."""
    height, width = bgr.shape[:2]
    scale = min(imgsz / height, imgsz / width)
    new_width, new_height = round(width * scale), round(height * scale)
    pad_x, pad_y = (imgsz - new_width) / 2, (imgsz - new_height) / 2
    resized = cv2.resize(bgr, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    canvas = cv2.copyMakeBorder(resized, top, imgsz - new_height - top, left,
                                imgsz - new_width - left, cv2.BORDER_CONSTANT,
                                value=(_LETTERBOX_GREY,) * 3)
    return (canvas[..., ::-1].transpose(2, 0, 1) / 255).astype(np.float32), scale, (left, top)


def _ultralytics_metadata(path: Path) -> tuple[int, list[str]]:
    """Input size and class names that Ultralytics' exporter writes into the graph."""
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if "names" not in props or "imgsz" not in props:
        raise ValueError(f"{path.name} is no detector exported by Ultralytics: its metadata "
                         "lacks names and imgsz")
    # Ultralytics writes Python literals ({0: 'scratch'}, [320, 320]); literal_eval runs no code.
    names, imgsz = ast.literal_eval(props["names"]), ast.literal_eval(props["imgsz"])
    return int(imgsz[0]), [str(names[key]) for key in sorted(names)]


class OnnxDetector:
    """A verified defect detector graph (raw outputs, no NMS inside) and its decoding."""

    def __init__(self, path: Path, model: str, version: int, threads: int | None = None) -> None:
        self.model, self.version = model, version
        self.imgsz, self.classes = _ultralytics_metadata(path)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def load(cls, path: Path, expected_sha256: str | None, model: str, version: int,
             threads: int | None = None) -> OnnxDetector:
        """The detector at `path` once its checksum matches the registered one."""
        verify_checksum(path, expected_sha256)
        return cls(path, model, version, threads)

    def detect(self, photos: list[np.ndarray]) -> list[list[Defect]]:
        """Defects of each BGR photo, boxes in that photo's own pixels."""
        boxed = [letterbox_one(photo, self.imgsz) for photo in photos]
        outputs = self.session.run(None, {self.input_name: np.stack([b[0] for b in boxed])})[0]
        return [self._decode(outputs[i], scale, padding)
                for i, (_, scale, padding) in enumerate(boxed)]

    def _decode(self, raw: np.ndarray, scale: float,
                padding: tuple[float, float]) -> list[Defect]:
        """Confident boxes of one image's raw output ((4 + classes) x anchors), per-class NMS."""
        scores = raw[4:, :]
        classes, confidences = scores.argmax(axis=0), scores.max(axis=0)
        keep = np.flatnonzero(confidences >= DETECTION_CONFIDENCE)
        if keep.size == 0:
            return []
        centre_x, centre_y, width, height = raw[:4, keep]
        left, top = (centre_x - width / 2 - padding[0]) / scale, (centre_y - height / 2
                                                                 - padding[1]) / scale
        boxes = np.stack([left, top, width / scale, height / scale], axis=1)
        chosen = cv2.dnn.NMSBoxesBatched(boxes.tolist(), confidences[keep].tolist(),
                                         classes[keep].tolist(), DETECTION_CONFIDENCE,
                                         DETECTION_IOU)
        return [Defect(self.classes[int(classes[keep[j]])], float(confidences[keep[j]]),
                       (float(boxes[j, 0]), float(boxes[j, 1]),
                        float(boxes[j, 0] + boxes[j, 2]), float(boxes[j, 1] + boxes[j, 3])))
                for j in np.asarray(chosen, int).reshape(-1)]


# Serving's task plugins: what runs an exported graph of each task type on photos.
SERVED_MODELS: dict[str, type[OnnxGrader] | type[OnnxDetector]] = {
    "grade": OnnxGrader, "detect": OnnxDetector}
