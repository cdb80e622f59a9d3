"""`gradeline pretrain-detector`: the detector's starter checkpoint, trained from scratch on
factory cards (components/train/pretrain.py); the DVC stage `pretrain-detector` runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import JsonFlag, ParamsOption, say, show
from components.settings import find_project_root, load_settings


def pretrain_detector(
    device: Annotated[str | None, typer.Option(
        help="cpu, or a GPU (0); default a GPU when there is one.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs; default params.yaml's.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Where the starter goes; default models/detector-starter.pt.")] = None,
    params: ParamsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Train the detector's starter checkpoint from scratch on factory cards, resuming an
    interrupted run from its last epoch; a finished run writes the weights and a record of how
    they were made (data, epochs, device, figures) beside them.
    """
    from components.cards import detection_batch
    from components.params import load_params
    from components.train.pretrain import STARTER, PretrainConfig
    from components.train.pretrain import pretrain_detector as pretrain

    config = load_params("pretrain_detector", PretrainConfig, params)
    changes = {k: v for k, v in {"device": device, "epochs": epochs}.items() if v is not None}
    config = config.model_copy(update=changes)
    target = out or find_project_root() / STARTER
    work = load_settings().cache_dir / "pretrain-detector"

    def epoch_done(row: dict[str, float]) -> None:
        say(f"epoch {int(row['epoch'])}/{config.epochs}: val mAP50 {row['map50']:.3f}, "
            f"mAP50-95 {row['map50_95']:.3f}")

    cards = detection_batch(work / "cards", n=config.cards, seed=config.seed)
    record = pretrain(config, cards, work, target, on_epoch=epoch_done)
    show(record, as_json, [f"{target}: {record['epochs_run']} epochs on {record['device']}, "
                           f"val mAP50 {record['val_map50']}, record in "
                           f"{target.with_suffix('.json')}"])


def register(app: typer.Typer) -> None:
    """Add `pretrain-detector` to the main CLI."""
    app.command("pretrain-detector")(pretrain_detector)
