"""The synthetic card factory: labeled batches of photographed trading cards with known truth.

    summary = synthesize_batch(Path("batch"), n=200, seed=1, camera="studio")

writes `images/*.jpg`, `labels/*.txt` (YOLO boxes of the defects), `annotations/instances.json`
(COCO: each defect's box, pixel mask outline and severity, as CVAT exports them), `manifest.csv`,
one `<split>.txt` image list per split, `dataset.yaml` (Ultralytics) and `batch.json` (how it
was made). Every card draws from its own random streams keyed by (seed, index), so the same seed
gives the same bytes whatever the number of worker processes. The batch is written to a
temporary sibling folder and renamed into place, so a failure leaves no half batch behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from components.cards.camera import (
    CAMERAS,
    PHOTO_HEIGHT,
    PHOTO_WIDTH,
    compose,
    defect_box,
    defect_outlines,
    develop,
    sample_conditions,
)
from components.cards.panel import PANEL, consensus, grade_by_panel
from components.cards.render import render_card
from components.cards.spec import CardSpec, sample_card
from components.parallel import map_chunks
from components.splits import SPLIT_NAMES, split_for
from components.vision.rubric import DEFECT_CLASSES, Grade

FACTORY_VERSION = "1"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "item_id", "image_path", "sha256", "grade", "true_grade",
    *(grader.name for grader in PANEL),
    "centering", "corners", "edges", "surface", "centering_lr", "centering_tb",
    "corners_severity", "edges_severity", "surface_severity",
    "defects", "camera", "split",
    "rotation_deg", "colour_temp_k", "exposure", "blur_sigma", "noise_sigma", "jpeg_quality",
    "background",
)
# Below this many cards, starting worker processes costs more than it saves.
_PARALLEL_MIN_CARDS = 64
_CHUNK = 16


class FactoryError(ValueError):
    """A batch cannot be made as asked (bad count, unknown camera, folder not empty)."""


@dataclass(frozen=True)
class DefectRegion:
    """One defect as the photo shows it: class, severity, box and mask outlines in pixels."""

    class_id: int
    severity: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    outlines: tuple[tuple[float, ...], ...]  # each x1, y1, x2, y2, ... (COCO polygons)


@dataclass(frozen=True)
class SynthesizedCard:
    """One card ready to write: its manifest row, JPEG bytes, YOLO label lines and regions."""

    row: dict[str, object]
    jpeg: bytes
    labels: str
    regions: tuple[DefectRegion, ...]


@dataclass(frozen=True)
class BatchSummary:
    """What a batch holds and how fast it was made."""

    out_dir: str
    count: int
    seed: int
    camera: str
    seconds: float
    cards_per_s: float
    grade_histogram: dict[int, int]
    split_counts: dict[str, int]
    defect_counts: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def item_id(seed: int, index: int) -> str:
    """The identity of a physical card: the same for every camera that photographs it."""
    return f"s{seed}-{index:06d}"


def _yolo_line(class_id: int, box: tuple[float, ...]) -> str:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2 / PHOTO_WIDTH, (y0 + y1) / 2 / PHOTO_HEIGHT
    w, h = (x1 - x0) / PHOTO_WIDTH, (y1 - y0) / PHOTO_HEIGHT
    return f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


@dataclass(frozen=True)
class LabeledCard:
    """A card before any pixel is drawn: what it is, its true grade, the experts' grades."""

    spec: CardSpec
    truth: Grade
    experts: dict[str, int]
    split: str


def label_card(seed: int, index: int) -> LabeledCard:
    """Sample card `index` of batch `seed` and grade it by rubric and by the expert panel."""
    spec = sample_card(np.random.default_rng([seed, index, 0]), item_id(seed, index))
    panel_rng = np.random.default_rng([seed, index, 2])
    truth = spec.grade()
    experts = grade_by_panel(truth.score, panel_rng)
    return LabeledCard(spec=spec, truth=truth, experts=experts, split=split_for(panel_rng.random()))


