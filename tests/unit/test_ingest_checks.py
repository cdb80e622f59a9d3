"""Item checks: each broken rule sends its item to quarantine under the reason that names it,
the rest stay candidates, and every received item is accounted for exactly once. Duplicate
finding is also tested on its own, with hand-made fingerprints."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.cards import synthesize_batch
from components.ingest import (
    TASKS,
    AcceptedIndex,
    ImageLimits,
    Reason,
    check_batch,
    check_image,
    read_batch,
)
from components.ingest.duplicates import _ROWS_PER_BLOCK as ROWS_PER_BLOCK
from components.ingest.duplicates import Fingerprints, find_duplicates
from tests.batches import read_rows, write_rows

LIMITS = ImageLimits()
MAX_BITS = 20


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A factory batch (grades, graders, boxes); read only, tests edit a copy."""
    out = tmp_path_factory.mktemp("ingest-checks") / "batch"
    synthesize_batch(out, n=12, seed=7, camera="studio", workers=1)
    return out


@pytest.fixture
def batch(factory: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(factory, tmp_path / "batch"))


def _put(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _check(root: Path, task: str, accepted: AcceptedIndex | None = None, unreadable=None):
    """Read and check the batch at `root`, and hold it to the reconciliation invariant."""
    kind = TASKS[task]
    checked = check_batch(read_batch(root, kind.needs_boxes, kind.masks), kind,
                          accepted or AcceptedIndex(), LIMITS, max_bits=MAX_BITS,
                          unreadable=unreadable, workers=1)
    assert len(checked.candidates) + len(checked.rejected) == checked.received
    assert checked.received == len(checked.batch.items)
    table = checked.items_table()
    assert len(table) == checked.received
    assert list(table["item_id"]) == [item.item_id for item in checked.batch.items]
    assert int(table["quarantined"].sum()) == len(checked.rejected)
    assert sorted(table.loc[table["quarantined"], "reason"]) == sorted(
        problem.reason.value for _, problem in checked.rejected)
    return checked


def _rejected(checked) -> dict[str, Reason]:
    return {item.item_id: problem.reason for item, problem in checked.rejected}


def _candidate_ids(checked) -> list[str]:
    return [item.item_id for item, _ in checked.candidates]


# --- a clean batch -----------------------------------------------------------------------


def test_a_clean_factory_batch_is_all_candidates_with_typed_grades(batch: Path) -> None:
    rows = read_rows(batch)

    checked = _check(batch, "grade")

    assert checked.refusals == [] and checked.rejected == []
    assert _candidate_ids(checked) == [row["item_id"] for row in rows]
    item, facts = checked.candidates[0]
    assert item.labels["grade"] == int(rows[0]["grade"]) and item.labels["grader_1"] >= 1
    assert isinstance(item.labels["centering_lr"], float)
    assert facts.sha256 == rows[0]["sha256"]
    table = checked.candidates_table()
    assert len(table) == len(rows) and {"grade", "sha256", "phash", "brightness"} <= set(table)


# --- grade labels ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "reason"),
    [
        ("11", Reason.LABEL_OUT_OF_RANGE),
        ("0", Reason.LABEL_OUT_OF_RANGE),
        ("nan", Reason.MISSING_LABEL),
        ("", Reason.MISSING_LABEL),
        ("7.5", Reason.BAD_LABEL),
        ("abc", Reason.BAD_LABEL),
    ],
)
def test_a_bad_grade_rejects_only_its_item(batch: Path, grade: str, reason: Reason) -> None:
    rows = read_rows(batch)
    rows[3]["grade"] = grade
    write_rows(batch, rows)

    checked = _check(batch, "grade")

    assert _rejected(checked) == {rows[3]["item_id"]: reason}
    (_, problem), = checked.rejected
    assert problem.detail.startswith(f"{rows[3]['item_id']}: grade")
    assert len(checked.candidates) == len(rows) - 1


