"""Batch formats: a manifest, an ImageFolder tree, a YOLO folder and COCO JSON from CVAT and
Label Studio all read into items, every file in the folder becomes an item (nothing silently
dropped), and what a reader cannot make sense of is recorded on the item or the batch."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from components.cards import synthesize_batch
from components.ingest import IngestError, Reason, detect_format, read_batch
from components.ingest.model import Box
from components.vision.rubric import DEFECT_CLASSES


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A factory batch: manifest.csv, images/*.jpg, labels/*.txt, dataset.yaml. Read only."""
    out = tmp_path_factory.mktemp("ingest-formats") / "batch"
    synthesize_batch(out, n=12, seed=5, camera="studio", workers=1)
    return out


@pytest.fixture
def batch(factory: Path, tmp_path: Path) -> Path:
    """A copy of the factory batch that a test may edit."""
    return Path(shutil.copytree(factory, tmp_path / "batch"))


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(root: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> None:
    columns = columns or list(rows[0])
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _reasons(item) -> list[Reason]:
    return [problem.reason for problem in item.problems]


def _by_id(batch) -> dict:
    return {item.item_id: item for item in batch.items}


def _images(factory: Path) -> list[Path]:
    return sorted((factory / "images").iterdir())


def _put(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _label_lines(root: Path, item_id: str) -> list[str]:
    return (root / "labels" / f"{item_id}.txt").read_text().splitlines()


def _assert_box(box: Box, name: str, corners: tuple[float, float, float, float]) -> None:
    assert box.class_name == name
    assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx(corners, abs=1e-6)


# --- manifest ----------------------------------------------------------------------------


def test_a_factory_folder_reads_as_a_manifest_one_item_per_row(factory: Path) -> None:
    rows = _rows(factory)

    read = read_batch(factory, needs_boxes=False)

    assert detect_format(factory) == read.format == "manifest"
    assert read.root == factory
    assert [(i.item_id, i.image) for i in read.items] == [
        (r["item_id"], r["image_path"]) for r in rows]
    assert all(item.ok and item.boxes is None for item in read.items)
    assert read.refusals == [] and read.classes == ()
    assert read.columns == tuple(rows[0])
    first = read.items[0]
    assert first.labels["grade"] == rows[0]["grade"]  # raw text; the task types it
    assert "item_id" not in first.labels and "image_path" not in first.labels


def test_manifest_boxes_come_from_the_label_files(factory: Path) -> None:
    read = read_batch(factory, needs_boxes=True)

    assert read.classes == tuple(DEFECT_CLASSES)
    assert all(item.ok for item in read.items)
    with_boxes = 0
    for item in read.items:
        lines = (factory / "labels" / f"{item.item_id}.txt").read_text().split("\n")
        lines = [line.split() for line in lines if line.strip()]
        assert item.boxes is not None and len(item.boxes) == len(lines), item.item_id
        for fields, box in zip(lines, item.boxes, strict=True):
            class_id, cx, cy, w, h = int(fields[0]), *map(float, fields[1:])
            _assert_box(box, DEFECT_CLASSES[class_id],
                        (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        with_boxes += bool(lines)
    assert with_boxes > 0


def test_a_manifest_path_leaving_the_folder_is_unsafe(batch: Path) -> None:
    rows = _rows(batch)
    original = rows[0]["image_path"]
    rows[0]["image_path"] = "../../etc/passwd"
    _write_rows(batch, rows)

    read = read_batch(batch, needs_boxes=True)

    unsafe = read.items[0]
    assert unsafe.image == "../../etc/passwd"
    assert _reasons(unsafe) == [Reason.UNSAFE_PATH]
    assert "../../etc/passwd" in unsafe.problems[0].detail
    assert unsafe.boxes is None  # no label file is looked up outside the batch either
    # The image the row used to name is still counted, as an item nobody labeled.
    orphan = _by_id(read)[original]
    assert _reasons(orphan) == [Reason.NOT_IN_MANIFEST]
    assert len(read.items) == len(rows) + 1
    assert all(item.ok for item in read.items[1:len(rows)])


def test_an_image_the_manifest_does_not_name_becomes_an_item(batch: Path) -> None:
    shutil.copyfile(_images(batch)[0], batch / "images" / "stray.jpg")

    read = read_batch(batch, needs_boxes=False)

    assert len(read.items) == len(_rows(batch)) + 1
    stray = read.items[-1]
    assert (stray.item_id, stray.image) == ("images/stray.jpg", "images/stray.jpg")
    assert _reasons(stray) == [Reason.NOT_IN_MANIFEST]
    assert all(item.ok for item in read.items[:-1])


def test_a_manifest_path_spelled_with_dot_slash_names_the_same_file(batch: Path) -> None:
    """`./images/x.jpg` is the file `images/x.jpg`: counting it twice (once as the row, once as
    an image no label names) would quarantine a labeled file and inflate the batch."""
    rows = _rows(batch)
    rows[0]["image_path"] = "./" + rows[0]["image_path"]
    _write_rows(batch, rows)

    read = read_batch(batch, needs_boxes=False)

    assert read.items[0].ok
    assert len(read.items) == len(rows)
    assert [i for i in read.items if Reason.NOT_IN_MANIFEST in _reasons(i)] == []


def test_a_manifest_without_an_image_path_column_is_refused(batch: Path) -> None:
    rows = _rows(batch)
    _write_rows(batch, rows, [column for column in rows[0] if column != "image_path"])

    read = read_batch(batch, needs_boxes=False)

    assert any("'image_path'" in refusal for refusal in read.refusals)
    assert not any("'item_id'" in refusal for refusal in read.refusals)
    # Every image in the folder is still an item, none dropped.
    on_disk = {f"images/{p.name}" for p in (batch / "images").iterdir()}
    assert on_disk <= {item.image for item in read.items}
    assert not any(item.ok for item in read.items)


# --- ImageFolder -------------------------------------------------------------------------


def test_an_imagefolder_tree_is_labeled_by_its_folders(factory: Path, tmp_path: Path) -> None:
    images = _images(factory)
    root = tmp_path / "fruit"
    _put(images[0], root / "unripe" / "u1.jpg")
    _put(images[1], root / "ripe" / "r1.jpg")
    _put(images[2], root / "ripe" / "r2.jpg")

    read = read_batch(root, needs_boxes=False)

    assert detect_format(root) == read.format == "imagefolder"
    assert read.classes == ("ripe", "unripe")
    assert {i.item_id: (i.image, i.labels["label"]) for i in read.items} == {
        "ripe/r1": ("ripe/r1.jpg", "ripe"), "ripe/r2": ("ripe/r2.jpg", "ripe"),
        "unripe/u1": ("unripe/u1.jpg", "unripe")}
    assert all(item.ok and item.boxes is None for item in read.items)


# --- YOLO --------------------------------------------------------------------------------


@pytest.fixture
def yolo(factory: Path, tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    for image, stem in zip(_images(factory), ("a", "b", "c", "d"), strict=False):
        _put(image, root / "images" / f"{stem}.jpg")
    (root / "data.yaml").write_text("names: [scratch, dent]\n")
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.25 0.75 0.1 0.1\n")
    (root / "labels" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "c.txt").write_text("0 0.5 0.5\n")
    return root  # d has no label file: an image without objects


def test_a_yolo_folder_reads_boxes_as_corner_fractions(yolo: Path) -> None:
    read = read_batch(yolo, needs_boxes=True)

    assert detect_format(yolo) == read.format == "yolo"
    assert read.classes == ("scratch", "dent")
    items = _by_id(read)
    assert set(items) == {"images/a", "images/b", "images/c", "images/d"}
    a = items["images/a"]
    assert a.ok and a.image == "images/a.jpg" and len(a.boxes) == 2
    _assert_box(a.boxes[0], "dent", (0.4, 0.3, 0.6, 0.7))
    _assert_box(a.boxes[1], "scratch", (0.2, 0.7, 0.3, 0.8))
    assert items["images/d"].ok and items["images/d"].boxes == []


def test_a_yolo_class_id_out_of_range_is_an_unknown_class(yolo: Path) -> None:
    b = _by_id(read_batch(yolo, needs_boxes=True))["images/b"]

    assert _reasons(b) == [Reason.UNKNOWN_CLASS]
    assert "line 2" in b.problems[0].detail and "class 5" in b.problems[0].detail
    assert [box.class_name for box in b.boxes] == ["scratch"]  # the good line is kept


def test_a_malformed_yolo_line_is_a_bad_label(yolo: Path) -> None:
    c = _by_id(read_batch(yolo, needs_boxes=True))["images/c"]

    assert _reasons(c) == [Reason.BAD_LABEL]
    assert "'0 0.5 0.5'" in c.problems[0].detail
    assert c.boxes == []


# --- COCO --------------------------------------------------------------------------------


def _coco(file_names: list[str], categories: list[tuple[int, str]],
          annotations: list[tuple[int, int, list[float]]]) -> dict:
    """A COCO document; images get ids from 1 and the factory size 320 x 448; annotations are
    (image_id, category_id, [x, y, w, h] in pixels)."""
    return {
        "images": [{"id": i, "file_name": name, "width": 320, "height": 448}
                   for i, name in enumerate(file_names, start=1)],
        "categories": [{"id": cid, "name": name, "supercategory": ""} for cid, name in categories],
        "annotations": [{"id": n, "image_id": image_id, "category_id": cid, "bbox": bbox,
                         "area": bbox[2] * bbox[3], "iscrowd": 0}
                        for n, (image_id, cid, bbox) in enumerate(annotations, start=1)],
    }


@pytest.fixture
def cvat(factory: Path, tmp_path: Path) -> Path:
    """As CVAT exports COCO 1.0: annotations/instances_default.json, file names relative to
    images/, ids from 1."""
    root = tmp_path / "cvat"
    for image, stem in zip(_images(factory), ("a", "b"), strict=False):
        _put(image, root / "images" / f"{stem}.jpg")
    (root / "annotations").mkdir()
    return root


def _write_cvat(root: Path, annotations: list[tuple[int, int, list[float]]]) -> None:
    document = _coco(["a.jpg", "b.jpg"], [(1, "scratch"), (2, "dent")], annotations)
    (root / "annotations" / "instances_default.json").write_text(json.dumps(document))


def test_a_cvat_coco_export_reads_boxes_normalised_by_image_size(cvat: Path) -> None:
    _write_cvat(cvat, [(1, 2, [32, 44.8, 64, 89.6]), (1, 1, [0, 0, 320, 448])])

    read = read_batch(cvat, needs_boxes=True)

    assert detect_format(cvat) == read.format == "coco"
    assert read.classes == ("scratch", "dent") and read.refusals == []
    assert [(i.item_id, i.image) for i in read.items] == [("a", "images/a.jpg"),
                                                         ("b", "images/b.jpg")]
    a, b = read.items
    assert a.ok and b.ok and b.boxes == []
    _assert_box(a.boxes[0], "dent", (0.1, 0.1, 0.3, 0.3))
    _assert_box(a.boxes[1], "scratch", (0.0, 0.0, 1.0, 1.0))


def test_a_label_studio_coco_export_reads_the_same(factory: Path, tmp_path: Path) -> None:
    """Label Studio: result.json at the root, file names relative to it, categories from 0."""
    root = tmp_path / "label-studio"
    for image, stem in zip(_images(factory), ("a", "b"), strict=False):
        _put(image, root / "images" / f"{stem}.jpg")
    document = _coco(["images/a.jpg", "images/b.jpg"], [(0, "scratch"), (1, "dent")],
                     [(2, 0, [160, 224, 32, 44.8])])
    (root / "result.json").write_text(json.dumps(document))

    read = read_batch(root, needs_boxes=True)

    assert read.format == "coco" and read.classes == ("scratch", "dent")
    assert [i.image for i in read.items] == ["images/a.jpg", "images/b.jpg"]
    a, b = read.items
    assert a.ok and a.boxes == [] and b.ok
    _assert_box(b.boxes[0], "scratch", (0.5, 0.5, 0.6, 0.6))


def test_a_coco_annotation_of_an_unknown_category_rejects_its_item(cvat: Path) -> None:
    _write_cvat(cvat, [(1, 1, [0, 0, 10, 10]), (2, 7, [0, 0, 10, 10])])

    a, b = read_batch(cvat, needs_boxes=True).items

    assert a.ok and len(a.boxes) == 1
    assert _reasons(b) == [Reason.UNKNOWN_CLASS]
    assert "category 7" in b.problems[0].detail


def test_a_coco_annotation_of_a_missing_image_refuses_the_batch(cvat: Path) -> None:
    _write_cvat(cvat, [(1, 1, [0, 0, 10, 10]), (99, 1, [0, 0, 10, 10])])

    read = read_batch(cvat, needs_boxes=True)

    assert len(read.refusals) == 1 and "image id 99" in read.refusals[0]
    assert len(read.items) == 2


def test_an_image_the_coco_json_does_not_list_becomes_an_item(cvat: Path) -> None:
    _write_cvat(cvat, [])
    shutil.copyfile(cvat / "images" / "a.jpg", cvat / "images" / "c.jpg")

    read = read_batch(cvat, needs_boxes=True)

    assert [i.image for i in read.items] == ["images/a.jpg", "images/b.jpg", "images/c.jpg"]
    assert _reasons(read.items[2]) == [Reason.NOT_IN_MANIFEST]


def test_coco_masks_read_as_outlines_with_their_severity(cvat: Path) -> None:
    """CVAT writes polygons in pixels and a severity attribute; an RLE mask reads the same."""
    document = _coco(["a.jpg", "b.jpg"], [(1, "scratch"), (2, "dent")],
                     [(1, 1, [32, 44.8, 32, 44.8]), (2, 2, [0, 0, 9, 7])])
    document["annotations"][0].update(
        segmentation=[[32, 44.8, 64, 44.8, 64, 89.6]], attributes={"severity": 0.35})
    document["annotations"][1].update(
        segmentation={"size": [448, 320], "counts": [448 * 2 + 10, 20, 448 - 20, 20]})
    (cvat / "annotations" / "instances_default.json").write_text(json.dumps(document))

    a, b = read_batch(cvat, needs_boxes=True).items

    assert a.ok and b.ok
    (scratch,), (dent,) = a.boxes, b.boxes
    _assert_box(scratch, "scratch", (0.1, 0.1, 0.2, 0.2))
    assert scratch.severity == 0.35 and len(scratch.outline) == 3
    assert dent.severity is None and len(dent.outline) >= 4
    assert min(x for x, _ in dent.outline) == pytest.approx(2.5 / 320)
    assert max(y for _, y in dent.outline) == pytest.approx(29.5 / 448)


def test_a_coco_mask_that_cannot_be_read_is_a_bad_label(cvat: Path) -> None:
    document = _coco(["a.jpg", "b.jpg"], [(1, "scratch")], [(1, 1, [0, 0, 10, 10])] * 2)
    document["annotations"][0]["segmentation"] = [[1, 2, 3]]
    document["annotations"][1]["attributes"] = {"severity": "deep"}
    document["annotations"][1]["segmentation"] = [[1, 2, 3, 2, 3, 4]]
    (cvat / "annotations" / "instances_default.json").write_text(json.dumps(document))

    a, _ = read_batch(cvat, needs_boxes=True).items

    assert _reasons(a) == [Reason.BAD_LABEL, Reason.BAD_LABEL]
    assert "x, y pairs" in a.problems[0].detail and "'deep'" in a.problems[1].detail


def test_a_yolo_seg_line_reads_as_an_outline_with_its_bounds_as_the_box(yolo: Path) -> None:
    (yolo / "labels" / "a.txt").write_text("0 0.1 0.2 0.5 0.2 0.3 0.6 0.1 0.5\n1 0.1 0.2 0.5\n")

    a = _by_id(read_batch(yolo, needs_boxes=True))["images/a"]

    assert _reasons(a) == [Reason.BAD_LABEL]  # three coordinates are neither box nor outline
    (box,) = a.boxes
    _assert_box(box, "scratch", (0.1, 0.2, 0.5, 0.6))
    assert box.outline == ((0.1, 0.2), (0.5, 0.2), (0.3, 0.6), (0.1, 0.5))


def test_a_factory_batch_gives_each_defect_its_mask_and_severity(factory: Path) -> None:
    severities = {row["item_id"]: float(row["surface_severity"]) for row in _rows(factory)}

    read = read_batch(factory, needs_boxes=True, masks="required")

    assert read.refusals == [] and read.classes == DEFECT_CLASSES
    for item in read.items:
        labeled = [DEFECT_CLASSES[int(line.split()[0])]
                   for line in _label_lines(factory, item.item_id)]
        assert item.ok and len(item.boxes) >= len(labeled)  # a mask may come in parts
        assert {box.class_name for box in item.boxes} == set(labeled)
        for box in item.boxes:
            x0, y0, x1, y1 = (box.x0, box.y0, box.x1, box.y1)
            assert len(box.outline) >= 3 and 0 < box.severity <= 1
            assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in box.outline)
        worst_surface = max((b.severity for b in item.boxes if b.class_name not in
                             ("corner_wear", "edge_whitening")), default=0.0)
        assert worst_surface == pytest.approx(severities[item.item_id], abs=1e-3)


def test_a_manifest_without_masks_is_refused_when_masks_are_needed(batch: Path) -> None:
    shutil.rmtree(batch / "annotations")

    read = read_batch(batch, needs_boxes=True, masks="required")

    assert len(read.refusals) == 1 and "no COCO JSON" in read.refusals[0]


# --- nothing to read ---------------------------------------------------------------------


def test_a_folder_with_nothing_recognisable_is_an_ingest_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "empty").mkdir()

    for call in (detect_format, lambda root: read_batch(root, needs_boxes=False)):
        with pytest.raises(IngestError) as refused:
            call(tmp_path)
        message = str(refused.value)
        assert str(tmp_path) in message
        for expected in ("manifest.csv", "COCO JSON", "data.yaml", "folder of images per class"):
            assert expected in message


def test_a_path_that_is_no_folder_is_an_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="is not a folder"):
        detect_format(tmp_path / "missing")
