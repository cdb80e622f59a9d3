"""Quarantine: every rejected item lands under its reason with a reason file a person can read,
a file outside the batch is never copied, and a second attempt replaces the first."""

import csv
import json
from pathlib import Path

from components.ingest import Reason, quarantine_items
from components.ingest.model import Problem, SourceItem


def _item(item_id: str, image: str, *problems: tuple[Reason, str], **labels) -> SourceItem:
    item = SourceItem(item_id=item_id, image=image, labels=dict(labels))
    for reason, detail in problems:
        item.reject(reason, detail)
    return item


def _rejected(*items: SourceItem) -> list[tuple[SourceItem, Problem]]:
    return [(item, item.problems[0]) for item in items]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _reason_files(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.reason.json"))]


def _csv(folder: Path) -> list[dict[str, str]]:
    with (folder / "quarantine.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _batch(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(b"\xff\xd8\xff a")
    (root / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n b")
    (root / "images" / "c.jpg").write_bytes(b"\xff\xd8\xff c")
    return root


def test_each_item_is_copied_under_its_reason_with_a_reason_file(tmp_path: Path) -> None:
    root = _batch(tmp_path / "batch")
    a = _item("s-a", "images/a.jpg", (Reason.CORRUPT_IMAGE, "a.jpg: truncated JPEG"),
              (Reason.BAD_LABEL, "s-a: grade='x' is not a number"), grade="x", split="train")
    b = _item("s-b", "images/b.png", (Reason.DUPLICATE, "s-b: same bytes as s-c in this batch"))
    c = _item("s-c", "images/c.jpg", (Reason.CORRUPT_IMAGE, "c.jpg: corrupt JPEG"))
    folder = tmp_path / "quarantine" / "cards" / "batch-1"

    counts = quarantine_items(folder, root, _rejected(a, b, c))

    assert counts == {"corrupt_image": 2, "duplicate": 1}
    files = _files(folder)
    copies = {path: data for path, data in files.items()
              if not path.endswith(".reason.json") and path != "quarantine.csv"}
    assert sorted(copies.values()) == sorted(
        (root / image).read_bytes() for image in ("images/a.jpg", "images/b.png", "images/c.jpg"))
    assert {path.split("/")[0] for path in copies} == {"corrupt_image", "duplicate"}

    records = {record["item_id"]: record for record in _reason_files(folder)}
    assert set(records) == {"s-a", "s-b", "s-c"}
    record = records["s-a"]
    assert record["image"] == "images/a.jpg"
    assert record["reason"] == "corrupt_image"
    assert record["detail"] == "a.jpg: truncated JPEG"
    assert record["problems"] == [
        {"reason": "corrupt_image", "detail": "a.jpg: truncated JPEG"},
        {"reason": "bad_label", "detail": "s-a: grade='x' is not a number"}]
    assert record["labels"] == {"grade": "x", "split": "train"}
    copied = folder / "corrupt_image" / record["copied_as"]
    assert copied.read_bytes() == (root / "images" / "a.jpg").read_bytes()
    assert copied.suffix == ".jpg"
    assert (folder / "duplicate" / records["s-b"]["copied_as"]).suffix == ".png"
    for reason_file in folder.rglob("*.reason.json"):  # beside the copy it explains
        assert reason_file.parent.name == json.loads(reason_file.read_text())["reason"]


def test_quarantine_csv_has_one_row_per_item(tmp_path: Path) -> None:
    root = _batch(tmp_path / "batch")
    items = [_item("s-a", "images/a.jpg", (Reason.CORRUPT_IMAGE, "a.jpg: corrupt")),
             _item("s-b", "images/b.png", (Reason.TOO_SMALL, "b.png: 8 x 8")),
             _item("row-4", "", (Reason.UNSAFE_PATH, "row-4: image path '' leaves the batch"))]
    folder = tmp_path / "q"

    quarantine_items(folder, root, _rejected(*items))

    assert _csv(folder) == [
        {"item_id": "s-a", "image": "images/a.jpg", "reason": "corrupt_image",
         "detail": "a.jpg: corrupt"},
        {"item_id": "s-b", "image": "images/b.png", "reason": "too_small",
         "detail": "b.png: 8 x 8"},
        {"item_id": "row-4", "image": "", "reason": "unsafe_path",
         "detail": "row-4: image path '' leaves the batch"}]


def test_a_file_outside_the_batch_is_never_copied(tmp_path: Path) -> None:
    root = _batch(tmp_path / "a" / "b" / "batch")
    secret = tmp_path / "a" / "etc" / "passwd"  # where ../../etc/passwd leads from the batch
    secret.parent.mkdir()
    secret.write_bytes(b"root:x:0:0:secret\n")
    assert (root / "../../etc/passwd").resolve() == secret.resolve()
    item = _item("s-x", "../../etc/passwd", (Reason.UNSAFE_PATH, "s-x: leaves the batch"))
    folder = tmp_path / "q"

    counts = quarantine_items(folder, root, _rejected(item))

    assert counts == {"unsafe_path": 1}
    files = _files(folder)
    assert len(files) == 2 and "quarantine.csv" in files  # the csv and one reason file
    assert [p for p in files if p.startswith("unsafe_path/")][0].endswith(".reason.json")
    assert all(b"secret" not in data for data in files.values())
    record, = _reason_files(folder)
    assert record["copied_as"] is None
    assert (record["item_id"], record["image"], record["reason"]) == (
        "s-x", "../../etc/passwd", "unsafe_path")
    assert '"copied_as": null' in next(folder.rglob("*.reason.json")).read_text()


def test_a_missing_image_gets_a_reason_file_without_a_copy(tmp_path: Path) -> None:
    root = _batch(tmp_path / "batch")
    item = _item("s-gone", "images/gone.jpg", (Reason.MISSING_IMAGE, "s-gone: does not exist"))

    quarantine_items(tmp_path / "q", root, _rejected(item))

    record, = _reason_files(tmp_path / "q")
    assert record["copied_as"] is None
    kept = list(_files(tmp_path / "q" / "missing_image"))
    assert len(kept) == 1 and kept[0].endswith(".reason.json")


def test_a_second_run_replaces_the_first(tmp_path: Path) -> None:
    root = _batch(tmp_path / "batch")
    folder = tmp_path / "q"
    quarantine_items(folder, root, _rejected(
        _item("s-a", "images/a.jpg", (Reason.CORRUPT_IMAGE, "first attempt")),
        _item("s-b", "images/b.png", (Reason.DUPLICATE, "first attempt"))))
    (folder / "notes.txt").write_text("left by a person\n")

    counts = quarantine_items(folder, root, _rejected(
        _item("s-c", "images/c.jpg", (Reason.TOO_SMALL, "second attempt"))))

    assert counts == {"too_small": 1}
    assert sorted(p.name for p in folder.iterdir()) == ["quarantine.csv", "too_small"]
    assert [row["item_id"] for row in _csv(folder)] == ["s-c"]
    assert [record["detail"] for record in _reason_files(folder)] == ["second attempt"]


def test_an_empty_rejection_list_leaves_an_empty_csv(tmp_path: Path) -> None:
    root = _batch(tmp_path / "batch")

    assert quarantine_items(tmp_path / "q", root, []) == {}
    assert _files(tmp_path / "q") == {"quarantine.csv": b"item_id,image,reason,detail\r\n"}


def test_items_sharing_an_item_id_each_keep_their_reason_file_and_copy(tmp_path: Path) -> None:
    """A refused batch quarantines every item under batch_refused, and a batch with a repeated
    item_id (two manifest rows, or images/a.jpg and images/a.png read from YOLO or ImageFolder)
    has two items of one id: neither may overwrite the other's files."""
    root = _batch(tmp_path / "batch")
    refusal = Problem(Reason.BATCH_REFUSED, "manifest.csv has no grader_* column")
    first = _item("s-a", "images/a.jpg")
    second = _item("s-a", "images/c.jpg", (Reason.DUPLICATE_ITEM_ID, "s-a: a second row"))

    counts = quarantine_items(tmp_path / "q", root, [(first, refusal), (second, refusal)])

    assert counts == {"batch_refused": 2}
    assert len(_csv(tmp_path / "q")) == 2
    records = _reason_files(tmp_path / "q")
    assert sorted(record["image"] for record in records) == ["images/a.jpg", "images/c.jpg"]
    copies = [data for path, data in _files(tmp_path / "q" / "batch_refused").items()
              if not path.endswith(".reason.json")]
    assert sorted(copies) == [b"\xff\xd8\xff a", b"\xff\xd8\xff c"]
