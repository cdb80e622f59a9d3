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
draws the most drifted served photos on a contact sheet and queues them for the experts'
review, and emits the Prefect event
`gradeline.drift.detected`, on which the `retrain-on-drift` deployment triggers. A clean window
after an incident announces the recovery. Import after `settings.activate()`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import cv2
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from components.box_reviews import BoxReviews
from components.evaluate.params import EvaluateParams
from components.experts import expert_alert, expert_drift, expert_history
from components.ingest.store import DatasetStore
from components.monitor.alerts import drift_alert, recovery_alert
from components.monitor.boxes import (
    box_agreement,
    needs_more_data,
    recall_over_time_png,
    record_recall_in_workspace,
)
from components.monitor.discrepancy import discrepancies, discrepancy_html
from components.monitor.drift import (
    DriftJudgement,
    judge_window,
)
from components.monitor.incidents import IncidentBook, Verdict
from components.monitor.outliers import most_drifted, most_drifted_sheet
from components.monitor.params import MonitorParams
from components.monitor.reference import (
    cached_reference,
    grade_reference,
    held_out_items,
    served_window,
)
from components.monitor.report import record_in_workspace, write_reports
from components.monitor.slo import slo_signals
from components.monitor.window import MonitorError, window_bounds
from components.oncall import tell_on_call
from components.params import load_params
from components.predlog import PredictionLog
from components.reviews import (
    DRIFTED,
    ReviewParams,
    ReviewQueue,
)
from components.settings import GradelineSettings, load_settings
from components.thumbnails import thumbnail_path
from components.vision.models import OnnxGrader
from model_registry.names import ALIAS_CHAMPION, DETECTOR, GATE_PREFIX
from model_registry.serving import alias_versions, download_graph, graph_checksum, version_metric
from model_registry.versions import RegisteredVersion

DRIFT_EVENT = "gradeline.drift.detected"
RECOVERY_EVENT = "gradeline.drift.recovered"


@task(cache_policy=NO_CACHE)
def reference_frame(settings: GradelineSettings, champion: RegisteredVersion,
                    params: MonitorParams) -> pd.DataFrame:
    """The champion's reference, graded once per champion version and reference size."""
    folder = settings.cache_dir / "monitor" / f"{champion.name}-{champion.version}"

    def grade() -> pd.DataFrame:
        task_name = champion.tags.get("task", "grade")
        data = DatasetStore.of(settings, champion.tags.get("dataset", task_name)).snapshot(
            task_name, champion.data_version)
        images = held_out_items(pd.read_csv(data.root / "manifest.csv"),
                                params.reference_items, data.root)
        graph = download_graph(str(settings.mlflow_tracking_uri), champion, folder)
        return grade_reference(images, OnnxGrader.load(graph, graph_checksum(champion),
                                                       champion.name, champion.version))

    return cached_reference(folder / f"reference-{params.reference_items}.pkl", grade)


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


@task(cache_policy=NO_CACHE)
def report_discrepancies(settings: GradelineSettings, predictions: pd.DataFrame, folder: Path,
                         title: str, params_file: str | None) -> dict[str, object]:
    """Where the champion's answers and the experts' consensus part in this window (by
    camera, grade, defect class, set size), and each expert day by day against the panel and
    the gold items: the page beside the drift report, and its worst group."""
    log = PredictionLog(str(settings.prediction_log_uri))
    review = load_params("review", ReviewParams, Path(params_file) if params_file else None)
    found = discrepancies(predictions, log.expert_grades())
    history = expert_history(log.expert_panel(), ReviewQueue(log, review).gold())
    page = discrepancy_html(found, folder / "discrepancy.html", title, history,
                            review.expert_max_bias)
    return {"discrepancy": str(page), "discrepancy_worst": found.worst()}


@task(cache_policy=NO_CACHE)
def detector_agreement(settings: GradelineSettings, model: str, params: MonitorParams,
                       min_recall: float, folder: Path, now: datetime) -> dict[str, object]:
    """The served detector's precision and recall per defect class against reviewers'
    corrected boxes, period by period: the plot, the table, and the classes under the recall
    gate (they need more data). Empty when no reviewed photo had a detector beside it."""
    log = PredictionLog(str(settings.prediction_log_uri))
    served = log.window(now - timedelta(days=params.detector_days), now, model=model,
                        roles=[ALIAS_CHAMPION], embeddings=False)
    served = served[served["boxes"].notna()]
    table = box_agreement(served, BoxReviews(log).frame(), params.detector_period)
    if table.empty:
        return {}
    table.to_csv(folder / "detector_recall.csv", index=False)
    plot = recall_over_time_png(table, folder / "detector_recall.png", min_recall)
    project = record_recall_in_workspace(table, settings.evidently_workspace,
                                         f"{DETECTOR} recall", now)
    return {"detector_recall": str(plot), "detector_recall_project": project,
            "detector_needs_more_data": needs_more_data(table, min_recall)}


