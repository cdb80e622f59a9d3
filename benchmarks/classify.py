"""Users' own small datasets, not the factory's batches: ImageFolders a new user would bring,
ingested and trained with `--task classify` as `gradeline ingest DIR --task classify` and
`gradeline train --task classify` would (issue 16).

    rows = bench_classify(workdir, per_class=60)   # one row per dataset

The datasets: 64 x 64 grey digits rendered in four fonts at varied places, slants and noise
(look-alike small images, which near-duplicate detection once quarantined almost whole); card
photos by the camera that took them; and cards with a crease against cards without one.
Target: the batch accepted and validation accuracy at least 0.9 on each (a pair of digits drawn
in the same font, stroke and place is a copy for training's purposes, and is quarantined).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from components.cards import CAMERAS, synthesize_batch

FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX)
TARGET_ACCURACY = 0.9


def rendered_digit(value: int, rng: np.random.Generator) -> np.ndarray:
    """A 64 x 64 grey digit as a small plain dataset holds them: its own font, stroke, place,
    slant and sensor noise."""
    image = np.full((64, 64), 20, np.uint8)
    cv2.putText(image, str(value), (int(rng.integers(12, 22)), int(rng.integers(44, 54))),
                FONTS[rng.integers(len(FONTS))], rng.uniform(1.3, 1.7), 230,
                int(rng.integers(2, 5)), cv2.LINE_AA)
    turn = cv2.getRotationMatrix2D((32, 32), rng.uniform(-12, 12), 1.0)
    image = cv2.warpAffine(image, turn, (64, 64), borderValue=20)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def digits_folder(folder: Path, per_class: int, seed: int = 16) -> Path:
    """An ImageFolder of rendered digits, `per_class` PNGs in each of ten class folders."""
    rng = np.random.default_rng(seed)
    for value in range(10):
        (folder / str(value)).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            cv2.imwrite(str(folder / str(value) / f"{index:04d}.png"), rendered_digit(value, rng))
    return folder


def _file(source: Path, image_path: str, folder: Path, label: str) -> None:
    """Copy one factory photo into the ImageFolder under its label."""
    (folder / label).mkdir(parents=True, exist_ok=True)
    shutil.copy(source / image_path, folder / label / Path(image_path).name)


def cameras_folder(folder: Path, work: Path, per_class: int) -> Path:
    """An ImageFolder of card photos filed by the camera that took them."""
    for seed, camera in enumerate(CAMERAS, start=40):
        batch = work / f"{camera}-{per_class}"
        synthesize_batch(batch, n=per_class, seed=seed, camera=camera)
        for image_path in pd.read_csv(batch / "manifest.csv")["image_path"]:
            _file(batch, image_path, folder, camera)
    return folder


def crease_folder(folder: Path, work: Path, per_class: int) -> Path:
    """An ImageFolder of studio cards with a crease and as many without one (about one card
    in fifteen has a crease, so enough cards are made to find `per_class` of them)."""
    batch = work / f"crease-{per_class}"
    synthesize_batch(batch, n=per_class * 20, seed=43, camera="studio")
    manifest = pd.read_csv(batch / "manifest.csv")
    creased = manifest["defects"].fillna("").str.split(";").map(lambda kinds: "crease" in kinds)
    for label, rows in (("crease", manifest[creased]), ("no_crease", manifest[~creased])):
        for image_path in rows["image_path"].iloc[:per_class]:
            _file(batch, image_path, folder, label)
    return folder


def bench_classify(workdir: Path, per_class: int = 60) -> list[dict[str, object]]:
    """Ingest and train each dataset; one row each with what ingest accepted, the validation
    accuracy and the training time."""
    from components.settings import load_settings

    settings = load_settings(home=workdir / "classify-home").activate()
    from flows.ingest import run_ingest  # Prefect reads PREFECT_HOME at import: after activate()
    from flows.train import run_train

    sources = workdir / "classify-sources"
    folders = {
        "digits": lambda path: digits_folder(path, per_class),
        "cameras": lambda path: cameras_folder(path, sources, per_class),
        "crease": lambda path: crease_folder(path, sources, per_class),
    }
    rows = []
    for name, make in folders.items():
        folder = make(workdir / "classify" / name)
        ingested = run_ingest(settings, str(folder), "classify", dataset=name)
        row: dict[str, object] = {"dataset": name, "classes": len(list(folder.iterdir())),
                                  "images": ingested.received, "accepted": ingested.accepted,
                                  "quarantined": ingested.quarantined}
        if ingested.status == "accepted":
            trained = run_train(settings, "classify", dataset=name,
                                model_name=f"{name}-classifier")
            accuracy = trained.metrics["val_accuracy"]
            row.update(val_accuracy=round(accuracy, 3), seconds=trained.seconds,
                       met=accuracy >= TARGET_ACCURACY)
        else:
            row.update(val_accuracy=None, seconds=None, met=False)
        rows.append(row)
    return rows
