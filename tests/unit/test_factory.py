"""The card factory: same seed same bytes, a manifest that tells the truth, boxes that cover
what is drawn, clear refusals, no half batches, and cameras that really drift."""

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from components.cards import FactoryError, synthesize_batch
from components.cards import factory as factory_module
from components.cards.camera import CAMERAS, compose, defect_box, sample_conditions
from components.cards.factory import MANIFEST_COLUMNS, label_card
from components.cards.render import render_card
from components.cards.rubric import worst_side_share
from components.cards.spec import DEFECT_CLASSES


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _rows(batch: Path) -> list[dict[str, str]]:
    with (batch / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("factory") / "batch"
    synthesize_batch(out, n=30, seed=4, camera="studio", workers=1)
    return out


def test_same_seed_gives_the_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    synthesize_batch(tmp_path / "one", n=70, seed=9, workers=1)
    synthesize_batch(tmp_path / "two", n=70, seed=9, workers=2)  # above the parallel threshold
    synthesize_batch(tmp_path / "other", n=70, seed=10, workers=1)

    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    one, other = _files(tmp_path / "one"), _files(tmp_path / "other")
    assert one["images/s9-000000.jpg"] != other["images/s10-000000.jpg"]


def test_manifest_tells_the_truth(batch: Path) -> None:
    rows = _rows(batch)
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert len(rows) == 30 == len(list((batch / "images").iterdir()))
    for row in rows:
        image = (batch / row["image_path"]).resolve()
        assert image.is_relative_to(batch.resolve())
        assert hashlib.sha256(image.read_bytes()).hexdigest() == row["sha256"]
        experts = sorted(int(row[f"grader_{i}"]) for i in (1, 2, 3))
        assert 1 <= int(row["grade"]) <= 10 and int(row["grade"]) == experts[1]
        assert all(abs(g - int(row["true_grade"])) <= 1 for g in experts)
        assert row["split"] in {"train", "val", "calibration", "test"}


def test_split_lists_and_dataset_yaml_match_the_manifest(batch: Path) -> None:
    rows = _rows(batch)
    for split in ("train", "val", "calibration", "test"):
        listed = (batch / f"{split}.txt").read_text().split()
        assert listed == [r["image_path"] for r in rows if r["split"] == split]
    dataset = yaml.safe_load((batch / "dataset.yaml").read_text())
    assert "path" not in dataset  # Ultralytics then resolves lists next to the yaml
    assert dataset["names"] == dict(enumerate(DEFECT_CLASSES))
    assert yaml.safe_load((batch / "batch.json").read_text())["seed"] == 4


def test_yolo_labels_name_every_defect_in_the_manifest(batch: Path) -> None:
    for row in _rows(batch):
        lines = (batch / "labels" / f"{row['item_id']}.txt").read_text().splitlines()
        classes = set()
        for line in lines:
            cls, *coords = line.split()
            assert 0 <= int(cls) < len(DEFECT_CLASSES)
            assert all(0.0 <= float(c) <= 1.0 for c in coords) and len(coords) == 4
            classes.add(DEFECT_CLASSES[int(cls)])
        assert classes == set(filter(None, row["defects"].split(";")))


def test_boxes_cover_the_defects_drawn() -> None:
    """Photos with and without defects differ only inside the defect boxes."""
    checked = 0
    for index in range(60):
        labeled = label_card(seed=5, index=index)
        if not labeled.spec.defects:
            continue
        conditions = sample_conditions(CAMERAS["studio"], np.random.default_rng([5, index, 1]))
        worn = render_card(labeled.spec)
        mint = render_card(labeled.spec, with_defects=False)
        worn_photo, homography = compose(worn, conditions)
        mint_photo, _ = compose(mint, conditions)
        changed = (np.abs(worn_photo - mint_photo) > 8).any(axis=2)
        boxes = [defect_box(mask, homography, pad=1.0) for mask in worn.defect_masks]
        covered = np.zeros_like(changed)
        for x0, y0, x1, y1 in boxes:
            window = (slice(int(y0), int(np.ceil(y1)) + 1), slice(int(x0), int(np.ceil(x1)) + 1))
            covered[window] = True
            assert changed[window].any(), f"{labeled.spec.item_id}: an empty box"
        assert changed[covered].sum() >= 0.99 * changed.sum(), labeled.spec.item_id
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize(
    ("n", "camera", "message"),
    [(0, "studio", "at least 1"), (3, "moon", "unknown camera 'moon'")],
)
def test_bad_requests_are_refused(tmp_path: Path, n: int, camera: str, message: str) -> None:
    with pytest.raises(FactoryError, match=message):
        synthesize_batch(tmp_path / "b", n=n, seed=1, camera=camera)


def test_a_folder_with_files_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(FactoryError, match="not an empty folder"):
        synthesize_batch(tmp_path / "b", n=3, seed=1)
    assert (tmp_path / "b" / "keep.txt").read_text() == "mine"


def test_a_failure_mid_batch_leaves_nothing_behind(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = factory_module.synthesize_card

    def failing(seed: int, index: int, camera: str):
        if index == 4:
            raise RuntimeError("disk on fire")
        return real(seed, index, camera)

    monkeypatch.setattr(factory_module, "synthesize_card", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        synthesize_batch(tmp_path / "b", n=10, seed=1, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_a_card_with_a_crease_never_grades_above_six() -> None:
    creased = [c for c in (label_card(6, i) for i in range(3000))
               if any(d.kind == "crease" for d in c.spec.defects)]
    assert len(creased) > 50
    assert max(c.truth.grade for c in creased) <= 6
    assert max(max(c.experts.values()) for c in creased) <= 7


def test_a_pristine_well_centred_card_is_a_ten() -> None:
    pristine = [c for c in (label_card(6, i) for i in range(1000)) if not c.spec.defects
                and worst_side_share(c.spec.centering_lr, c.spec.centering_tb) <= 55]
    assert pristine and all(c.truth.grade == 10 for c in pristine)


@pytest.fixture(scope="module")
def camera_batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cameras")
    for camera in CAMERAS:
        synthesize_batch(root / camera, n=24, seed=8, camera=camera, workers=1)
    return {camera: root / camera for camera in CAMERAS}


def _mean_image_stat(batch: Path, stat) -> float:
    images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (batch / "images").iterdir()]
    return float(np.mean([stat(image) for image in images]))


def test_other_cameras_drift_darker_and_blurrier(camera_batches: dict[str, Path]) -> None:
    brightness = {c: _mean_image_stat(b, np.mean) for c, b in camera_batches.items()}
    sharpness = {c: _mean_image_stat(b, lambda im: cv2.Laplacian(im, cv2.CV_64F).var())
                 for c, b in camera_batches.items()}
    assert brightness["warehouse"] < brightness["studio"] - 20
    assert sharpness["phone"] < sharpness["studio"] and sharpness["warehouse"] < sharpness["studio"]


def test_the_card_does_not_depend_on_the_camera(camera_batches: dict[str, Path]) -> None:
    studio, phone = _rows(camera_batches["studio"]), _rows(camera_batches["phone"])
    assert [(r["item_id"], r["true_grade"], r["centering_lr"]) for r in studio] == [
        (r["item_id"], r["true_grade"], r["centering_lr"]) for r in phone]
