"""The Prefect flow `export-reviews`: reviewed production photos become the next labeled batch.

    export_reviews("card-grader", since="2026-12-06T00:00:00+00:00")

The queued answers whose expert panel reached a consensus, not exported before and with their
large photo kept, are written to `<home>/inbox/reviewed-<time>/` as a manifest batch with their
lineage (components/review_batch.py) once `review.export_min_items` are ready (or `min_items`).
It then emits `gradeline.reviews.exported`, on which the `retrain-on-reviews` deployment
retrains the model on that batch: ingest's checks first, the audit share kept as its test
split. Import after `settings.activate()`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.events import emit_event

from components.params import load_params
from components.predlog import PredictionLog
from components.review_batch import ReviewExports, since_time
from components.reviews import ReviewParams, ReviewQueue
from components.settings import GradelineSettings, load_settings

EXPORTED_EVENT = "gradeline.reviews.exported"


@flow(name="export-reviews")
def export_reviews(model: str = "card-grader", since: str | None = None,
                   min_items: int | None = None,
                   params_file: str | None = None) -> dict[str, object]:
    """Export the settled review items served since `since` (ISO time; default: every one in
    the queue's window) as a batch for `model` when enough are ready; `status` is exported or
    waiting."""
    settings = load_settings().activate()
    logger = get_run_logger()
    review = load_params("review", ReviewParams, Path(params_file) if params_file else None)
    queue = ReviewQueue(PredictionLog(str(settings.prediction_log_uri)), review)
    start = since_time(since)
    now = datetime.now(UTC)
    folder = settings.inbox_dir / f"reviewed-{now:%Y%m%dT%H%M%S}"
    batch = ReviewExports(queue, settings.thumbnails_dir).export(
        folder, now, since=start,
        min_items=min_items or review.export_min_items)
    summary = {"model": model, **batch.as_dict()}
    if batch.folder is None:
        logger.info("%d reviewed items are ready, fewer than %d: nothing exported yet",
                    batch.items, min_items or review.export_min_items)
        return {**summary, "status": "waiting"}
    emit_event(EXPORTED_EVENT, resource={
        "prefect.resource.id": f"gradeline.batch.{folder.name}",
        "gradeline.batch.path": str(folder), "gradeline.batch.task": "grade",
        "gradeline.model.name": model}, payload=batch.as_dict())
    logger.info("%d reviewed items (%d of them the audit share, for test) exported to %s",
                batch.items, batch.test_items, folder)
    return {**summary, "status": "exported"}


def run_export_reviews(settings: GradelineSettings, **options: object) -> dict[str, object]:
    """Run `export-reviews` on these settings' home and return its summary."""
    settings.activate()
    return export_reviews(**options)
