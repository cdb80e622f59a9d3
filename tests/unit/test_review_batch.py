"""Reviewed photos exported as a labeled batch, on a real SQLite prediction log and real review
copies: the consensus and each expert's grade, lineage to the requests, the audit share only
in `test`, each answer exported once, nothing written or recorded on a failure, and a batch
that ingest's checks accept."""

from __future__ import annotations

import csv
import json
import os
from datetime import timedelta
from pathlib import Path

import cv2
import pytest

from components.cards import synthesize_batch
from components.ingest import TASKS, AcceptedIndex, IngestParams, check_batch, read_batch
from components.predlog import PredictionLog
from components.review_batch import NO_PHOTO, ReviewExports, item_id
from components.reviews import ReviewParams, ReviewQueue, in_audit_share
from components.thumbnails import save_review_copy
from tests.unit.test_predlog import START, _record

NOW = START + timedelta(hours=1)
PARAMS = ReviewParams(audit_share=0.3)
SUBGRADES = {"centering": 9, "corners": 8, "edges": 7, "surface": 8}


def _ids(audited: bool, count: int) -> list[str]:
    """Request ids that do (or do not) fall in PARAMS' audit share."""
    found = (f"req-{n}" for n in range(1000)
             if in_audit_share(f"req-{n}", PARAMS.audit_share) == audited)
    return [next(found) for _ in range(count)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    batch = tmp_path_factory.mktemp("served")
    synthesize_batch(batch, n=7, seed=5)
    return sorted((batch / "images").glob("*.jpg"))


@pytest.fixture
def served(tmp_path: Path, photos: list[Path]) -> tuple[ReviewExports, dict[str, str]]:
    """Seven served answers and what happened to each: graded by a full panel and kept
    large (`uncertain`, twice, and `audited`, certain but in the audit share), graded by two
    experts only (`half`), graded but kept as a thumbnail only (`thumbnail`), a gold item
    (`gold`), and one graded by a panel that split (`split`: it wants a fourth expert, and
    there is one: she graded the gold item)."""
    (uncertain_1, uncertain_2, half, thumbnail, gold, split), (audited,) = (
        _ids(False, 6), _ids(True, 1))
    names = {"uncertain_1": uncertain_1, "uncertain_2": uncertain_2, "audited": audited,
             "half": half, "thumbnail": thumbnail, "gold": gold, "split": split}
    log = PredictionLog(f"sqlite:///{tmp_path}/p.db")
    log.write([_record(request_id, minute,
                       **({"grade_set_low": 8, "grade_set_high": 8}
                          if request_id == audited else {}),
                       camera="phone", correlation_id=f"day4-{minute}")
               for minute, request_id in enumerate(names.values())])
    queue = ReviewQueue(log, PARAMS)
    panels = {uncertain_1: (7, 8, 8), uncertain_2: (9, 9, 10), audited: (8, 8, 8),
              half: (8, 8), thumbnail: (6, 6, 7), gold: (8, 8, 8), split: (5, 7, 8)}
    for request_id, grades in panels.items():
        for number, (expert, grade) in enumerate(zip(("ada", "grace", "alan"), grades,
                                                     strict=False)):
            log.record_expert_grade(request_id, grade, expert,
                                    NOW - timedelta(minutes=30 - number), SUBGRADES)
    log.record_expert_grade(gold, 8, "barbara", NOW - timedelta(minutes=20), SUBGRADES)
    queue.add_gold(gold, 8, "head grader", NOW)
    folder = tmp_path / "served-photos"
    for photo, request_id in zip(photos, names.values(), strict=True):
        if request_id != thumbnail:
            save_review_copy(folder, request_id, cv2.imread(str(photo)), {"defects": []})
    return ReviewExports(queue, folder), names


def _manifest(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "manifest.csv").open() as handle:
        return {row["request_id"]: row for row in csv.DictReader(handle)}


def test_settled_items_become_a_batch_with_their_lineage_and_the_audit_share_in_test(
        served: tuple[ReviewExports, dict[str, str]], tmp_path: Path) -> None:
    exports, names = served

    batch = exports.export(tmp_path / "inbox" / "reviewed-1", NOW)

    rows = _manifest(batch.folder)
    assert sorted(rows) == sorted(names[n] for n in ("uncertain_1", "uncertain_2", "audited"))
    assert (batch.items, batch.test_items, batch.skipped) == (3, 1, {NO_PHOTO: 1})
    assert batch.answered_qwk == pytest.approx(0.0)  # every answer an 8: no better than chance
    first = rows[names["uncertain_1"]]
    assert {key: first[key] for key in ("grade", "grader_1", "grader_2", "grader_3", "experts",
                                        "served_by", "answered_grade", "camera",
                                        "correlation_id", "reasons")} == {
        "grade": "8", "grader_1": "7", "grader_2": "8", "grader_3": "8",
        "experts": "ada=7 grace=8 alan=8", "served_by": "card-grader v3",
        "answered_grade": "8", "camera": "phone", "correlation_id": "day4-0",
        "reasons": "uncertain"}
    assert {aspect: first[aspect] for aspect in SUBGRADES} == {
        aspect: str(value) for aspect, value in SUBGRADES.items()}
    assert rows[names["uncertain_2"]]["grade"] == "9"
    assert first["item_id"] == item_id(names["uncertain_1"])
    assert rows[names["audited"]]["split"] == "test"
    assert rows[names["audited"]]["reasons"] == "audit"
    assert {rows[names[n]]["split"] for n in ("uncertain_1", "uncertain_2")} <= {
        "train", "val", "calibration"}
    for row in rows.values():
        assert (batch.folder / row["image_path"]).stat().st_size > 1000
    lineage = json.loads((batch.folder / "lineage.json").read_text())
    assert sorted(lineage["requests"]) == sorted(rows)
    assert lineage["source"] == "review queue" and lineage["test_items"] == 1


def test_biased_items_never_land_in_test_and_the_rest_keep_their_shares() -> None:
    from components.splits import stable_split

    splits = [stable_split(f"item-{n}", leave_out=("test",)) for n in range(3000)]

    assert "test" not in splits
    assert splits.count("train") / len(splits) == pytest.approx(0.7 / 0.9, abs=0.03)


def test_an_answer_is_exported_once_and_too_few_ready_writes_nothing(
        served: tuple[ReviewExports, dict[str, str]], tmp_path: Path) -> None:
    exports, _ = served

    waiting = exports.export(tmp_path / "reviewed-0", NOW, min_items=4)
    assert (waiting.folder, waiting.items) == (None, 3)
    assert not (tmp_path / "reviewed-0").exists() and exports.exported() == {}

    first = exports.export(tmp_path / "reviewed-1", NOW)
    again = exports.export(tmp_path / "reviewed-2", NOW)

    assert first.items == 3 and set(exports.exported().values()) == {"reviewed-1"}
    assert (again.folder, again.items) == (None, 0) and not (tmp_path / "reviewed-2").exists()
    with pytest.raises(FileExistsError, match="reviewed-1 exists"):
        exports.export(tmp_path / "reviewed-1", NOW)


def test_items_served_before_since_wait_for_another_batch(
        served: tuple[ReviewExports, dict[str, str]], tmp_path: Path) -> None:
    exports, names = served

    batch = exports.export(tmp_path / "reviewed-1", NOW, since=START + timedelta(minutes=1))

    assert sorted(_manifest(batch.folder)) == sorted(names[n] for n in ("uncertain_2",
                                                                        "audited"))


def test_a_batch_that_cannot_be_put_in_place_leaves_nothing_behind(
        served: tuple[ReviewExports, dict[str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    exports, _ = served

    def refuse(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        exports.export(tmp_path / "reviewed-1", NOW)

    assert list(tmp_path.glob("*reviewed-1*")) == [] and exports.exported() == {}


def test_the_exported_batch_passes_ingests_checks(
        served: tuple[ReviewExports, dict[str, str]], tmp_path: Path) -> None:
    exports, _ = served
    batch = exports.export(tmp_path / "reviewed-1", NOW)

    checked = check_batch(read_batch(batch.folder, needs_boxes=False), TASKS["grade"],
                          AcceptedIndex(), IngestParams().image_limits, max_bits=20)

    assert checked.refusals == []
    assert [item.problems for item in checked.batch.items] == [[]] * 3