def synthesize_card(seed: int, index: int, camera: str) -> SynthesizedCard:
    """Make one card: sample it, grade it, have the panel grade it, draw and photograph it."""
    labeled = label_card(seed, index)
    spec, truth, experts = labeled.spec, labeled.truth, labeled.experts
    # Its own stream: the card itself does not depend on which camera photographs it.
    conditions = sample_conditions(CAMERAS[camera], np.random.default_rng([seed, index, 1]))
    flat = render_card(spec)
    photo, homography = compose(flat, conditions)
    jpeg = develop(photo, conditions, np.random.default_rng([seed, index, 3]))
    # Blur spreads a defect by about its sigma; the box covers what a viewer sees.
    pad = 1.0 + conditions.blur_sigma + conditions.motion_blur_px / 2
    regions = []
    for defect, mask in zip(spec.defects, flat.defect_masks, strict=True):
        box = defect_box(mask, homography, pad)
        if box is not None:
            outlines = tuple(tuple(round(float(v), 2) for v in outline.ravel())
                             for outline in defect_outlines(mask, homography))
            regions.append(DefectRegion(defect.class_id, defect.severity, box, outlines))
    lines = [_yolo_line(region.class_id, region.box) for region in regions]

    row: dict[str, object] = {
        "item_id": spec.item_id,
        "image_path": f"images/{spec.item_id}.jpg",
        "sha256": hashlib.sha256(jpeg).hexdigest(),
        "grade": consensus(list(experts.values())),
        "true_grade": truth.grade,
        **experts,
        **truth.subgrades.as_dict(),
        "centering_lr": f"{spec.centering_lr:.2f}",
        "centering_tb": f"{spec.centering_tb:.2f}",
        **{f"{aspect}_severity": f"{severity:.3f}"
           for aspect, severity in spec.aspect_severities().items()},
        "defects": ";".join(sorted({d.kind for d in spec.defects})),
        "camera": camera,
        "split": labeled.split,
        "rotation_deg": f"{conditions.rotation_deg:.2f}",
        "colour_temp_k": f"{conditions.colour_temp_k:.0f}",
        "exposure": f"{conditions.exposure:.3f}",
        "blur_sigma": f"{conditions.blur_sigma:.2f}",
        "noise_sigma": f"{conditions.noise_sigma:.2f}",
        "jpeg_quality": conditions.jpeg_quality,
        "background": conditions.background,
    }
    return SynthesizedCard(row=row, jpeg=jpeg, labels="\n".join(lines) + ("\n" if lines else ""),
                           regions=tuple(regions))


def _synthesize_chunk(args: tuple[int, range, str]) -> list[SynthesizedCard]:
    seed, indices, camera = args
    return [synthesize_card(seed, index, camera) for index in indices]


def _check_request(out_dir: Path, n: int, camera: str) -> None:
    if n < 1:
        raise FactoryError(f"--n must be at least 1, got {n}")
    if camera not in CAMERAS:
        raise FactoryError(f"unknown camera {camera!r}; choose one of {', '.join(CAMERAS)}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FactoryError(f"{out_dir} exists and is not an empty folder; choose a new one")


def coco_instances(cards: list[tuple[str, tuple[DefectRegion, ...]]]) -> dict[str, object]:
    """A COCO instances document of (image path, regions) pairs: categories numbered from 1 in
    `DEFECT_CLASSES` order, severity among each annotation's `attributes` as CVAT writes it."""
    images, annotations = [], []
    for image_id, (image_path, regions) in enumerate(cards, start=1):
        images.append({"id": image_id, "file_name": image_path, "width": PHOTO_WIDTH,
                       "height": PHOTO_HEIGHT})
        for region in regions:
            x0, y0, x1, y1 = region.box
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": region.class_id + 1, "iscrowd": 0,
                "bbox": [round(x0, 4), round(y0, 4), round(x1 - x0, 4), round(y1 - y0, 4)],
                "area": round((x1 - x0) * (y1 - y0), 1),
                "segmentation": [list(outline) for outline in region.outlines],
                "attributes": {"severity": round(region.severity, 4)}})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": name} for i, name in enumerate(DEFECT_CLASSES)]}


