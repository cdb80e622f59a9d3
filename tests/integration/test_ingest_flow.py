"""The `ingest` flow end to end on a real Prefect server, real DVC and Great Expectations:
accepted batches become data versions, bad items land in quarantine with their reason, a batch
that fails its suite changes nothing, and the same batch twice is recognised."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from collections.abc import Callable
from multiprocessing import Process
from pathlib import Path

import prefect.settings
import pytest
import yaml

from components.ingest import Reason
from flows.ingest import ingest
from tests.batches import (
    read_rows,
    write_corrupt_jpeg,
    write_png_bomb,
    write_rows,
    write_truncated_png,
)
from tests.integration.conftest import copy_batch

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _reconciles(summary: dict) -> None:
    assert summary["received"] == summary["accepted"] + summary["quarantined"]
    assert summary["quarantined"] == sum(summary["quarantined_by_reason"].values())


def _dvc_version(home: Path, dataset: str) -> str:
    document = yaml.safe_load((home / "data" / f"{dataset}.dvc").read_text())
    return document["outs"][0]["md5"].removesuffix(".dir")


def _ingest_and_die_before_the_commit(home: str, batch: str, api_url: str) -> None:
    """In a child process: the ingest flow, killed (SIGKILL) at its worst point, with the
    batch's files and ledger line written and its DVC commit not yet made."""
    os.environ.update(GRADELINE_HOME=home, PREFECT_API_URL=api_url)
    from components.ingest.versioning import DataRepo
    from components.settings import load_settings
    from flows.ingest import run_ingest

    DataRepo.commit = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
    run_ingest(load_settings(), batch)


def test_an_ingest_killed_before_its_commit_is_put_back_and_versioned_by_the_rerun(
        home: Path, factory_batches: dict[str, Path],
        child_process: Callable[..., Process]) -> None:
    child = child_process(_ingest_and_die_before_the_commit,
                          (str(home), str(factory_batches["first"]),
                           prefect.settings.PREFECT_API_URL.value()), timeout=300)
    ledger = home / "data" / "grade" / "batches.jsonl"
    journal = home / "data" / ".grade.ingest-journal"
    assert child.exitcode == -signal.SIGKILL
    assert ledger.is_file() and journal.is_dir()  # the ledger names a batch DVC never versioned

    summary = ingest(str(factory_batches["first"]))

    assert summary["status"] == "accepted", summary["message"]
    assert "batch-" in summary["repaired"] and "interrupted" in summary["repaired"]
    assert summary["data_version"] == _dvc_version(home, "grade")
    assert len(ledger.read_text().splitlines()) == 1 and not journal.exists()
    assert len((home / "data" / "versions.jsonl").read_text().splitlines()) == 1
    assert ingest(str(factory_batches["first"]))["status"] == "already_ingested"


def test_a_factory_batch_becomes_a_pushed_data_version_and_a_second_run_changes_nothing(
        home: Path, factory_batches: dict[str, Path]) -> None:
    summary = ingest(str(factory_batches["first"]))

    assert summary["status"] == "accepted", summary["message"]
    assert summary["received"] == summary["accepted"] == 40 and summary["quarantined"] == 0
    assert summary["data_version"] == _dvc_version(home, "grade")
    assert summary["images_per_s"] > 0 and Path(summary["data_docs"]).is_file()
    manifest = (home / "data" / "grade" / "manifest.csv").read_text()
    assert len(manifest.splitlines()) == 41
    rows = read_rows(home / "data" / "grade")
    labels = sorted((home / "data" / "grade" / "labels").rglob("*.txt"))
    assert len(labels) == 40 and "severities" in rows[0]  # the defects' masks came along
    pushed = [p for p in (home / "dvc-remote").rglob("*") if p.is_file()]
    assert len(pushed) >= 40  # every image, the manifest and the folder listing

    again = ingest(str(factory_batches["first"]))

    assert again["status"] == "already_ingested"
    assert again["data_version"] == summary["data_version"]
    assert "already ingested" in again["message"]
    assert (home / "data" / "grade" / "manifest.csv").read_text() == manifest


def test_a_segment_batch_keeps_each_defect_mask_and_severity_in_the_dataset(
        home: Path, factory_batches: dict[str, Path]) -> None:
    summary = ingest(str(factory_batches["first"]), task="segment")

    assert summary["status"] == "accepted", summary["message"]
    assert summary["accepted"] == 40 and summary["data_version"] == _dvc_version(home, "segment")
    dataset = home / "data" / "segment"
    rows = read_rows(dataset)
    assert json.loads((dataset / "dataset.json").read_text())["classes"][0] == "corner_wear"
    for row in rows:
        lines = (dataset / row["image_path"].replace("images/", "labels/", 1)).with_suffix(
            ".txt").read_text().splitlines()
        assert int(row["n_boxes"]) == len(lines)
        assert all(len(line.split()) >= 7 for line in lines)  # YOLO-seg: class + 3 points
        severities = row["severities"].split()
        assert len(severities) == len(lines) and all(0 < float(v) <= 1 for v in severities)
    assert any(row["severities"] for row in rows)


