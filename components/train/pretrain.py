"""The detector's starter checkpoint, made by the project itself as Ultralytics ships COCO
weights: a YOLO model trained from scratch on factory cards, which every `--task detect`
fine-tune starts from. Nothing pretrained may be downloaded here, so this is where the
detector's first knowledge comes from.

    cards = detection_batch(work / "cards", n=2000, seed=20261206)   # components/cards
    record = pretrain_detector(PretrainConfig(cards=2000, epochs=100, imgsz=320), cards,
                               work=Path(".gradeline/pretrain"), out=STARTER)
    record["val_map50"], record["epochs_run"], STARTER.with_suffix(".json")   # how it was made

The Ultralytics run lives under `work`, beside the factory batch the caller made there; a call
after an interruption (a
session that ended, a killed job) resumes the run from its last epoch, so a long CPU run can
span days. Only a finished run writes `out` (the best epoch's weights, a few MB, committed with
the DVC lock entry) and the record beside it.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import Field

from components.params import StrictParams
from components.train.detector import DetectorConfig, train_detector

STARTER = Path("models/detector-starter.pt")  # relative to the project root


class PretrainConfig(StrictParams):
    """What the starter is trained on and how long (params.yaml `pretrain_detector`)."""

    cards: int = Field(2000, ge=10, description="factory cards (studio); train and val splits")
    seed: int = Field(20261206, description="the factory batch's seed: the same cards anywhere")
    epochs: int = Field(100, ge=1)
    imgsz: int = Field(320, ge=32, description="square training size, a multiple of 32")
    batch: int = Field(16, ge=1)
    model: str = Field("yolo11n.yaml", description="the model YAML trained from scratch")
    device: str | None = Field(None, description="cpu, 0 (a GPU); None: a GPU if any, else cpu")


def pretrain_detector(config: PretrainConfig, dataset: Path, work: Path, out: Path,
                      on_epoch: Callable[[dict[str, float]], None] | None = None
                      ) -> dict[str, object]:
    """Train (or resume training) the starter on the detection dataset `dataset` (the factory
    batch `config` describes) under `work`; when the run has finished, copy its best weights
    to `out` and write how they were made to `out` with suffix .json."""
    started = time.perf_counter()
    device = config.device or ("0" if torch.cuda.is_available() else "cpu")
    result = train_detector(dataset, work / "yolo", DetectorConfig(
        epochs=config.epochs, imgsz=config.imgsz, batch=config.batch, patience=config.epochs,
        seed=config.seed, model=config.model, device=device), on_epoch=on_epoch, resume=True)
    record: dict[str, object] = {
        "config": config.model_dump(), "device": device,
        "device_name": torch.cuda.get_device_name(0) if device != "cpu" else "cpu",
        "torch_threads": torch.get_num_threads(), "epochs_run": result.epochs_run,
        "seconds_this_call": round(time.perf_counter() - started, 1),
        "images_per_s": result.images_per_s,
        # a class without a validation box has no figure: null, not NaN, in the JSON
        **{f"val_{name}": None if math.isnan(value) else round(value, 4)
           for name, value in result.metrics.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.weights, out)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record