@task(cache_policy=NO_CACHE)
def queue_for_review(settings: GradelineSettings, reference: pd.DataFrame, window: pd.DataFrame,
                     count: int, params_file: str | None, now: datetime) -> int:
    """The served photos farthest from the reference into the review queue, so experts grade
    what changed; how many were new to it."""
    review = load_params("review", ReviewParams, Path(params_file) if params_file else None)
    queue = ReviewQueue(PredictionLog(str(settings.prediction_log_uri)), review)
    return queue.request(most_drifted(reference, window, count), DRIFTED, now)


@task(cache_policy=NO_CACHE)
def watch_experts(settings: GradelineSettings, book: IncidentBook, params_file: str | None,
                  now: datetime) -> list[str]:
    """Each expert's recent bias against the rest of their panels and the gold items, an
    incident per expert (alerted once per cooldown, recovery announced); the drifting ones'
    lines."""
    review = load_params("review", ReviewParams, Path(params_file) if params_file else None)
    log = PredictionLog(str(settings.prediction_log_uri))
    since, gold = now - timedelta(days=review.expert_window_days), ReviewQueue(log, review).gold()
    drifting = []
    for standing in expert_drift(log.expert_panel(), since, review, gold):
        verdict = book.observe(f"expert {standing.expert}", "drift" if standing.drifted else "ok",
                               ["bias"] if standing.drifted else [], now)
        if message := expert_alert(standing, verdict.action, review):
            tell_on_call(settings, *message)
        if standing.drifted:
            drifting.append(standing.line())
    return drifting


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


@flow(name="monitor")
def monitor(model: str = "card-grader", window_hours: float | None = None,
            since: str | None = None, until: str | None = None,
            params_file: str | None = None) -> dict[str, object]:
    """Judge the champion's served window against its reference, publish the reports, and
    alert (or announce a recovery) once per incident. Returns the judgement and file paths."""
    settings = load_settings()
    params = load_params("monitor", MonitorParams, Path(params_file) if params_file else None)
    start, end = window_bounds(window_hours or params.window_hours, since, until)
    champion = alias_versions(str(settings.mlflow_tracking_uri), model,
                              [ALIAS_CHAMPION]).get(ALIAS_CHAMPION)
    if champion is None:
        raise MonitorError(f"{model} has no champion: there is nothing served to monitor")
    reference = reference_frame(settings, champion, params)
    predictions, window = window_frames(settings, model, start, end)
    champion_kappa = version_metric(str(settings.mlflow_tracking_uri), champion,
                                    f"{GATE_PREFIX}kappa")
    judgement = judge_window(reference, window, params, champion_kappa).with_signals(
        slo_signals(predictions, params.slo))
    span = f"{start:%Y-%m-%d %H:%M:%S}..{end:%H:%M:%S} UTC"
    title = f"{model} version {champion.version}: drift, {span}"
    files = publish(settings, judgement, model, end, title)
    book = IncidentBook(settings.home / "monitor" / "incidents.json",
                        timedelta(hours=params.cooldown_hours))
    verdict = book.observe(model, judgement.status,
                           [signal.name for signal in judgement.drifted], end)
    drifting = verdict.action in ("alert", "silenced", "quiet")
    drawn = (most_drifted_sheet(
        reference, window, params.sheet_images,
        lambda request_id: cv2.imread(str(thumbnail_path(settings.thumbnails_dir, request_id))),
        Path(files["report"]).parent / "most_drifted.png") if drifting else None)
    sheet = str(drawn) if drawn else None
    queued = (queue_for_review(settings, reference, window, params.sheet_images, params_file,
                               end) if drifting else 0)
    subject = tell(settings, verdict, judgement, champion, span, files, sheet)
    parted = report_discrepancies(settings, predictions, Path(files["report"]).parent,
                                  f"{model} version {champion.version}: model against the "
                                  f"experts, {span}", params_file)
    experts_drifting = watch_experts(settings, book, params_file, end)
    gates = load_params("evaluate", EvaluateParams, Path(params_file) if params_file else None)
    detector = detector_agreement(settings, model, params, gates.gates.min_detector_recall,
                                  Path(files["report"]).parent, end)
    get_run_logger().info("%s v%s: %s (incident: %s)", model, champion.version,
                          judgement.headline(), verdict.action)
    return {"model": model, "version": champion.version, "since": start.isoformat(),
            "until": end.isoformat(), **judgement.as_dict(), "headline": judgement.headline(),
            "incident": verdict.as_dict(), "alert": subject, "contact_sheet": sheet,
            "queued_for_review": queued, "experts_drifting": experts_drifting, **files,
            **parted, **detector}


def run_monitor(settings: GradelineSettings, model: str, window_hours: float | None = None,
                since: str | None = None, until: str | None = None,
                params_file: str | None = None) -> dict[str, object]:
    """Run `monitor` on these settings' home and return its summary."""
    settings.activate()
    return monitor(model, window_hours, since, until, params_file)