def test_every_bad_item_lands_in_quarantine_with_its_reason(
        home: Path, factory_batches: dict[str, Path], tmp_path: Path) -> None:
    batch = copy_batch(factory_batches["bad"], tmp_path / "bad")
    rows = read_rows(batch)
    images = batch / "images"
    write_corrupt_jpeg(images / Path(rows[0]["image_path"]).name)
    (images / Path(rows[1]["image_path"]).name).write_bytes(b"")
    (images / Path(rows[2]["image_path"]).name).write_text("item_id,grade\nnot,an image\n")
    rows[3]["grade"] = "11"
    rows[4]["grade"] = "nan"
    write_truncated_png(images / "truncated.png")
    write_png_bomb(images / "bomb.png")
    shutil.copyfile(images / Path(rows[7]["image_path"]).name, images / "copy.jpg")
    shutil.copyfile(factory_batches["second"] / "images" / "s102-000000.jpg", images / "other.jpg")
    extra = {"truncated": "images/truncated.png", "bomb": "images/bomb.png",
             "copy": "images/copy.jpg", rows[5]["item_id"]: "images/other.jpg",
             "passwd": "../../etc/passwd"}
    rows += [{**rows[10], "item_id": item_id, "image_path": path}
             for item_id, path in extra.items()]
    write_rows(batch, rows)

    summary = ingest(str(batch))

    assert summary["status"] == "accepted", summary["message"]
    assert summary["quarantined_by_reason"] == {
        Reason.CORRUPT_IMAGE: 2, Reason.EMPTY_FILE: 1, Reason.NOT_AN_IMAGE: 1,
        Reason.LABEL_OUT_OF_RANGE: 1, Reason.MISSING_LABEL: 1, Reason.TOO_MANY_PIXELS: 1,
        Reason.DUPLICATE: 1, Reason.DUPLICATE_ITEM_ID: 1, Reason.UNSAFE_PATH: 1}
    assert summary["received"] == 65 and summary["accepted"] == 55
    _reconciles(summary)
    folder = Path(summary["quarantine_dir"])
    records = [json.loads(p.read_text()) for p in folder.rglob("*.reason.json")]
    assert len(records) == 10
    passwd = next(r for r in records if r["item_id"] == "passwd")
    assert passwd["copied_as"] is None and "leaves the batch folder" in passwd["detail"]
    bomb = next(r for r in records if r["item_id"] == "bomb")
    assert "before decoding" in bomb["detail"] and (folder / "too_many_pixels").is_dir()
    with (folder / "quarantine.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 10


def test_a_batch_that_fails_its_suite_is_rejected_whole_and_changes_nothing(
        home: Path, factory_batches: dict[str, Path], tmp_path: Path) -> None:
    first = ingest(str(factory_batches["first"]))
    manifest = (home / "data" / "grade" / "manifest.csv").read_bytes()
    skewed = copy_batch(factory_batches["second"], tmp_path / "all-tens")
    write_rows(skewed, [{**row, "grade": "10"} for row in read_rows(skewed)])

    summary = ingest(str(skewed))

    assert summary["status"] == "rejected"
    assert summary["quarantined_by_reason"] == {Reason.BATCH_FAILED_SUITE: 30}
    assert any("kl_divergence" in failure for failure in summary["suite_failures"])
    assert summary["data_version"] == first["data_version"] == _dvc_version(home, "grade")
    assert (home / "data" / "grade" / "manifest.csv").read_bytes() == manifest
    assert Path(summary["data_docs"]).is_file()
    _reconciles(summary)


def test_a_batch_missing_a_required_column_is_refused_with_the_column_named(
        home: Path, factory_batches: dict[str, Path], tmp_path: Path) -> None:
    batch = copy_batch(factory_batches["second"], tmp_path / "no-grade")
    rows = read_rows(batch)
    write_rows(batch, rows, [c for c in rows[0] if c != "grade"])

    summary = ingest(str(batch))

    assert summary["status"] == "rejected"
    assert "'grade'" in summary["message"]
    assert summary["quarantined_by_reason"] == {Reason.BATCH_REFUSED: 30}
    assert summary["data_version"] is None and not (home / "data" / "grade").exists()
