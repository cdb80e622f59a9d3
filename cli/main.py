"""The `gradeline` command: one entry point for the platform team.

    gradeline data synth --n 200 --seed 1 --out batch/ [--camera phone] [--json]
    gradeline data sheet batch/ --out cards.png
    gradeline centering card.jpg [--json]
    gradeline ingest incoming/batch-7 [--task grade|detect|segment|classify] [--dataset N] [--json]
    gradeline train --task grade|detect|classify [--data-version V] [--profile fast|full]
        [--warm-from VERSION] [--json]
    gradeline pretrain-detector [--device cpu|0] [--epochs N] [--json]
    gradeline evaluate --model card-grader [--version N] [--json]
    gradeline inspect FOLDER|s3://bucket/prefix [--model defect-detector@champion] [--out DIR]
    gradeline keys create --name NAME --role client|expert|operator | list | revoke KEY_ID
    gradeline serve [--host 127.0.0.1] [--port 8080]
    gradeline promote --model card-grader --version N [--first] [--no-wait] [--json]
    gradeline approve | reject --model card-grader --version N --by NAME
    gradeline rollback --model card-grader --by NAME [--reason TEXT]
    gradeline release abort --model card-grader --by NAME [--reason TEXT]
    gradeline monitor [--model card-grader] [--window 24h] [--json]
    gradeline silence --model card-grader --hours 12 --by NAME --reason TEXT
    gradeline retrain [--model card-grader] [--no-promote] [--json]
    gradeline prune [--dry-run] [--json]
    gradeline up [--profile embedded|cluster] | down | deploy
    gradeline reviewers add NAME [--out FILE]
    gradeline review gold REQUEST_ID GRADE --by NAME | experts [--json]
    gradeline ui [--port 5000]
    gradeline config show [--json]
    gradeline demo

Every command that reports results takes `--json` for machines; progress goes to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import cv2
import typer

from cli.common import JsonFlag, fail, progress_bar, show
from cli.config import config_app
from cli.inspect import register as register_inspect_command
from cli.keys import keys_app
from cli.monitor import register as register_monitor_commands
from cli.pretrain import register as register_pretrain_command
from cli.release import register as register_release_commands
from cli.review import review_app
from cli.reviewers import reviewers_app
from cli.stack import register as register_stack_commands
from components.cards import CAMERAS, FactoryError, contact_sheet, synthesize_batch
from components.cards.sheet import legend
from components.settings import load_settings, mask_uri
from components.vision.centering import CenteringError, draw_centering, measure_centering
from components.vision.tasks import UnsupportedTask

app = typer.Typer(help="Gradeline: keep vision grading models correct in production.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Make and inspect labeled image batches.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.add_typer(reviewers_app, name="reviewers")
app.add_typer(review_app, name="review")
register_release_commands(app)
register_monitor_commands(app)
register_stack_commands(app)
register_inspect_command(app)
register_pretrain_command(app)

@app.callback()
def main(
    home: Annotated[Path | None, typer.Option(
        help="Home folder of all local state (GRADELINE_HOME); default .gradeline/.")] = None,
) -> None:
    """Resolve the settings once, before any flow module imports Prefect or MLflow."""
    load_settings(home=home).activate()


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="New (or empty) folder to write the batch to.")],
    n: Annotated[int, typer.Option("--n", help="Number of cards.")] = 200,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    camera: Annotated[str, typer.Option(help=f"One of: {', '.join(CAMERAS)}.")] = "studio",
    workers: Annotated[int | None, typer.Option(help="Processes; default all cores.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a labeled batch of photographed trading cards with known ground truth."""
    try:
        with progress_bar() as progress:
            task = progress.add_task(f"cards ({camera})", total=n)
            summary = synthesize_batch(out, n=n, seed=seed, camera=camera, workers=workers,
                                       on_progress=lambda done: progress.advance(task, done))
    except FactoryError as error:
        raise fail(str(error)) from None
    show(summary.as_dict(), as_json, [
        f"{summary.count} cards ({camera}) in {summary.out_dir}: {summary.cards_per_s} cards/s",
        "grades: " + "  ".join(f"{g}:{c}" for g, c in summary.grade_histogram.items())])


@data_app.command("sheet")
def data_sheet(
    batch: Annotated[Path, typer.Argument(help="A folder written by `gradeline data synth`.")],
    out: Annotated[Path, typer.Option(help="PNG file to write.")],
    count: Annotated[int, typer.Option(help="Cards to show.")] = 8,
    columns: Annotated[int, typer.Option(help="Cards per row.")] = 4,
) -> None:
    """Draw a contact sheet of a batch: photos, defect boxes, centering and grades."""
    if not (batch / "manifest.csv").is_file():
        raise fail(f"{batch} has no manifest.csv; make one with `gradeline data synth`")
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), contact_sheet(batch, count=count, columns=columns))
    typer.echo(f"wrote {out} (boxes: {legend()})")