def _write_metadata(tmp: Path, rows: list[dict[str, object]], n: int, seed: int, camera: str):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (tmp / "manifest.csv").write_text(buffer.getvalue())
    for split in SPLIT_NAMES:
        paths = [str(r["image_path"]) for r in rows if r["split"] == split]
        (tmp / f"{split}.txt").write_text("".join(f"{p}\n" for p in paths))
    # No `path:` key: Ultralytics then resolves the lists next to this file, wherever it moves.
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(DEFECT_CLASSES))
    (tmp / "dataset.yaml").write_text(
        f"train: train.txt\nval: val.txt\ntest: test.txt\nnames:\n{names}\n"
    )
    batch = {"factory_version": FACTORY_VERSION, "n": n, "seed": seed, "camera": camera,
             "columns": list(MANIFEST_COLUMNS), "defect_classes": list(DEFECT_CLASSES)}
    (tmp / "batch.json").write_text(json.dumps(batch, indent=2) + "\n")


def synthesize_batch(
    out_dir: Path,
    n: int,
    seed: int,
    camera: str = "studio",
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Write a labeled batch of `n` cards to the new folder `out_dir` and summarise it.

    `on_progress` is called with the number of cards finished since its last call.
    """
    out_dir = Path(out_dir)
    _check_request(out_dir, n, camera)
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        chunks = [(seed, range(i, min(i + _CHUNK, n)), camera) for i in range(0, n, _CHUNK)]
        rows: list[dict[str, object]] = []
        annotated: list[tuple[str, tuple[DefectRegion, ...]]] = []
        for cards in map_chunks(_synthesize_chunk, chunks,
                                workers=1 if n < _PARALLEL_MIN_CARDS else workers):
            for card in cards:
                stem = str(card.row["item_id"])
                (tmp / "images" / f"{stem}.jpg").write_bytes(card.jpeg)
                (tmp / "labels" / f"{stem}.txt").write_text(card.labels)
                rows.append(card.row)
                annotated.append((str(card.row["image_path"]), card.regions))
            if on_progress:
                on_progress(len(cards))
        _write_metadata(tmp, rows, n, seed, camera)
        (tmp / "annotations").mkdir()
        (tmp / "annotations" / "instances.json").write_text(json.dumps(coco_instances(annotated)))
        if out_dir.exists():
            out_dir.rmdir()  # checked empty above
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    defects = Counter(kind for r in rows for kind in str(r["defects"]).split(";") if kind)
    return BatchSummary(
        out_dir=str(out_dir),
        count=len(rows),
        seed=seed,
        camera=camera,
        seconds=round(seconds, 3),
        cards_per_s=round(len(rows) / seconds, 1),
        grade_histogram={g: c for g, c in sorted(Counter(int(r["grade"]) for r in rows).items())},
        split_counts=dict(Counter(str(r["split"]) for r in rows)),
        defect_counts=dict(sorted(defects.items())),
    )


def detection_batch(out_dir: Path, n: int, seed: int) -> Path:
    """A studio batch of `n` cards as a detection dataset (its labels are YOLO boxes, its
    classes named in dataset.json), made once: a folder that has its dataset.json is kept."""
    if not (out_dir / "dataset.json").is_file():
        shutil.rmtree(out_dir, ignore_errors=True)
        synthesize_batch(out_dir, n=n, seed=seed, camera="studio")
        (out_dir / "dataset.json").write_text(json.dumps(
            {"task": "detect", "classes": list(DEFECT_CLASSES)}))
    return out_dir