def test_a_bad_grader_grade_rejects_its_item(batch: Path) -> None:
    rows = read_rows(batch)
    rows[2]["grader_2"] = "12"
    write_rows(batch, rows)

    checked = _check(batch, "grade")

    assert _rejected(checked) == {rows[2]["item_id"]: Reason.LABEL_OUT_OF_RANGE}
    assert "grader_2" in checked.rejected[0][1].detail


def test_a_repeated_item_id_rejects_the_second_row_only(batch: Path) -> None:
    rows = read_rows(batch)
    write_rows(batch, [*rows, dict(rows[0])])

    checked = _check(batch, "grade")

    first, second = checked.batch.items[0], checked.batch.items[-1]
    assert first.item_id == second.item_id == rows[0]["item_id"]
    assert first.ok and first in [item for item, _ in checked.candidates]
    assert [(item is second, problem.reason) for item, problem in checked.rejected] == [
        (True, Reason.DUPLICATE_ITEM_ID)]
    assert checked.facts[-1] is None  # its image is not checked again


def test_an_item_id_already_in_the_dataset_is_rejected(batch: Path) -> None:
    taken = read_rows(batch)[5]["item_id"]

    checked = _check(batch, "grade", AcceptedIndex(item_ids=frozenset({taken})))

    assert _rejected(checked) == {taken: Reason.DUPLICATE_ITEM_ID}


def test_a_manifest_without_grader_columns_refuses_every_item(batch: Path) -> None:
    rows = read_rows(batch)
    write_rows(batch, rows, [column for column in rows[0] if not column.startswith("grader_")])

    checked = _check(batch, "grade")

    assert any("grader" in refusal for refusal in checked.refusals)
    assert checked.candidates == []
    assert len(checked.rejected) == checked.received == len(rows)
    assert {problem.reason for _, problem in checked.rejected} == {Reason.BATCH_REFUSED}
    assert "grader" in checked.rejected[0][1].detail
    assert set(checked.items_table()["reason"]) == {"batch_refused"}


def test_a_grade_task_refuses_a_batch_without_a_manifest(factory: Path, tmp_path: Path) -> None:
    first = read_rows(factory)[0]["item_id"]
    _put(factory / "images" / f"{first}.jpg", tmp_path / "b" / "9" / "a.jpg")

    checked = _check(tmp_path / "b", "grade")

    assert checked.refusals and "imagefolder" in checked.refusals[0]
    assert [problem.reason for _, problem in checked.rejected] == [Reason.BATCH_REFUSED]


# --- detect and classify labels ----------------------------------------------------------


def test_a_box_beyond_the_image_edge_is_outside_the_image(batch: Path) -> None:
    item_id = read_rows(batch)[4]["item_id"]
    with (batch / "labels" / f"{item_id}.txt").open("a") as handle:
        handle.write("0 0.99 0.5 0.1 0.1\n")  # x1 = 1.04

    checked = _check(batch, "detect")

    assert checked.refusals == []
    assert _rejected(checked) == {item_id: Reason.BOX_OUTSIDE_IMAGE}
    assert any(item.boxes for item, _ in checked.candidates)


def test_a_class_the_dataset_does_not_know_is_unknown(factory: Path, tmp_path: Path) -> None:
    images = sorted((factory / "images").iterdir())
    root = tmp_path / "fruit"
    for image, target in zip(images, ("ripe/a.jpg", "unripe/b.jpg", "rotten/c.jpg"), strict=False):
        _put(image, root / target)

    checked = _check(root, "classify", AcceptedIndex(classes=("ripe", "unripe")))

    assert checked.classes == ("ripe", "unripe")
    assert _rejected(checked) == {"rotten/c": Reason.UNKNOWN_CLASS}
    assert _candidate_ids(checked) == ["ripe/a", "unripe/b"]


# --- segment labels ----------------------------------------------------------------------


def _edit_annotations(batch: Path, edit) -> str:
    """Apply `edit` to the first annotation of the factory's COCO file; its item's id."""
    path = batch / "annotations" / "instances.json"
    document = json.loads(path.read_text())
    first = document["annotations"][0]
    edit(first)
    path.write_text(json.dumps(document))
    image = next(i for i in document["images"] if i["id"] == first["image_id"])
    return Path(image["file_name"]).stem


