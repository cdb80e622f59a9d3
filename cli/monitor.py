"""The monitoring commands of `gradeline`: monitor, silence, retrain, land and prune.

    gradeline monitor [--model card-grader] [--window 24h] [--json]
    gradeline silence --model card-grader --hours 12 --by ada --reason "new camera, retraining"
    gradeline retrain [--model card-grader] [--reason TEXT] [--no-promote] [--json]
    gradeline land incoming/batch-7 [--task grade] [--dataset cards]
    gradeline prune [--dry-run] [--json]

Mounted by the main CLI with `register(app)`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cli.common import ByOption, JsonFlag, ModelOption, ParamsOption, fail, show
from components.settings import load_settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_HOURS_PER_UNIT = {"m": 1 / 60, "h": 1.0, "d": 24.0}


def parse_hours(window: str) -> float:
    """'90m', '24h' or '7d' in hours; BadParameter for anything else."""
    matched = _DURATION.match(window.strip())
    if not matched:
        raise typer.BadParameter(f"{window!r} is not a duration such as 90m, 24h or 7d")
    return float(matched.group(1)) * _HOURS_PER_UNIT[matched.group(2)]


def monitor(
    model: ModelOption = "card-grader",
    window: Annotated[str | None, typer.Option(help="How far back: 90m, 24h, 7d; default "
                                               "params.yaml monitor.window_hours.")] = None,
    params: ParamsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Compare the last window of served photos with the champion's reference: Evidently
    reports, an alert once per incident, and the event that triggers retraining."""
    from components.ingest.store import DatasetError
    from components.monitor.window import MonitorError
    from flows.monitor import run_monitor

    hours = parse_hours(window) if window else None
    try:
        summary = run_monitor(load_settings(), model, hours,
                              params_file=str(params) if params else None)
    except (MonitorError, DatasetError) as error:
        raise fail(str(error)) from None
    show(summary, as_json, [
        f"{model} version {summary['version']}, {summary['since']} .. {summary['until']}: "
        f"{summary['headline']}",
        f"incident: {summary['incident']['action']} ({summary['incident']['reason']})",
        f"report: {summary['report']}",
        *([f"most drifted photos: {summary['contact_sheet']}"] if summary["contact_sheet"]
          else []),
        *([f"detector recall per class: {summary['detector_recall']} (needs more data: "
           f"{', '.join(summary['detector_needs_more_data']) or 'none'})"]
          if summary.get("detector_recall") else [])])


def silence(
    model: ModelOption = "card-grader",
    hours: Annotated[float, typer.Option(help="How long drift alerts stay quiet.")] = 12.0,
    by: ByOption = ...,
    reason: Annotated[str, typer.Option(help="The known cause, for whoever looks next.")] = ...,
    as_json: JsonFlag = False,
) -> None:
    """Silence the model's drift incident (or one about to open: a known change) for a while;
    reports are still written and a recovery is still announced."""
    from components.monitor.incidents import IncidentBook
    from components.monitor.params import MonitorParams
    from components.params import load_params

    settings = load_settings()
    cooldown = timedelta(hours=load_params("monitor", MonitorParams).cooldown_hours)
    until = datetime.now(UTC) + timedelta(hours=hours)
    incident = IncidentBook(settings.home / "monitor" / "incidents.json", cooldown).silence(
        model, until, reason, by)
    typer.echo(json.dumps(incident.as_dict(), default=str) if as_json else
               f"{model}: drift alerts silenced until {until:%Y-%m-%d %H:%M} UTC ({reason})")


def retrain(
    model: ModelOption = "card-grader",
    reason: Annotated[str, typer.Option(help="Why, for the run's record.")] = "manual",
    source: Annotated[Path | None, typer.Option(help="The batch to ingest; default the newest "
                                                "folder in <home>/inbox.")] = None,
    promote: Annotated[bool, typer.Option(help="Hand a candidate that passed its gates to "
                                          "promote (shadow, canary).")] = True,
    params: ParamsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Ingest the newest labeled batch, train, evaluate, and promote the candidate if it passes
    its gates (what the drift trigger and the nightly schedule run)."""
    from flows.retrain import run_retrain

    summary = run_retrain(load_settings(), model, reason=reason,
                          source=str(source) if source else None, promote_candidate=promote,
                          params_file=str(params) if params else None)
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else
               f"{model}: {summary['status']} " + json.dumps(
                   {k: summary.get(k) for k in ("version", "kappa", "stage", "data_version")},
                   default=str))


# Run with PREFECT_API_URL set: Prefect reads its API once per process, and this one may have
# read none (the embedded default). The process sends its queued events before it exits.
_ANNOUNCE = ("import json, sys; from prefect.events import emit_event; "
             "emit_event('gradeline.batch.landed', json.loads(sys.argv[1]))")


def land(
    batch: Annotated[Path, typer.Argument(help="A labeled batch folder.")],
    task: Annotated[str, typer.Option(help="grade, detect or classify.")] = "grade",
    dataset: Annotated[str | None, typer.Option(help="Dataset to ingest into.")] = None,
) -> None:
    """Put a labeled batch in <home>/inbox and announce it: the event gradeline.batch.landed,
    on which the ingest-new-batch deployment triggers (on `gradeline up`'s server, or
    PREFECT_API_URL's)."""
    from cli.supervisor import prefect_api

    settings = load_settings()
    target = settings.inbox_dir / batch.name
    if not batch.is_dir():
        raise fail(f"{batch} is not a folder")
    if target.exists():
        raise fail(f"{target} exists: a batch lands once; give this one another name")
    shutil.copytree(batch, target)
    api = prefect_api(settings)
    if api is None:
        typer.echo(f"{target}: landed; no Prefect server to announce it to (`gradeline up`), "
                   "so `gradeline retrain` or `gradeline ingest` will pick it up")
        return
    resource = {"prefect.resource.id": f"gradeline.batch.{target.name}",
                "gradeline.batch.path": str(target), "gradeline.batch.task": task,
                **({"gradeline.batch.dataset": dataset} if dataset else {})}
    subprocess.run([sys.executable, "-c", _ANNOUNCE, json.dumps(resource)], check=True,
                   env={**os.environ, **api})
    typer.echo(f"{target}: landed and announced to {api['PREFECT_API_URL']} "
               "(gradeline.batch.landed)")


def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
    params: ParamsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete what is past its retention (params.yaml `retention:`): old prediction log rows,
    thumbnails, reports, Prefect results and cached models no alias names (the Prefect flow
    `retention`, which the daily-retention deployment runs)."""
    from flows.retention import run_retention

    summary = run_retention(load_settings(), str(params) if params else None, dry_run)
    verb = "would prune" if dry_run else "pruned"
    show(summary, as_json, (f"{verb} {item['what']}: {item['items']} items, "
                            f"{item['bytes'] / 1e6:.1f} MB" for item in summary["pruned"]))


def register(app: typer.Typer) -> None:
    """Add the monitoring commands to the main CLI."""
    for command in (monitor, silence, retrain, land, prune):
        app.command(command.__name__)(command)
