"""Read a labeled batch from a folder in any of the formats users bring, into one `SourceBatch`.

    batch = read_batch(Path("incoming/2026-11-22"), needs_boxes=False)

| format | recognised by | labels |
| --- | --- | --- |
| manifest | `manifest.csv` (the card factory's) | its columns; boxes as yolo, masks as coco  |
| coco | a COCO JSON (CVAT: `annotations/*.json`, | boxes; masks (polygons, RLE) and severities |
|      | Label Studio: `result.json`)             | where annotated; categories                |
| yolo | `data.yaml` or `dataset.yaml` beside     | boxes or YOLO-seg outlines, names          |
|      | `images/` and `labels/`                  |                                            |
| imagefolder | one sub-folder of images per class | `label` = folder name |

Readers only describe: they record each item's problems (a path leaving the batch, an unknown
category) and never drop one; images that no label references become items too, so every file
is counted. Checking images and label values is for `checks.py`.
"""

from __future__ import annotations

import csv
import json
import posixpath
from pathlib import Path
from typing import Literal

import yaml

from components.ingest.model import Box, IngestError, Reason, SourceBatch, SourceItem
from components.vision.labels import (
    MIN_OUTLINE_POINTS,
    MaskFormatError,
    coco_outlines,
    label_path,
    outline_bounds,
    yolo_seg_outline,
)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MANIFEST = "manifest.csv"
YOLO_YAMLS = ("data.yaml", "dataset.yaml")
SPLIT_FOLDERS = frozenset({"train", "val", "valid", "calibration", "test"})
COCO_KEYS = frozenset({"images", "annotations", "categories"})
MaskNeed = Literal["ignored", "optional", "required"]


def inside(root: Path, relative: str) -> Path | None:
    """`root / relative` when that stays inside `root` (no `..`, absolute path or symlink out)."""
    if not relative or Path(relative).is_absolute() or "\\" in relative:
        return None
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def image_files(root: Path) -> list[str]:
    """Every image file under `root`, relative and sorted, hidden folders skipped."""
    return sorted(
        path.relative_to(root).as_posix() for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def detect_format(root: Path) -> str:
    """The format of the batch folder `root`; IngestError when it is none of them."""
    if not root.is_dir():
        raise IngestError(f"{root} is not a folder")
    if (root / MANIFEST).is_file():
        return "manifest"
    if _coco_file(root) is not None:
        return "coco"
    if any((root / name).is_file() for name in YOLO_YAMLS):
        return "yolo"
    if any(path.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in path.rglob("*"))
           for path in root.iterdir() if not path.name.startswith(".")):
        return "imagefolder"
    raise IngestError(
        f"{root} holds no batch: expected {MANIFEST}, a COCO JSON, {' or '.join(YOLO_YAMLS)}, "
        "or one folder of images per class")


def read_batch(root: Path, needs_boxes: bool, masks: MaskNeed = "ignored") -> SourceBatch:
    """Read the batch folder `root` in whichever format it is; boxes only when `needs_boxes`.
    A manifest's boxes come with their masks from its COCO JSON unless `masks` is "ignored";
    "required" refuses a manifest without one, "optional" reads it where there is one."""
    kind = detect_format(root)
    if kind == "manifest":
        batch = _read_manifest(root, needs_boxes, masks)
    else:
        reader = {"coco": _read_coco, "yolo": _read_yolo, "imagefolder": _read_imagefolder}[kind]
        batch = reader(root)
    _add_unreferenced(batch)
    _resolve_paths(batch)
    return batch


def _resolve_paths(batch: SourceBatch) -> None:
    """Set each item's `path`, or record that its image path leaves the batch."""
    for item in batch.items:
        item.path = inside(batch.root, item.image)
        if item.path is None:
            item.reject(Reason.UNSAFE_PATH,
                        f"{item.item_id}: image path {item.image!r} leaves the batch folder")


def _add_unreferenced(batch: SourceBatch) -> None:
    """Images in the folder that no label names: counted and quarantined, never ignored."""
    referenced = {posixpath.normpath(item.image) for item in batch.items if item.image}
    for relative in image_files(batch.root):
        if relative not in referenced:
            item = SourceItem(item_id=relative, image=relative)
            item.reject(Reason.NOT_IN_MANIFEST,
                        f"{relative} is in the folder but no label names it")
            batch.items.append(item)


