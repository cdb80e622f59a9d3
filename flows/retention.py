"""The Prefect flow `retention`: prune what the platform keeps past its retention period
(params.yaml `retention:`), daily by the `daily-retention` deployment.

    retention()                 # or: gradeline prune [--dry-run] [--json]

Prediction log rows and expert grades, thumbnails of served photos, reports on disk, Prefect's
persisted results, and cached models of versions no alias names any more. Every figure is
reported; `dry_run` counts without deleting.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from components.monitor.retention import (
    Pruned,
    RetentionParams,
    cutoff,
    files_older_than,
    remove_files,
    stale_folders,
)
from components.params import load_params
from components.predlog import PredictionLog
from components.release.registry import releases_of
from components.settings import GradelineSettings, load_settings
from model_registry import DETECTOR, GRADER, VersionNotFound


def _aliased_folders(settings: GradelineSettings) -> set[str]:
    """`<model>-<version>` of every version an alias names: their cached files stay."""
    releases, kept = releases_of(settings), set()
    for model in (GRADER, DETECTOR):
        try:
            kept |= {f"{model}-{version}" for version in releases.aliases(model).values()}
        except VersionNotFound:
            continue
    return kept


@flow(name="retention")
def retention(params_file: str | None = None, dry_run: bool = False) -> dict[str, object]:
    """Prune every kind of record past its retention; what went, by kind."""
    settings = load_settings()
    params = load_params("retention", RetentionParams, Path(params_file) if params_file else None)
    rows = PredictionLog(str(settings.prediction_log_uri)).prune(
        cutoff(params.prediction_log_days), dry_run)
    kept = _aliased_folders(settings)
    old_models = [folder for cache in ("serving", "evaluate") for folder in stale_folders(
        settings.cache_dir / cache, cutoff(params.model_cache_days), kept)]
    pruned = [
        Pruned("prediction_log_rows", rows, 0),
        remove_files("thumbnails", files_older_than(settings.thumbnails_dir,
                                                    cutoff(params.thumbnails_days)), dry_run),
        remove_files("reports", files_older_than(settings.reports_dir,
                                                 cutoff(params.reports_days)), dry_run),
        remove_files("prefect_results", files_older_than(
            settings.prefect_home / "storage", cutoff(params.prefect_results_days)), dry_run),
        remove_files("model_cache", old_models, dry_run),
    ]
    logger = get_run_logger()
    for item in pruned:
        logger.info("%s%s: %d items, %.1f MB", "would prune " if dry_run else "pruned ",
                    item.what, item.items, item.bytes / 1e6)
    return {"dry_run": dry_run, "pruned": [item.as_dict() for item in pruned]}


def run_retention(settings: GradelineSettings, params_file: str | None = None,
                  dry_run: bool = False) -> dict[str, object]:
    """Run `retention` on these settings' home."""
    settings.activate()
    return retention(params_file, dry_run)
