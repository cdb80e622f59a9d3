"""Batch inspection: a registered model run on every image of a folder, one JSON report per
image, and a summary a quality engineer reads first (CSV, and HTML with the counts per defect
class and a contact sheet of the most defective images).

    model = InspectingModel(OnnxDetector.load(...), data_version="5f3a...")
    run = inspect_folder(model, Path("incoming/line-3"), Path("reports/line-3"), unreadable={})
    run.unreadable       # [(image, why)]: nothing is skipped silently
    write_summary(run, Path("reports/line-3"))

Images are decoded upright (EXIF), in batches of `batch_size` per run of the graph. An image
that cannot be read is listed with why and the rest are inspected; the caller exits non-zero.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from components.vision.models import SERVED_MODELS, OnnxDetector, OnnxGrader, answer_fields
from components.vision.photos import SUFFIX_FORMATS, upright_rgb
from components.vision.tasks import plugin_for
from model_registry.evaluation import get_version
from model_registry.names import ALIAS_CHAMPION
from model_registry.serving import alias_versions, download_graph, graph_checksum

REPORTS = "reports"  # per-image JSON files, mirroring the source folder's layout
SUMMARY_CSV, SUMMARY_HTML = "summary.csv", "summary.html"
SHEET_SIZE, SHEET_SIDE = 12, 240  # images on the contact sheet, their longer side in pixels
LABELLED = 3  # defects named on each image of the sheet, the strongest first


@dataclass(frozen=True)
class InspectingModel:
    """A loaded grader or detector and the data version it was trained on (lineage for the
    reports)."""

    model: OnnxGrader | OnnxDetector
    data_version: str | None = None

    @property
    def task(self) -> str:
        return "grade" if isinstance(self.model, OnnxGrader) else "detect"

    def findings(self, photos: list[np.ndarray]) -> list[dict[str, object]]:
        """What the model says about each BGR photo, as report fields: defects with class, box
        and confidence (a detector), or the grade with the defects it was read from (a grader)."""
        if isinstance(self.model, OnnxDetector):
            return [{"defects": [d.as_box() for d in found]}
                    for found in self.model.detect(photos)]
        inputs = [self.model.prepare(photo) for photo in photos]
        reports = []
        for answer, prepared in zip(self.model.grade(inputs), inputs, strict=True):
            fields = answer_fields(answer, prepared.centering)
            fields["defects"] = fields.pop("graded_defects")  # class, aspect, severity, box
            reports.append(fields)
        return reports


def load_inspecting_model(tracking_uri: str, cache: Path, reference: str) -> InspectingModel:
    """The model `reference` names (`name`, `name@alias` or `name@version`; the champion by
    default) from the registry, its exported graph downloaded and its checksum verified."""
    name, _, which = reference.partition("@")
    which = which or ALIAS_CHAMPION
    if which.isdigit():
        version = get_version(tracking_uri, name, int(which))
    else:
        found = alias_versions(tracking_uri, name, (which,))
        if which not in found:
            raise LookupError(f"{name} has no version called {which!r}: promote one, or name a "
                              f"version number ({name}@3)")
        version = found[which]
    task = version.tags.get("task")
    if task is None:
        raise LookupError(f"{name} version {version.version} carries no task tag: not a model "
                          "the train flow registered")
    graph = download_graph(tracking_uri, version, cache / f"{name}-{version.version}")
    model = plugin_for(SERVED_MODELS, task, "inspect").load(graph, graph_checksum(version), name,
                                                             version.version)
    return InspectingModel(model, version.data_version)


@dataclass
class InspectionRun:
    """What one inspection found: a summary row per inspected image and the unreadable ones."""

    model: str
    version: int
    task: str
    rows: list[dict[str, object]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)  # image -> small BGR copy


def find_images(folder: Path, unreadable: dict[str, str]) -> list[Path]:
    """Every image under `folder` by its suffix, in a stable order, but those a source could
    not fetch (`unreadable`, by relative path); raises when the folder does not exist or holds
    no image at all."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    images = sorted(p for p in folder.rglob("*")
                    if p.is_file() and p.suffix.lower() in SUFFIX_FORMATS)
    if not images and not unreadable:
        raise FileNotFoundError(f"{folder} holds no image ({', '.join(sorted(SUFFIX_FORMATS))})")
    return [p for p in images if p.relative_to(folder).as_posix() not in unreadable]


def _read(path: Path) -> tuple[np.ndarray, str]:
    """The upright BGR pixels of an image file and its sha256."""
    data = path.read_bytes()
    rgb = np.asarray(upright_rgb(path))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), hashlib.sha256(data).hexdigest()


def inspect_folder(model: InspectingModel, folder: Path, out: Path,
                   unreadable: dict[str, str], batch_size: int = 16,
                   on_progress: Callable[[int], None] | None = None) -> InspectionRun:
    """Run `model` on every image under `folder` and write `out/reports/<image>.json` each;
    `unreadable` holds images a source could not fetch (relative path -> why)."""
    inner = model.model
    run = InspectionRun(inner.model, inner.version, model.task,
                        unreadable=sorted(unreadable.items()))
    images = find_images(folder, unreadable)
    for start in range(0, len(images), batch_size):
        batch: list[tuple[str, np.ndarray, str]] = []
        for path in images[start:start + batch_size]:
            name = path.relative_to(folder).as_posix()
            try:
                batch.append((name, *_read(path)))
            except (OSError, ValueError, UnidentifiedImageError,
                    Image.DecompressionBombError) as error:
                run.unreadable.append((name, f"{type(error).__name__}: {error}"))
        if batch:
            findings = model.findings([photo for _, photo, _ in batch])
            for (name, photo, digest), found in zip(batch, findings, strict=True):
                _record(run, model, out, name, photo, digest, found)
        if on_progress:
            on_progress(len(images[start:start + batch_size]))
    return run


