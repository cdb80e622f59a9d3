"""The YOLO defect detector trains offline on an ingested dataset, one epoch at 64 px: it reports
every epoch, leaves MLflow and the dataset alone, resumes an interrupted run, and names what is
wrong with a dataset it cannot use."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import torch
import yaml
from PIL import Image, UnidentifiedImageError

from components.cards import synthesize_batch
from components.train.detector import (
    DetectorConfig,
    DetectorError,
    contained_ultralytics,
    final_metrics,
    train_detector,
    write_yolo_dataset,
)
from components.vision.rubric import DEFECT_CLASSES

ONE_EPOCH = DetectorConfig(epochs=1, imgsz=64, batch=8, patience=5, seed=0)


def every_fifth_in_val(index: int) -> str:
    return "val" if index % 5 == 0 else "train"


def ingest_cards(folder: Path, n: int = 24, seed: int = 3,
                 split_of: Callable[[int], str] = every_fifth_in_val) -> Path:
    """The card factory's batch in the ingested layout (images/b1, labels/b1, manifest.csv,
    dataset.json), card i in the split `split_of(i)`."""
    raw = folder / "factory"
    synthesize_batch(raw, n=n, seed=seed, camera="studio", workers=1)
    root = folder / "dataset"
    (root / "images" / "b1").mkdir(parents=True)
    (root / "labels" / "b1").mkdir(parents=True)
    with (raw / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        stem = Path(row["image_path"]).stem
        shutil.copy(raw / row["image_path"], root / "images" / "b1" / f"{stem}.jpg")
        shutil.copy(raw / "labels" / f"{stem}.txt", root / "labels" / "b1" / f"{stem}.txt")
        row["image_path"] = f"images/b1/{stem}.jpg"
        row["split"] = split_of(i)
    write_manifest(root, rows)
    (root / "dataset.json").write_text(json.dumps({"task": "detect",
                                                   "classes": list(DEFECT_CLASSES)}))
    return root


def write_manifest(root: Path, rows: list[dict[str, str]]) -> None:
    with (root / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(autouse=True)
def _ultralytics_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ultralytics writes its settings file where YOLO_CONFIG_DIR says, read at first import."""
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics-config"))


def test_mlflow_gets_no_run_while_one_epoch_trains_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ultralytics' own MLflow callback stays quiet under pytest unless the test's name contains
    # "test_mlflow", as this one's does: were the callback registered, it would log a run here.
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.chdir(tmp_path)  # a run's artifacts would go to ./mlruns
    root = ingest_cards(tmp_path)
    dataset_before = sorted(p.relative_to(root) for p in root.rglob("*"))
    reported: list[dict[str, float]] = []
    threads = torch.get_num_threads()  # Ultralytics would leave it at the cores minus one

    result = train_detector(root, tmp_path / "out", ONE_EPOCH, on_epoch=reported.append)

    assert torch.get_num_threads() == threads

    assert result.weights == tmp_path / "out" / "run" / "weights" / "best.pt"
    assert result.weights.is_file()
    assert 0.0 <= result.metrics["map50"] <= 1.0
    assert 0.0 <= result.metrics["map50_95"] <= result.metrics["map50"]
    for name in DEFECT_CLASSES:
        assert f"recall.{name}" in result.metrics and f"precision.{name}" in result.metrics
    assert result.epochs_run == 1
    assert result.images_per_s > 0
    assert len(reported) == 1 and result.history == reported
    assert set(reported[0]) == {"epoch", "box_loss", "cls_loss", "dfl_loss", "map50", "map50_95"}
    assert reported[0]["epoch"] == 1
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == dataset_before  # no cache
    client = mlflow.MlflowClient(tracking_uri)
    experiments = client.search_experiments()
    assert client.search_runs([e.experiment_id for e in experiments]) == []


def test_resume_continues_an_interrupted_run_from_last_pt(tmp_path: Path) -> None:
    root = ingest_cards(tmp_path)
    two_epochs = DetectorConfig(epochs=2, imgsz=64, batch=8, patience=5, seed=0)

    def die(row: dict[str, float]) -> None:
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train_detector(root, tmp_path / "out", two_epochs, on_epoch=die)
    assert (tmp_path / "out" / "run" / "weights" / "last.pt").is_file()

    result = train_detector(root, tmp_path / "out", two_epochs, resume=True)

    assert [row["epoch"] for row in result.history] == [2]
    assert result.epochs_run == 2
    assert result.weights.is_file()


def test_write_yolo_dataset_lists_train_and_val_with_the_class_names(tmp_path: Path) -> None:
    root = ingest_cards(tmp_path)
    rows = read_manifest(root)

    dataset_yaml = write_yolo_dataset(root, tmp_path / "out")

    spec = yaml.safe_load(dataset_yaml.read_text())
    assert spec["names"] == dict(enumerate(DEFECT_CLASSES))
    for split in ("train", "val"):
        listed = [Path(line) for line in Path(spec[split]).read_text().splitlines()]
        assert all(path.is_absolute() for path in listed)
        assert sorted(path.resolve() for path in listed) == sorted(
            root / row["image_path"] for row in rows if row["split"] == split)
        for image in listed:  # each label where Ultralytics looks: images/ -> labels/, .txt
            label = Path(str(image).replace("/images/", "/labels/")).with_suffix(".txt")
            assert label.read_text() == (root / "labels" / "b1" / f"{image.stem}.txt").read_text()


def test_a_manifest_without_val_items_names_the_missing_split(tmp_path: Path) -> None:
    root = ingest_cards(tmp_path)
    rows = read_manifest(root)
    write_manifest(root, [{**row, "split": "train"} for row in rows])

    with pytest.raises(DetectorError, match="no 'val' items"):
        train_detector(root, tmp_path / "out", ONE_EPOCH)


def test_a_dataset_without_classes_is_refused(tmp_path: Path) -> None:
    root = ingest_cards(tmp_path)
    (root / "dataset.json").write_text(json.dumps({"task": "detect", "classes": []}))

    with pytest.raises(DetectorError, match="no classes"):
        write_yolo_dataset(root, tmp_path / "out")


def test_a_missing_pt_is_refused_rather_than_downloaded(tmp_path: Path) -> None:
    root = ingest_cards(tmp_path)
    config = DetectorConfig(epochs=1, imgsz=64, batch=8, patience=5, seed=0,
                            model=str(tmp_path / "yolo11n.pt"))

    with pytest.raises(DetectorError, match="not a local file"):
        train_detector(root, tmp_path / "out", config)


def test_a_class_with_no_validation_box_gets_nan_not_zero() -> None:
    box = SimpleNamespace(p=np.array([0.5, 0.25]), r=np.array([0.75, 1.0]))
    metrics = SimpleNamespace(box=box, ap_class_index=np.array([0, 2]),
                              mean_results=lambda: [0.4, 0.8, 0.6, 0.3])

    result = final_metrics(metrics, {0: "corner_wear", 1: "crease", 2: "stain"})

    assert result["map50"] == 0.6 and result["recall"] == 0.8
    assert result["recall.stain"] == 1.0 and result["precision.stain"] == 0.25
    assert math.isnan(result["recall.crease"]) and math.isnan(result["precision.crease"])


def test_importing_ultralytics_leaves_pil_s_image_open_alone() -> None:
    # Ultralytics replaces Image.open with one that, on an unidentified file, tries to install
    # pi-heif and raises ImportError: a bad upload would then be a 500, not a 4xx.
    with contained_ultralytics():
        pass
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"\xff\xd8\xff"))
