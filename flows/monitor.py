"""The Prefect flow `monitor`: a window of served traffic against the champion's reference,
Evidently reports, the SLOs (error rate, p99 latency), one alert per incident, and the event
that starts retraining.

    monitor("card-grader")                                    # the last 24 hours (params.yaml)
    monitor("card-grader", since="2026-11-23T04:00:00+00:00", until="2026-11-23T05:00:00+00:00")

The reference is the held-out images (never trained on) among the newest
`monitor.reference_items` of the data version the champion was trained on, graded by the
champion itself (properties, grades, set sizes, embeddings), cached
per champion version. Each run writes `drift.html` and `drift.json` under
`<reports>/monitor/<model>/<time>/` and adds the run to the Evidently workspace
`<home>/evidently` (`evidently ui --workspace <home>/evidently` shows the history). On drift it
tells on-call once per incident (a cooldown; new signals or a lapsed cooldown alert again),
draws the most drifted served photos on a contact sheet, and emits the Prefect event
`gradeline.drift.detected`, on which the `retrain-on-drift` deployment triggers. A clean window
after an incident announces the recovery. Import after `settings.activate()`.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from components.monitor.alerts import drift_alert, recovery_alert
from components.monitor.drift import (
    DriftJudgement,
    judge_window,
    most_drifted,
    property_z_scores,
)
from components.monitor.incidents import IncidentBook, Verdict
from components.monitor.params import MonitorParams
from components.monitor.reference import grade_reference, held_out_items, served_window
from components.monitor.report import contact_sheet, record_in_workspace, write_reports
from components.monitor.slo import slo_signals
from components.oncall import tell_on_call
from components.params import load_params
from components.predlog import PredictionLog
from components.serving.thumbnails import thumbnail_path
from components.settings import GradelineSettings, load_settings
from components.vision.models import OnnxGrader
from flows.train import resolve_data
from model_registry.names import ALIAS_CHAMPION, GATE_PREFIX
from model_registry.serving import alias_versions, download_graph, graph_checksum, version_metric
from model_registry.versions import RegisteredVersion

DRIFT_EVENT = "gradeline.drift.detected"
RECOVERY_EVENT = "gradeline.drift.recovered"


class MonitorError(RuntimeError):
    """Monitoring cannot judge: no champion, or a window that makes no sense."""


@task(cache_policy=NO_CACHE)
def reference_frame(settings: GradelineSettings, champion: RegisteredVersion,
                    params: MonitorParams) -> tuple[pd.DataFrame, Path]:
    """The champion's reference, graded once per champion version and reference size."""
    cache = settings.cache_dir / "monitor" / (f"reference-{champion.name}-{champion.version}-"
                                              f"{params.reference_items}.pkl")
    if cache.exists():
        return pickle.loads(cache.read_bytes()), cache
    task_name = champion.tags.get("task", "grade")
    data = resolve_data(settings, champion.tags.get("dataset", task_name), task_name,
                        champion.data_version)
    images = held_out_items(pd.read_csv(data.root / "manifest.csv"), params.reference_items,
                            data.root)
    folder = settings.cache_dir / "monitor" / f"{champion.name}-{champion.version}"
    graph = download_graph(str(settings.mlflow_tracking_uri), champion, folder)
    grader = OnnxGrader.load(graph, graph_checksum(champion), champion.name, champion.version)
    frame = grade_reference(images, grader)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(frame))
    return frame, cache