def _yolo_names(root: Path) -> tuple[str, ...]:
    for name in YOLO_YAMLS:
        if (root / name).is_file():
            names = (yaml.safe_load((root / name).read_text()) or {}).get("names")
            if isinstance(names, dict):
                return tuple(str(names[key]) for key in sorted(names))
            if isinstance(names, list):
                return tuple(str(n) for n in names)
            raise IngestError(f"{root / name} has no `names` list of classes")
    raise IngestError(f"{root} has boxes but no {' or '.join(YOLO_YAMLS)} naming their classes")


def _yolo_box(fields: list[str], names: tuple[str, ...]) -> Box | None:
    """The box of one YOLO line (a box, or a YOLO-seg outline with its bounds as the box);
    None when its class id is not among `names`."""
    class_id = int(fields[0])
    if len(fields) == 5:
        cx, cy, w, h = (float(value) for value in fields[1:])
        corners, outline = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), ()
    elif len(fields) >= 1 + 2 * MIN_OUTLINE_POINTS:
        outline = yolo_seg_outline(fields[1:])
        corners = outline_bounds(outline)
    else:
        raise ValueError(f"{len(fields) - 1} coordinates")
    if not 0 <= class_id < len(names):
        return None
    return Box(names[class_id], *corners, outline=outline)


def _read_yolo_labels(root: Path, item: SourceItem, names: tuple[str, ...]) -> None:
    """Fill `item.boxes` from its YOLO label file; no file means an image without objects."""
    path = label_path(root, item.image)
    item.boxes = []
    if not path.is_file():
        return
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            box = _yolo_box(fields, names)
        except (ValueError, MaskFormatError):
            item.reject(Reason.BAD_LABEL, f"{item.item_id}: {path.name} line {number} is neither "
                        f"`class cx cy w h` nor `class x1 y1 x2 y2 x3 y3 ...`: {line.strip()!r}")
            continue
        if box is None:
            item.reject(Reason.UNKNOWN_CLASS, f"{item.item_id}: {path.name} line {number} has "
                        f"class {fields[0]}; known are 0..{len(names) - 1}")
            continue
        item.boxes.append(box)


def _read_manifest(root: Path, needs_boxes: bool, masks: MaskNeed) -> SourceBatch:
    with (root / MANIFEST).open(newline="", encoding="utf-8-sig") as handle:  # Excel's BOM
        reader = csv.DictReader(handle)
        columns = tuple(reader.fieldnames or ())
        rows = list(reader)
    refusals = [f"{MANIFEST} has no {column!r} column" for column in ("item_id", "image_path")
                if column not in columns]
    annotations = _coco_file(root) if masks != "ignored" else None
    if masks == "required" and annotations is None:
        refusals.append(f"{MANIFEST} names images but no COCO JSON beside it (annotations/"
                        "*.json) gives their masks")
    annotated = _read_coco_file(root, annotations) if annotations is not None else None
    names = (annotated.classes if annotated is not None
             else _yolo_names(root) if needs_boxes else ())
    needs_boxes = needs_boxes or annotated is not None
    by_image = {posixpath.normpath(item.image): item for item in
                (annotated.items if annotated is not None else ())}
    items = []
    for number, row in enumerate(rows, start=2):
        labels = {key: value for key, value in row.items() if key not in ("item_id", "image_path")}
        item = SourceItem(item_id=(row.get("item_id") or "").strip() or f"row-{number}",
                          image=(row.get("image_path") or "").strip(), labels=labels)
        if needs_boxes and inside(root, item.image) is not None:
            if annotated is None:
                _read_yolo_labels(root, item, names)
            else:  # an image without annotations has no defects
                described = by_image.get(posixpath.normpath(item.image))
                item.boxes = described.boxes if described is not None else []
                item.problems.extend(described.problems if described is not None else ())
        items.append(item)
    refusals += annotated.refusals if annotated is not None else []
    return SourceBatch(root=root, format="manifest", items=items, classes=names,
                       refusals=refusals, columns=columns)


def _read_yolo(root: Path) -> SourceBatch:
    names = _yolo_names(root)
    items = []
    for relative in image_files(root):
        item = SourceItem(item_id=Path(relative).with_suffix("").as_posix(), image=relative)
        split = next((part for part in Path(relative).parts if part in SPLIT_FOLDERS), None)
        if split is not None:
            item.labels["split"] = "val" if split == "valid" else split
        _read_yolo_labels(root, item, names)
        items.append(item)
    return SourceBatch(root=root, format="yolo", items=items, classes=names)


