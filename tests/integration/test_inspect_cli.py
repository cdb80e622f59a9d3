"""`gradeline inspect` as a quality engineer runs it: the detector's champion from a real MLflow
registry on a folder with a corrupt image, which is reported while the rest are inspected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import cv2
import numpy as np
import pytest

from components.evaluate.graphs import sha256
from model_registry.names import ALIAS_CHAMPION, DETECTOR
from tests.graphs import detector_graph, detector_registry, register_detector
from tests.stack import gradeline

pytestmark = pytest.mark.integration


@pytest.fixture()
def home(tmp_path: Path, migrated_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose registry holds a defect-detector champion that finds one scratch."""
    home = tmp_path / "home"
    (home / "mlflow").mkdir(parents=True)
    shutil.copyfile(migrated_store, home / "mlflow" / "mlflow.db")
    uri = f"sqlite:///{home}/mlflow/mlflow.db"
    client = detector_registry(uri, monkeypatch)
    graph = detector_graph(tmp_path / "detector.onnx",
                           np.array([[32], [32], [16], [16], [0.0], [0.8]], np.float32))
    version = register_detector(client, uri, graph, sha256(graph))
    client.set_registered_model_alias(DETECTOR, ALIAS_CHAMPION, version)
    return home


def test_inspect_reports_every_image_and_exits_1_for_the_corrupt_one(home: Path,
                                                                   tmp_path: Path) -> None:
    folder = tmp_path / "line-3"
    folder.mkdir()
    for name in ("part-1.jpg", "part-2.jpg"):
        cv2.imwrite(str(folder / name), np.full((64, 64, 3), 90, np.uint8))
    (folder / "part-3.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")

    done = gradeline(home, "inspect", str(folder), "--json")

    assert done.returncode == 1, done.stderr
    figures = json.loads(done.stdout)
    assert figures["model"] == DETECTOR and figures["inspected"] == 2
    assert figures["per_class"] == {"dent": 2}
    assert [u["image"] for u in figures["unreadable"]] == ["part-3.jpg"]
    reports = Path(figures["reports"])
    assert reports == home / "reports" / "inspect" / "line-3"
    report = json.loads((reports / "reports" / "part-1.jpg.json").read_text())
    assert report["defects"][0]["class"] == "dent" and report["version"] == 1
    assert (reports / "summary.html").is_file() and (reports / "summary.csv").is_file()


def test_inspect_names_a_version_that_does_not_exist(home: Path, tmp_path: Path) -> None:
    done = gradeline(home, "inspect", str(tmp_path), "--model", f"{DETECTOR}@retired-one")

    assert done.returncode == 2
    assert f"{DETECTOR} has no version called 'retired-one'" in done.stderr


def test_inspect_reads_an_s3_prefix_and_lists_an_object_it_could_not_fetch(
        home: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = {"GRADELINE_S3_ENDPOINT_URL": s3_endpoint, "GRADELINE_AWS_REGION": "us-east-1",
                   "GRADELINE_AWS_ACCESS_KEY_ID": "test-key",
                   "GRADELINE_AWS_SECRET_ACCESS_KEY": "test-secret"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="test-key", aws_secret_access_key="test-secret")
    s3.create_bucket(Bucket="plant")
    ok, photo = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))
    for key, extra in (("line-3/a.jpg", {}), ("line-3/shift-2/b.jpg", {}),
                       ("line-3/archived.jpg", {"StorageClass": "GLACIER"})):
        s3.put_object(Bucket="plant", Key=key, Body=photo.tobytes(), **extra)

    done = gradeline(home, "inspect", "s3://plant/line-3", "--json")

    assert done.returncode == 1, done.stderr
    figures = json.loads(done.stdout)
    assert figures["inspected"] == 2
    assert [u["image"] for u in figures["unreadable"]] == ["archived.jpg"]
    assert "InvalidObjectState" in figures["unreadable"][0]["why"]
    reports = Path(figures["reports"])
    assert reports == home / "reports" / "inspect" / "line-3"
    assert (reports / "reports" / "shift-2" / "b.jpg.json").is_file()