@task(cache_policy=NO_CACHE)
def window_frames(settings: GradelineSettings, model: str, since: datetime,
                  until: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The champion's prediction-log rows in [since, until) (errors included, for the SLOs),
    and the photos it answered, with expert grades where they arrived (for drift)."""
    log = PredictionLog(str(settings.prediction_log_uri))
    predictions = log.window(since, until, model=model, roles=[ALIAS_CHAMPION])
    return predictions, served_window(predictions, log.expert_grades())


@task(cache_policy=NO_CACHE)
def publish(settings: GradelineSettings, judgement: DriftJudgement, model: str,
            until: datetime, title: str) -> dict[str, str]:
    """The HTML and JSON reports, and the run in the Evidently workspace."""
    folder = settings.reports_dir / "monitor" / model / until.strftime("%Y%m%dT%H%M%S")
    html, data = write_reports(judgement, folder, title)
    project = record_in_workspace(judgement, settings.evidently_workspace, f"{model} drift",
                                  until)
    return {"report": str(html), "json": str(data), "workspace": str(settings.evidently_workspace),
            "project": project}


def draw_most_drifted(settings: GradelineSettings, reference: pd.DataFrame,
                      window: pd.DataFrame, params: MonitorParams, folder: Path) -> str | None:
    """A contact sheet of the served photos farthest from the reference (those with a
    thumbnail), each captioned with its farthest property; its path, or None when no
    thumbnail was kept."""
    z_scores = property_z_scores(reference, window).set_axis(window["request_id"])
    photos = []
    for request_id in most_drifted(reference, window, params.sheet_images):
        image = cv2.imread(str(thumbnail_path(settings.thumbnails_dir, request_id)))
        if image is not None:
            farthest = z_scores.loc[request_id].abs().idxmax()
            z = z_scores.loc[request_id, farthest]
            photos.append((f"{request_id[:14]} {farthest} z={z:+.1f}", image))
    return str(contact_sheet(photos, folder / "most_drifted.png")) if photos else None


@task(cache_policy=NO_CACHE)
def tell(settings: GradelineSettings, verdict: Verdict, judgement: DriftJudgement,
         champion: RegisteredVersion, window: str, files: dict[str, str],
         sheet: str | None) -> str | None:
    """Alert on-call and emit the event for an alert or a recovery; the subject sent."""
    model, version = champion.name, champion.version
    resource = {"prefect.resource.id": f"gradeline.model.{model}", "gradeline.model.name": model,
                "gradeline.model.version": str(version)}
    if verdict.action == "alert":
        subject, body = drift_alert(model, version, window, judgement.as_dict(),
                                    files["report"], sheet, verdict)
        emit_event(DRIFT_EVENT, resource, payload={
            "incident": verdict.incident_id, "report": files["report"],
            "drifted": [signal.name for signal in judgement.drifted], "window": window})
    elif verdict.action == "recovered":
        subject, body = recovery_alert(model, version, window, verdict)
        emit_event(RECOVERY_EVENT, resource, payload={"incident": verdict.incident_id})
    else:
        return None
    tell_on_call(settings, subject, body)
    return subject


def window_bounds(window_hours: float | None, since: str | None, until: str | None,
                  params: MonitorParams) -> tuple[datetime, datetime]:
    """[since, until) in UTC: explicit ISO times, or the last `window_hours` before `until`."""
    end = datetime.fromisoformat(until) if until else datetime.now(UTC)
    start = (datetime.fromisoformat(since) if since
             else end - timedelta(hours=window_hours or params.window_hours))
    if start.tzinfo is None or end.tzinfo is None:
        raise MonitorError("window times need a UTC offset, e.g. 2026-11-23T04:00:00+00:00")
    if start >= end:
        raise MonitorError(f"the window starts ({start.isoformat()}) after it ends "
                           f"({end.isoformat()})")
    return start, end


@flow(name="monitor")
def monitor(model: str = "card-grader", window_hours: float | None = None,
            since: str | None = None, until: str | None = None,
            params_file: str | None = None) -> dict[str, object]:
    """Judge the champion's served window against its reference, publish the reports, and
    alert (or announce a recovery) once per incident. Returns the judgement and file paths."""
    settings = load_settings()
    params = load_params("monitor", MonitorParams, Path(params_file) if params_file else None)
    start, end = window_bounds(window_hours, since, until, params)
    champion = alias_versions(str(settings.mlflow_tracking_uri), model,
                              [ALIAS_CHAMPION]).get(ALIAS_CHAMPION)
    if champion is None:
        raise MonitorError(f"{model} has no champion: there is nothing served to monitor")
    reference, _ = reference_frame(settings, champion, params)
    predictions, window = window_frames(settings, model, start, end)
    champion_kappa = version_metric(str(settings.mlflow_tracking_uri), champion,
                                    f"{GATE_PREFIX}kappa")
    judgement = judge_window(reference, window, params, champion_kappa).with_signals(
        slo_signals(predictions, params.slo))
    span = f"{start:%Y-%m-%d %H:%M:%S}..{end:%H:%M:%S} UTC"
    title = f"{model} version {champion.version}: drift, {span}"
    files = publish(settings, judgement, model, end, title)
    verdict = IncidentBook(settings.home / "monitor" / "incidents.json",
                           timedelta(hours=params.cooldown_hours)).observe(
        model, judgement.status, [signal.name for signal in judgement.drifted], end)
    sheet = (draw_most_drifted(settings, reference, window, params, Path(files["report"]).parent)
             if verdict.action in ("alert", "silenced", "quiet") else None)
    subject = tell(settings, verdict, judgement, champion, span, files, sheet)
    get_run_logger().info("%s v%s: %s (incident: %s)", model, champion.version,
                          judgement.headline(), verdict.action)
    return {"model": model, "version": champion.version, "since": start.isoformat(),
            "until": end.isoformat(), **judgement.as_dict(), "headline": judgement.headline(),
            "incident": verdict.as_dict(), "alert": subject, "contact_sheet": sheet, **files}


def run_monitor(settings: GradelineSettings, model: str, window_hours: float | None = None,
                since: str | None = None, until: str | None = None,
                params_file: str | None = None) -> dict[str, object]:
    """Run `monitor` on these settings' home and return its summary."""
    settings.activate()
    return monitor(model, window_hours, since, until, params_file)