def test_a_factory_batch_passes_the_segment_checks_with_every_mask(batch: Path) -> None:
    checked = _check(batch, "segment")

    assert checked.refusals == [] and checked.rejected == []
    regions = [box for item, _ in checked.candidates for box in item.boxes]
    assert regions and all(len(box.outline) >= 3 and box.severity is not None
                           for box in regions)


def test_a_region_without_a_mask_is_missing_its_mask(batch: Path) -> None:
    item_id = _edit_annotations(batch, lambda annotation: annotation.pop("segmentation"))

    assert _rejected(_check(batch, "segment")) == {item_id: Reason.MISSING_MASK}


def test_a_mask_reaching_beyond_the_image_is_outside_it(batch: Path) -> None:
    def stretch(annotation: dict) -> None:
        annotation["segmentation"][0][:2] = [400.0, 10.0]  # the photo is 320 wide

    item_id = _edit_annotations(batch, stretch)

    checked = _check(batch, "segment")

    assert _rejected(checked) == {item_id: Reason.MASK_OUTSIDE_IMAGE}
    assert "(1.250, 0.022)" in checked.rejected[0][1].detail


def test_a_severity_beyond_one_is_out_of_range(batch: Path) -> None:
    item_id = _edit_annotations(batch, lambda a: a.update(attributes={"severity": 1.5}))

    checked = _check(batch, "segment")

    assert _rejected(checked) == {item_id: Reason.LABEL_OUT_OF_RANGE}
    assert "severity 1.5" in checked.rejected[0][1].detail


# --- duplicates and identity -------------------------------------------------------------


def test_an_exact_copy_under_another_name_is_a_duplicate(batch: Path) -> None:
    rows = read_rows(batch)
    copy = dict(rows[0], item_id="copy-of-first", image_path="images/copy-of-first.jpg")
    shutil.copyfile(batch / rows[0]["image_path"], batch / copy["image_path"])
    write_rows(batch, [*rows, copy])

    checked = _check(batch, "grade")

    assert _rejected(checked) == {"copy-of-first": Reason.DUPLICATE}
    assert rows[0]["item_id"] in checked.rejected[0][1].detail
    assert rows[0]["item_id"] in _candidate_ids(checked)  # the first occurrence stays


def test_an_image_already_in_the_dataset_is_already_accepted(batch: Path) -> None:
    rows = read_rows(batch)
    facts = check_image(batch / rows[6]["image_path"], LIMITS)
    accepted = AcceptedIndex(fingerprints=Fingerprints(["old-item"], [facts.sha256],
                                                       [facts.phash]))

    checked = _check(batch, "grade", accepted)

    assert _rejected(checked) == {rows[6]["item_id"]: Reason.ALREADY_ACCEPTED}
    assert "old-item" in checked.rejected[0][1].detail


# --- sources -----------------------------------------------------------------------------


def test_an_image_the_source_could_not_fetch_is_unreadable(batch: Path) -> None:
    row = read_rows(batch)[1]

    checked = _check(batch, "grade", unreadable={row["image_path"]: "InvalidObjectState"})

    assert _rejected(checked) == {row["item_id"]: Reason.UNREADABLE_SOURCE}
    assert "InvalidObjectState" in checked.rejected[0][1].detail


def test_a_manifest_row_without_its_image_file_is_missing(batch: Path) -> None:
    row = read_rows(batch)[8]
    (batch / row["image_path"]).unlink()

    checked = _check(batch, "grade")

    assert _rejected(checked) == {row["item_id"]: Reason.MISSING_IMAGE}


