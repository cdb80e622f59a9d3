"""The Prefect flow `retrain`: what a drift alert (or the nightly schedule) sets going.

    retrain("card-grader", reason="drift: brightness, embeddings")

It ingests the newest labeled batch waiting in the inbox (`<home>/inbox/<batch>/`, or `source`),
fine-tunes the champion on the dataset it was trained on (its new items and a replay of older
ones; a detector, or a first model, trains from the start), evaluates the candidate against the
experts, and hands a candidate that passed its gates to `promote` (shadow, canary, then a
reviewer). A worse model stops at its gates, and nothing is promoted; with no new data since the
champion was trained there is nothing to learn from and it says so.
Import after `settings.activate()`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from components.ingest.store import DatasetStore
from components.settings import GradelineSettings, load_settings
from components.train.recipes import RECIPES
from components.vision.tasks import plugin_for
from flows.evaluate import evaluate
from flows.ingest import ingest
from flows.release import promote
from flows.train import train
from model_registry.names import ALIAS_CHAMPION, STAGE_CANDIDATE
from model_registry.serving import alias_versions


def newest_batch(inbox: Path) -> Path | None:
    """The most recently landed batch folder in the inbox, or None when it is empty."""
    batches = [folder for folder in inbox.iterdir() if folder.is_dir()] if inbox.is_dir() else []
    return max(batches, key=lambda folder: folder.stat().st_mtime, default=None)


def data_version_of(settings: GradelineSettings, dataset: str) -> str | None:
    """The dataset's current data version (None before its first batch)."""
    return DatasetStore.of(settings, dataset).version()


@flow(name="retrain")
def retrain(model: str = "card-grader", task: str = "grade", dataset: str | None = None,
            reason: str = "scheduled", source: str | None = None, promote_candidate: bool = True,
            params_file: str | None = None) -> dict[str, object]:
    """Ingest the newest batch, train, evaluate, and promote a candidate that passes its gates.
    `status` says how far it went: nothing_new, stopped_at_gates, candidate, or the stage the
    release reached (awaiting_approval, rolled_back)."""
    settings = load_settings().activate()
    logger = get_run_logger()
    champion = alias_versions(str(settings.mlflow_tracking_uri), model,
                              [ALIAS_CHAMPION]).get(ALIAS_CHAMPION)
    dataset = dataset or (champion.tags.get("dataset") if champion else None) or task
    summary: dict[str, object] = {"model": model, "reason": reason, "dataset": dataset}
    batch = Path(source) if source else newest_batch(settings.inbox_dir)
    if batch is not None:
        ingested = ingest(str(batch), task=task, dataset=dataset)
        summary["ingest"] = {key: ingested[key] for key in ("source", "status", "accepted",
                                                            "quarantined", "data_version")}
    data_version = data_version_of(settings, dataset)
    summary["data_version"] = data_version
    if champion is not None and champion.data_version == data_version:
        logger.info("%s version %s was trained on %s@%s already: nothing new to learn from",
                    model, champion.version, dataset, data_version)
        return {**summary, "status": "nothing_new"}
    # The champion learnt from this dataset already: fine-tune it on what is new (warm.py).
    warm_from = champion.version if champion is not None \
        and plugin_for(RECIPES, task, "training").warm_starts \
        and champion.tags.get("dataset") == dataset else None
    trained = train(task=task, dataset=dataset, model_name=model, params_file=params_file,
                    warm_from=warm_from)
    evaluated = evaluate(model=model, version=trained["version"], params_file=params_file)
    summary.update(version=trained["version"], kappa=evaluated.get("kappa"),
                   champion_version=champion.version if champion else None,
                   stage=evaluated["stage"], report=evaluated["report_file"],
                   gates={gate["name"]: gate["passed"] for gate in evaluated["gates"]})
    if evaluated["stage"] != STAGE_CANDIDATE:
        failed = [name for name, passed in summary["gates"].items() if not passed]
        logger.warning("%s version %s stopped at its gates (%s): the champion stays", model,
                       trained["version"], ", ".join(failed))
        return {**summary, "status": "stopped_at_gates"}
    if not promote_candidate or champion is None:
        return {**summary, "status": "candidate"}
    released = promote(model, trained["version"], params_file)
    return {**summary, "status": released["stage"], "release": released}


def run_retrain(settings: GradelineSettings, model: str = "card-grader", **options: object
                ) -> dict[str, object]:
    """Run `retrain` on these settings' home and return its summary."""
    settings.activate()
    return retrain(model, **options)
