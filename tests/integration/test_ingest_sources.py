"""The `ingest` flow on every kind of source: COCO (as CVAT exports it), a YOLO folder, an S3
prefix on a loopback S3-compatible server (with the DVC remote on S3 too), and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from components.ingest import Reason
from flows.ingest import ingest
from tests.batches import read_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WIDTH, HEIGHT = 320, 448  # factory photos


def _names(batch: Path) -> list[str]:
    names = yaml.safe_load((batch / "dataset.yaml").read_text())["names"]
    return [names[key] for key in sorted(names)]


def _yolo_boxes(batch: Path, stem: str) -> list[tuple[int, float, float, float, float]]:
    lines = (batch / "labels" / f"{stem}.txt").read_text().split("\n")
    return [(int(f[0]), *map(float, f[1:])) for f in (line.split() for line in lines) if f]


def _as_coco(batch: Path, out: Path) -> Path:
    """The factory batch as CVAT exports COCO: images/ and annotations/instances_default.json,
    category ids from 1, boxes [x, y, w, h] in pixels."""
    shutil.copytree(batch / "images", out / "images")
    images, annotations = [], []
    for number, path in enumerate(sorted((out / "images").glob("*.jpg")), start=1):
        images.append({"id": number, "file_name": path.name, "width": WIDTH, "height": HEIGHT})
        for class_id, cx, cy, w, h in _yolo_boxes(batch, path.stem):
            annotations.append({"id": len(annotations) + 1, "image_id": number,
                                "category_id": class_id + 1, "iscrowd": 0,
                                "bbox": [(cx - w / 2) * WIDTH, (cy - h / 2) * HEIGHT,
                                         w * WIDTH, h * HEIGHT]})
    annotations.append({"id": 9001, "image_id": 1, "category_id": 99, "bbox": [5, 5, 20, 20]})
    annotations.append({"id": 9002, "image_id": 2, "category_id": 1, "bbox": [300, 5, 60, 20]})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(_names(batch))]
    (out / "annotations").mkdir()
    (out / "annotations" / "instances_default.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))
    return out


def test_a_cvat_coco_export_is_ingested_for_detection(
        home: Path, factory_batches: dict[str, Path], tmp_path: Path) -> None:
    coco = _as_coco(factory_batches["first"], tmp_path / "cvat-export")

    summary = ingest(str(coco), task="detect")

    assert summary["status"] == "accepted" and summary["format"] == "coco"
    assert summary["quarantined_by_reason"] == {Reason.BOX_OUTSIDE_IMAGE: 1,
                                                Reason.UNKNOWN_CLASS: 1}
    assert summary["accepted"] == 38
    dataset = home / "data" / "detect"
    labels = list((dataset / "labels").rglob("*.txt"))
    assert len(labels) == 38
    assert json.loads((dataset / "dataset.json").read_text())["classes"] == _names(
        factory_batches["first"])


def test_a_yolo_folder_is_ingested_for_detection(
        home: Path, factory_batches: dict[str, Path], tmp_path: Path) -> None:
    batch, yolo = factory_batches["second"], tmp_path / "yolo"
    shutil.copytree(batch / "images", yolo / "images" / "train")
    shutil.copytree(batch / "labels", yolo / "labels" / "train")
    (yolo / "data.yaml").write_text(yaml.safe_dump({"names": _names(batch)}))

    summary = ingest(str(yolo), task="detect")

    assert summary["status"] == "accepted" and summary["format"] == "yolo"
    assert summary["accepted"] == summary["received"] == 30
    stored = next((home / "data" / "detect" / "labels").rglob("*.txt")).read_text()
    boxes = {line.split()[0] for line in stored.splitlines()}
    assert boxes <= {str(i) for i in range(len(_names(batch)))}


def test_an_image_folder_is_ingested_for_classification(
        home: Path, factory_batches: dict[str, Path], tmp_path: Path) -> None:
    batch, tree = factory_batches["second"], tmp_path / "ripeness"
    for row in read_rows(batch):
        label = "high" if int(row["grade"]) >= 8 else "low"
        (tree / label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(batch / row["image_path"], tree / label / Path(row["image_path"]).name)
    shutil.copyfile(batch / "images" / "s102-000000.jpg", tree / "loose.jpg")

    summary = ingest(str(tree), task="classify", dataset="ripeness")

    assert summary["status"] == "accepted" and summary["format"] == "imagefolder"
    assert summary["quarantined_by_reason"] == {Reason.MISSING_LABEL: 1}
    assert summary["accepted"] == 30
    info = json.loads((home / "data" / "ripeness" / "dataset.json").read_text())
    assert info == {"task": "classify", "classes": ["high", "low"]}


def test_an_s3_prefix_is_ingested_and_versioned_to_an_s3_remote(
        home: Path, factory_batches: dict[str, Path], s3_endpoint: str) -> None:
    import os

    os.environ.update({"GRADELINE_S3_ENDPOINT_URL": s3_endpoint, "GRADELINE_AWS_REGION":
                       "us-east-1", "GRADELINE_AWS_ACCESS_KEY_ID": "test-key",
                       "GRADELINE_AWS_SECRET_ACCESS_KEY": "test-secret",
                       "GRADELINE_DVC_REMOTE": "s3://cards/dvc"})
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="test-key", aws_secret_access_key="test-secret")
    s3.create_bucket(Bucket="cards")
    batch = factory_batches["second"]
    archived = "images/s102-000003.jpg"
    for path in sorted(p for p in batch.rglob("*") if p.is_file()):
        key = path.relative_to(batch).as_posix()
        extra = {"StorageClass": "GLACIER"} if key == archived else {}
        s3.put_object(Bucket="cards", Key=f"incoming/b2/{key}", Body=path.read_bytes(), **extra)

    summary = ingest("s3://cards/incoming/b2", task="grade")

    assert summary["status"] == "accepted", summary["message"]
    assert summary["quarantined_by_reason"] == {Reason.UNREADABLE_SOURCE: 1}
    assert summary["accepted"] == 29
    record = next(Path(summary["quarantine_dir"]).rglob("*.reason.json")).read_text()
    assert "InvalidObjectState" in record
    pushed = s3.list_objects_v2(Bucket="cards", Prefix="dvc/")
    assert pushed["KeyCount"] >= 29  # the accepted images and the manifest reached the remote


def test_the_cli_prints_the_summary_as_json_and_recognises_a_second_run(
        home: Path, factory_batches: dict[str, Path]) -> None:
    runner = CliRunner()
    arguments = ["--home", str(home), "ingest", str(factory_batches["second"]), "--json"]

    first = runner.invoke(app, arguments)
    second = runner.invoke(app, arguments)

    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert {"received", "accepted", "quarantined_by_reason", "data_version", "images_per_s",
            "data_docs"} <= summary.keys()
    assert summary["received"] == 30 and summary["data_version"]
    assert json.loads(second.stdout)["status"] == "already_ingested"


def test_the_cli_names_a_source_that_is_no_batch(home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    result = CliRunner().invoke(app, ["--home", str(home), "ingest", str(tmp_path / "empty")])

    assert result.exit_code == 2
    assert "holds no batch" in result.output
