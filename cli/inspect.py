"""`gradeline inspect`: a registered model run on every image of a folder or S3 prefix, a JSON
report per image and a summary (components/inspection.py does the work)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cli.common import JsonFlag, fail, progress_bar, show
from components.settings import load_settings


def inspect(
    source: Annotated[str, typer.Argument(help="Folder of images, or s3://bucket/prefix.")],
    model: Annotated[str, typer.Option(
        help="Registered model: NAME, NAME@ALIAS or NAME@VERSION (default alias: champion).")]
    = "defect-detector@champion",
    out: Annotated[Path | None, typer.Option(
        help="Folder for the reports; default <home>/reports/inspect/<the folder's or the "
             "prefix's last name>.")]
    = None,
    batch_size: Annotated[int, typer.Option(help="Images per run of the graph.")] = 16,
    as_json: JsonFlag = False,
) -> None:
    """Run MODEL on every image of SOURCE: one JSON report per image (defects with class, box
    and confidence, or the grade; model, version, data version, the image's sha256), and a
    summary (summary.csv, summary.html with a contact sheet of the most defective images).

    Exits 1 when an image could not be read (each is listed with why; the rest are inspected).
    """
    from components.ingest.model import IngestError
    from components.ingest.s3 import parse_s3_uri, s3_client, stage_s3
    from components.inspection import (
        find_images,
        inspect_folder,
        load_inspecting_model,
        write_summary,
    )

    settings = load_settings()
    try:
        loaded = load_inspecting_model(str(settings.mlflow_tracking_uri),
                                       settings.cache_dir / "inspect", model)
    except (LookupError, ValueError) as error:
        raise fail(str(error)) from None
    with tempfile.TemporaryDirectory(prefix="gradeline-inspect-") as staging:
        if source.startswith("s3://"):
            try:
                bucket, prefix = parse_s3_uri(source)
                staged = stage_s3(source, Path(staging) / bucket, s3_client(settings))
            except IngestError as error:
                raise fail(str(error)) from None
            folder, unreadable = staged.root, staged.unreadable
            name = prefix.rstrip("/").rsplit("/", 1)[-1] or bucket
        else:
            folder, unreadable = Path(source), {}
            name = folder.resolve().name
        target = out or settings.reports_dir / "inspect" / name
        try:
            total = len(find_images(folder, unreadable))
            with progress_bar() as bar:
                task = bar.add_task(f"inspecting with {loaded.model.model}", total=total)
                run = inspect_folder(loaded, folder, target, unreadable, batch_size,
                                     lambda done: bar.advance(task, done))
        except FileNotFoundError as error:
            raise fail(str(error)) from None
    figures = write_summary(run, target)
    figures["reports"] = str(target)
    show(figures, as_json, [
        f"{figures['inspected']} images inspected by {run.model} version {run.version}, "
        f"{figures['with_defects']} with defects: {target / 'summary.html'}",
        *(f"  {name}: {count} images" for name, count in figures["per_class"].items()),
        *(f"unreadable: {name}: {why}" for name, why in run.unreadable)])
    if run.unreadable:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add `inspect` to the main CLI."""
    app.command("inspect")(inspect)