def _read_imagefolder(root: Path) -> SourceBatch:
    items = []
    for relative in image_files(root):
        parts = Path(relative).parts
        split = parts[0] if len(parts) > 2 and parts[0] in SPLIT_FOLDERS else None
        label_parts = parts[1:] if split else parts
        item = SourceItem(item_id=Path(relative).with_suffix("").as_posix(), image=relative)
        if len(label_parts) < 2:
            item.reject(Reason.MISSING_LABEL, f"{relative} is not inside a class folder")
        else:
            item.labels["label"] = label_parts[0]
        if split:
            item.labels["split"] = "val" if split == "valid" else split
        items.append(item)
    classes = tuple(sorted({str(i.labels["label"]) for i in items if "label" in i.labels}))
    return SourceBatch(root=root, format="imagefolder", items=items, classes=classes)


def _coco_file(root: Path) -> Path | None:
    """The COCO JSON of a folder: at its top (Label Studio) or in annotations/ (CVAT)."""
    for path in sorted([*root.glob("*.json"), *root.glob("annotations/*.json")]):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.keys() >= COCO_KEYS:
            return path
    return None


def _coco_image_path(root: Path, file_name: str) -> str:
    """Where an exported image lies: CVAT names it relative to images/, Label Studio to the root."""
    for candidate in (file_name, f"images/{file_name}"):
        path = inside(root, candidate)
        if path is not None and path.is_file():
            return candidate
    return file_name


def _coco_severity(annotation: dict, item: SourceItem) -> float | None:
    """A region's severity: CVAT exports it among `attributes`, other tools beside the box."""
    attributes = annotation.get("attributes")
    value = (attributes if isinstance(attributes, dict) else annotation).get("severity")
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        item.reject(Reason.BAD_LABEL, f"{item.item_id}: annotation {annotation.get('id')} has "
                    f"severity {value!r}, not a number")
        return None


def _coco_boxes(annotation: dict, item: SourceItem, name: str,
                size: tuple[float, float]) -> list[Box]:
    """The boxes of one COCO annotation: its bbox, or one per outline part of its
    `segmentation` (each with the part's own bounds when there are several)."""
    width, height = size
    x, y, w, h = (float(v) for v in annotation.get("bbox") or (0, 0, 0, 0))
    corners = (x / width, y / height, (x + w) / width, (y + h) / height)
    segmentation = annotation.get("segmentation")
    if not segmentation:
        return [Box(name, *corners)]
    try:
        outlines = coco_outlines(segmentation, width, height)
    except MaskFormatError as error:
        item.reject(Reason.BAD_LABEL, f"{item.item_id}: annotation {annotation.get('id')}: {error}")
        return []
    severity = _coco_severity(annotation, item)
    return [Box(name, *(corners if len(outlines) == 1 or not outline
                        else outline_bounds(outline)), outline=outline, severity=severity)
            for outline in outlines]


def _read_coco_file(root: Path, path: Path) -> SourceBatch:
    """Items of one COCO JSON, with boxes and, where annotated, outlines and severities."""
    document = json.loads(path.read_text())
    categories = {c["id"]: str(c["name"]) for c in document["categories"]}
    items: dict[object, SourceItem] = {}
    sizes: dict[object, tuple[float, float]] = {}
    refusals: list[str] = []
    for image in document["images"]:
        file_name = str(image.get("file_name", ""))
        item = SourceItem(item_id=Path(file_name).with_suffix("").as_posix(),
                          image=_coco_image_path(root, file_name), boxes=[])
        items[image["id"]] = item
        sizes[image["id"]] = (float(image.get("width") or 0), float(image.get("height") or 0))
    for annotation in document["annotations"]:
        item = items.get(annotation.get("image_id"))
        if item is None:
            refusals.append(f"{path.name}: annotation {annotation.get('id')} refers to image id "
                            f"{annotation.get('image_id')}, which is not in `images`")
            continue
        name = categories.get(annotation.get("category_id"))
        if name is None:
            item.reject(Reason.UNKNOWN_CLASS, f"{item.item_id}: annotation {annotation.get('id')} "
                        f"has category {annotation.get('category_id')}, not in `categories`")
            continue
        size = sizes[annotation["image_id"]]
        if min(size) <= 0:
            item.reject(Reason.BAD_LABEL,
                        f"{item.item_id}: image has no width/height in {path.name}")
            continue
        item.boxes.extend(_coco_boxes(annotation, item, name, size))
    return SourceBatch(root=root, format="coco", items=list(items.values()),
                       classes=tuple(categories[k] for k in sorted(categories)), refusals=refusals)


def _read_coco(root: Path) -> SourceBatch:
    path = _coco_file(root)
    assert path is not None  # detect_format found it
    return _read_coco_file(root, path)