def test_a_broken_image_and_an_unsafe_path_are_counted_once_each(batch: Path) -> None:
    rows = read_rows(batch)
    (batch / rows[0]["image_path"]).write_bytes(b"")
    moved = rows[1]["image_path"]
    rows[1]["image_path"] = "../../etc/passwd"
    write_rows(batch, rows)

    checked = _check(batch, "grade")

    assert _rejected(checked) == {rows[0]["item_id"]: Reason.EMPTY_FILE,
                                  rows[1]["item_id"]: Reason.UNSAFE_PATH,
                                  moved: Reason.NOT_IN_MANIFEST}
    assert checked.received == len(rows) + 1


# --- find_duplicates on its own ----------------------------------------------------------


def _hash(seed: int) -> str:
    return np.random.default_rng(seed).bytes(24).hex()


def _flip(phash: str, bits: list[int]) -> str:
    value = int(phash, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:048x}"


def _prints(*entries: tuple[str, str, str]) -> Fingerprints:
    names, shas, hashes = zip(*entries, strict=True) if entries else ((), (), ())
    return Fingerprints(list(names), list(shas), list(hashes))


NONE = _prints()


def test_the_same_bytes_twice_in_a_batch_keeps_the_first() -> None:
    found = find_duplicates(_prints(("a", "s1", _hash(1)), ("b", "s1", _hash(1)),
                                    ("c", "s2", _hash(2))), NONE, MAX_BITS)

    assert list(found) == [1]
    assert found[1].reason == Reason.DUPLICATE and "a in this batch" in found[1].detail


def test_the_same_bytes_as_an_accepted_item_is_already_accepted() -> None:
    accepted = _prints(("old", "s1", _hash(1)))

    found = find_duplicates(_prints(("a", "s2", _hash(2)), ("b", "s1", _hash(3))), accepted,
                            MAX_BITS)

    assert list(found) == [1]
    assert found[1].reason == Reason.ALREADY_ACCEPTED and "old" in found[1].detail


def test_a_hash_three_bits_away_in_the_batch_is_a_near_duplicate() -> None:
    base = _hash(1)

    found = find_duplicates(_prints(("a", "s1", base), ("b", "s2", _flip(base, [0, 70, 191]))),
                            NONE, MAX_BITS)

    assert list(found) == [1]
    assert found[1].reason == Reason.NEAR_DUPLICATE
    assert "of a in this batch (3 bits)" in found[1].detail


def test_a_hash_near_an_accepted_one_is_already_accepted() -> None:
    base = _hash(1)
    accepted = _prints(("old", "s9", base))

    found = find_duplicates(_prints(("a", "s1", _flip(base, [5, 6]))), accepted, MAX_BITS)

    assert found[0].reason == Reason.ALREADY_ACCEPTED
    assert "near duplicate of accepted item old (2 bits)" in found[0].detail


def test_far_hashes_are_left_alone() -> None:
    base = _hash(1)
    far = _flip(base, list(range(0, 192, 4)))  # 48 bits away
    accepted = _prints(("old", "s9", _hash(9)))

    found = find_duplicates(_prints(("a", "s1", base), ("b", "s2", far), ("c", "s3", _hash(3))),
                            accepted, MAX_BITS)

    assert found == {}


def test_near_means_at_most_max_bits() -> None:
    base = _hash(1)
    at_limit = _flip(base, list(range(MAX_BITS)))
    beyond = _flip(base, list(range(100, 101 + MAX_BITS)))

    found = find_duplicates(_prints(("a", "s1", base), ("b", "s2", at_limit),
                                    ("c", "s3", beyond)), NONE, MAX_BITS)

    assert list(found) == [1]


def test_near_duplicates_are_found_across_blocks_ofread_rows() -> None:
    hashes = [_hash(seed) for seed in range(ROWS_PER_BLOCK + 40)]
    late = ROWS_PER_BLOCK + 20
    hashes[late] = _flip(hashes[3], [1, 2])
    entries = [(f"i{n}", f"s{n}", phash) for n, phash in enumerate(hashes)]

    found = find_duplicates(_prints(*entries), NONE, MAX_BITS)

    assert list(found) == [late]
    assert "of i3 in this batch (2 bits)" in found[late].detail