def _record(run: InspectionRun, model: InspectingModel, out: Path, name: str,
            photo: np.ndarray, digest: str, found: dict[str, object]) -> None:
    """Write one image's report and keep its summary row and a small copy for the sheet."""
    report = {"image": name, "sha256": digest, "width": photo.shape[1],
              "height": photo.shape[0], "model": run.model, "version": run.version,
              "data_version": model.data_version, "task": run.task,
              "inspected_at": datetime.now(UTC).isoformat(timespec="seconds"), **found}
    path = out / REPORTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    defects = found["defects"]
    run.rows.append({"image": name, "sha256": digest, "defects": len(defects),
                     "classes": ";".join(sorted({str(d["class"]) for d in defects})),
                     "worst": max((_strength(d) for d in defects), default=0.0),
                     "grade": found.get("grade")})
    run.thumbnails[name] = _boxed_thumbnail(photo, defects)


def _strength(defect: dict[str, object]) -> float:
    """How sure or how bad a defect is: a detector's confidence, a grader's severity."""
    return float(defect.get("confidence", defect.get("severity", 0.0)))


def _boxed_thumbnail(photo: np.ndarray, defects: list[dict[str, object]]) -> np.ndarray:
    """A small copy of the photo with each defect's box drawn on it, the strongest
    `LABELLED` named (more names would hide the photo)."""
    scale = SHEET_SIDE / max(photo.shape[:2])
    small = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    for rank, defect in enumerate(sorted(defects, key=_strength, reverse=True)):
        x1, y1, x2, y2 = (round(float(v) * scale) for v in defect["box"])
        cv2.rectangle(small, (x1, y1), (x2, y2), (0, 0, 255), 1)
        if rank < LABELLED:
            cv2.putText(small, str(defect["class"]), (x1, max(y1 - 3, 9)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 255), 1, cv2.LINE_AA)
    return small


def most_defective(rows: list[dict[str, object]], count: int) -> list[dict[str, object]]:
    """The rows to look at first: the most defects, then the worst one; the lowest grade first
    where the model grades."""
    def order(row: dict[str, object]) -> tuple:
        grade = row.get("grade")
        return (grade if grade is not None else 0, -int(row["defects"]), -float(row["worst"]))
    return sorted(rows, key=order)[:count]


def write_summary(run: InspectionRun, out: Path) -> dict[str, object]:
    """`summary.csv` (a row per inspected image) and `summary.html` (counts, the contact sheet
    of the most defective images, the unreadable list); returns the figures it shows."""
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(run.rows, columns=["image", "sha256", "defects", "classes", "worst",
                                            "grade"])
    table.to_csv(out / SUMMARY_CSV, index=False)
    per_class = Counter(c for classes in table["classes"] for c in str(classes).split(";") if c)
    figures = {"model": run.model, "version": run.version, "inspected": len(run.rows),
               "with_defects": int((table["defects"] > 0).sum()),
               "per_class": dict(sorted(per_class.items())),
               "unreadable": [{"image": n, "why": why} for n, why in run.unreadable]}
    (out / SUMMARY_HTML).write_text(_summary_html(run, figures))
    return figures


def _summary_html(run: InspectionRun, figures: dict[str, object]) -> str:
    """The summary page: one self-contained file, images embedded."""
    def cell(row: dict[str, object]) -> str:
        ok, jpeg = cv2.imencode(".jpg", run.thumbnails[str(row["image"])])
        source = base64.b64encode(jpeg.tobytes()).decode() if ok else ""
        grade = f", grade {row['grade']}" if row.get("grade") is not None else ""
        return (f'<figure><img src="data:image/jpeg;base64,{source}"><figcaption>'
                f"{html.escape(str(row['image']))}: {row['defects']} defects{grade}"
                "</figcaption></figure>")
    classes = "".join(f"<tr><td>{html.escape(c)}</td><td>{n}</td></tr>"
                      for c, n in figures["per_class"].items())
    failed = "".join(f"<li>{html.escape(n)}: {html.escape(why)}</li>" for n, why in run.unreadable)
    sheet = "".join(cell(row) for row in most_defective(run.rows, SHEET_SIZE))
    return (f"<!doctype html><meta charset=utf-8><title>Inspection by {html.escape(run.model)} "
            f"version {run.version}</title><style>figure{{display:inline-block;margin:4px}}"
            f"</style><h1>{html.escape(run.model)} version {run.version}</h1>"
            f"<p>{figures['inspected']} images inspected, {figures['with_defects']} with defects,"
            f" {len(run.unreadable)} unreadable.</p><h2>Images with each defect class</h2>"
            f"<table>{classes}</table><h2>Most defective</h2>{sheet}"
            f"<h2>Unreadable</h2><ul>{failed or '<li>none</li>'}</ul>")
