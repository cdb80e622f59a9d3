"""`gradeline review`: the head grader's side of the review queue (components/reviews.py).

    gradeline review gold 7f3c… 8 --by "head grader"   # a served photo of known grade 8
    gradeline review experts [--json]                  # each expert against the panel and the gold
    gradeline review export [--since 2026-12-06T00:00Z] [--min-items 50]   # the next batch

Gold items are handed to the experts among the queued photos (`review.gold_share`), looking like
any audited one, and measure each of them against the known grade; monitoring alerts when an
expert drifts from the gold or from their peers. `export` writes the reviewed photos that have a
consensus as a labeled batch in <home>/inbox (the export-reviews flow), announced for retraining.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import JsonFlag, ParamsOption, fail, show
from components.settings import load_settings

if TYPE_CHECKING:  # imported where used: every `gradeline` command imports this module
    from components.reviews import ReviewQueue

review_app = typer.Typer(help="Gold items and the experts' agreement (the review queue).",
                         no_args_is_help=True)


def _queue(params: Path | None) -> ReviewQueue:
    from components.params import load_params
    from components.predlog import PredictionLog
    from components.reviews import ReviewParams, ReviewQueue

    review = load_params("review", ReviewParams, params)
    return ReviewQueue(PredictionLog(str(load_settings().prediction_log_uri)), review)


@review_app.command("gold")
def gold(
    request_id: Annotated[str, typer.Argument(help="The served photo's request id.")],
    grade: Annotated[int, typer.Argument(help="Its known grade, 1..10.")],
    by: Annotated[str, typer.Option(help="Who knows the grade (the head grader).")],
    params: ParamsOption = None,
) -> None:
    """Make a served photo a gold item of known grade (again: correct its grade)."""
    try:
        _queue(params).add_gold(request_id, grade, by, datetime.now(UTC))
    except (KeyError, ValueError) as error:
        raise fail(str(error.args[0])) from None
    typer.echo(f"{request_id} is a gold item of grade {grade} (set by {by})", err=True)


@review_app.command("experts")
def experts(as_json: JsonFlag = False, params: ParamsOption = None) -> None:
    """Each expert's agreement with the rest of their panels and with the gold items."""
    from components.experts import agreement_with_gold, agreement_with_panel

    queue = _queue(params)
    panel, known = queue.log.expert_panel(), queue.gold()
    rows = [{**agreement_with_panel(panel, name), "gold": agreement_with_gold(panel, known, name)}
            for name in sorted(panel["grader"].unique())]
    show(rows, as_json, (f"{row['expert']:<16} graded {row['graded']:>4}  panel: "
                         f"{_figures(row)}  gold: {_figures(row['gold'])}" for row in rows))


def _figures(agreement: dict[str, object]) -> str:
    if not agreement["compared"]:
        return "nothing compared"
    return (f"{agreement['compared']} compared, exact {agreement['exact']:.0%}, within one "
            f"{agreement['within_one']:.0%}, bias {agreement['bias']:+.2f}")


@review_app.command("export")
def export(
    since: Annotated[str | None, typer.Option(
        help="Only photos served since then (ISO time with an offset); default: the queue's "
             "window.")] = None,
    min_items: Annotated[int | None, typer.Option(
        help="Items ready before a batch is written (default: review.export_min_items).")] = None,
    params: ParamsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Export the reviewed photos with a consensus as the next labeled batch (in <home>/inbox)
    and emit gradeline.reviews.exported, on which retrain-on-reviews retrains."""
    from components.review_batch import since_time

    try:
        since_time(since)
    except ValueError as error:
        raise fail(str(error)) from None
    from flows.export_reviews import run_export_reviews  # Prefect starts only for a real run

    summary = run_export_reviews(load_settings(), since=since, min_items=min_items,
                                 params_file=str(params) if params else None)
    show(summary, as_json, [f"{summary['folder']}: {summary['items']} items, "
                            f"{summary['test_items']} of them audited (the test split)"
                            if summary["status"] == "exported" else
                            f"waiting: {summary['items']} items ready"]
         + [f"left out, {why}: {count}" for why, count in summary["skipped"].items()])