@app.command("centering")
def centering(
    images: Annotated[list[Path], typer.Argument(help="Photos of cards.")],
    overlay: Annotated[Path | None, typer.Option(help="Folder for annotated copies.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Measure left/right and top/bottom centering of each card photo (classical CV)."""
    results: dict[str, object] = {}
    for path in images:
        image = cv2.imread(str(path))
        if image is None:
            results[str(path)] = {"error": "not a readable image"}
            continue
        try:
            measurement = measure_centering(image)
        except CenteringError as error:
            results[str(path)] = {"error": str(error)}
            continue
        results[str(path)] = measurement.as_dict()
        if overlay is not None:
            overlay.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(overlay / f"{path.stem}.png"), draw_centering(image, measurement))
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for path, result in results.items():
            if "error" in result:
                typer.echo(f"{path}: {result['error']}")
            else:
                lr, tb = result["centering_lr"], result["centering_tb"]
                typer.echo(f"{path}: LR {lr:.1f}/{100 - lr:.1f}  TB {tb:.1f}/{100 - tb:.1f}")
    if any("error" in result for result in results.values()):
        raise typer.Exit(code=1)


@app.command("ingest")
def ingest(
    source: Annotated[str, typer.Argument(help="Batch folder, COCO/YOLO export, or s3://bucket/prefix.")],
    task: Annotated[str, typer.Option(
        help="grade | detect | segment | classify: which labels to check.")]
    = "grade",
    dataset: Annotated[str | None, typer.Option(help="Dataset to add to; default the task name.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Check, validate, quarantine and version one labeled batch (the Prefect flow `ingest`).

    Exits 0 when the batch was accepted or was already ingested, 1 when it was rejected.
    """
    from components.ingest.model import IngestError  # the ingest stack: only when ingesting
    from flows.ingest import run_ingest  # imports Prefect: only after main() exported the settings

    try:
        summary = run_ingest(load_settings(), source, task, dataset)
    except (IngestError, UnsupportedTask) as error:
        raise fail(str(error)) from None
    show(summary.as_dict(), as_json, summary.lines())
    if summary.status == "rejected":
        raise typer.Exit(code=1)


@app.command("train")
def train(
    task: Annotated[str, typer.Option(help="grade | detect | classify.")] = "grade",
    dataset: Annotated[str | None, typer.Option(help="Dataset to train on; default the task "
                                                "name.")] = None,
    data_version: Annotated[str | None, typer.Option(
        help="DVC data version (hash) to train on; default the dataset's current one.")] = None,
    profile: Annotated[str, typer.Option(help="fast (minutes on a CPU) | full.")] = "fast",
    model_name: Annotated[str | None, typer.Option(
        help="Registered model name; default from params.yaml (card-grader, ...).")] = None,
    weights: Annotated[Path | None, typer.Option(
        help="detect only: a YOLO .pt to start from instead of training from its YAML.")] = None,
    params: Annotated[Path | None, typer.Option(
        help="A params.yaml whose train: section sets the budgets; default the project's.")]
    = None,
    warm_from: Annotated[int | None, typer.Option(
        help="grade | classify: fine-tune this registered version of the model on the items it "
             "has not seen and a replay of those it has (what `retrain` does).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a model on an ingested dataset, track it in MLflow and register it as a candidate
    (the Prefect flow `train`). Running it again after a crash resumes from the checkpoint."""
    from components.ingest.model import IngestError
    from components.ingest.store import DatasetError
    from components.ingest.versioning import VersioningError
    from components.train.detector import DetectorError
    from components.train.tasks import TrainDataError
    from flows.train import run_train  # imports Prefect: only after main() exported settings
    from model_registry import VersionNotFound

    if profile not in ("fast", "full"):
        raise fail(f"unknown profile {profile!r}; choose fast or full")
    try:
        summary = run_train(load_settings(), task, dataset, data_version, profile, model_name,
                            str(weights) if weights else None, str(params) if params else None,
                            warm_from)
    except (TrainDataError, DatasetError, DetectorError, VersioningError, VersionNotFound,
            IngestError, UnsupportedTask) as error:
        raise fail(str(error)) from None
    show(summary.as_dict(), as_json, summary.lines())


@app.command("evaluate")
def evaluate(
    model: Annotated[str, typer.Option(help="Registered model name.")] = "card-grader",
    version: Annotated[int | None, typer.Option(help="Model version; default the newest.")]
    = None,
    params: Annotated[Path | None, typer.Option(
        help="A params.yaml whose evaluate: section sets gates and budgets; default the "
             "project's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Judge a model version against the expert panel, calibrate and export it, and write its
    gates to the registry (the Prefect flow `evaluate`). Exits 1 when a gate fails."""
    from components.evaluate.grader import EvaluationError
    from components.evaluate.report import summary_lines
    from components.ingest.store import DatasetError
    from components.train.detector import DetectorError
    from flows.evaluate import run_evaluate  # imports Prefect: only after main() exported settings
    from model_registry import VersionNotFound

    try:
        summary = run_evaluate(load_settings(), model, version, str(params) if params else None)
    except (EvaluationError, DatasetError, DetectorError, VersionNotFound,
            UnsupportedTask) as error:
        raise fail(str(error)) from None
    show(summary, as_json, summary_lines(summary))
    if any(not gate["passed"] for gate in summary["gates"]):
        raise typer.Exit(code=1)


@app.command("ui")
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Open the MLflow UI on this home's tracking store and registry (runs, model versions,
    tags and plots), on loopback. Stop it with Ctrl-C."""
    import os
    import subprocess
    import sys

    settings = load_settings()
    command = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)]
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (store "
               f"{mask_uri(str(settings.mlflow_tracking_uri))})", err=True)
    raise typer.Exit(subprocess.call(command, env={**os.environ,
                                                   **settings.mlflow_server_env()}))


@app.command("demo")
def demo(as_json: JsonFlag = False) -> None:
    """Run the platform's main job on the embedded defaults and say what it did."""
    from flows.demo import run_demo  # imports Prefect: only after main() exported the settings

    report = run_demo(load_settings(), echo=None if as_json else typer.echo)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    if not report.ok:
        raise typer.Exit(code=1)
