"""Training quality and speed at real sizes: factory cards are ingested through the `ingest`
flow, then the `train` flow trains each task with the project's params.yaml, as
`gradeline train --task T --profile P` would.

Targets: the severity grader's validation QWK against the expert consensus at least 0.90 with
the fast profile on 2000 cards, in under 10 minutes on a 2-core machine (the production bar,
the human bar minus 0.02 on the test split, is the evaluate bench's); the detector's validation
mAP50 at least 0.5 with the fast profile.
"""

from __future__ import annotations

from pathlib import Path

from components.cards import synthesize_batch

TARGETS = {("grade", "fast"): ("val_qwk", 0.90), ("grade", "full"): ("val_qwk", 0.90),
           ("detect", "fast"): ("val_map50", 0.50), ("detect", "full"): ("val_map50", 0.50)}
TIME_BUDGET_S = 600  # the fast grader's training budget on this machine


def bench_train(workdir: Path, cards: int, runs: list[tuple[str, str]]) -> list[dict[str, object]]:
    """Train each (task, profile) of `runs` on `cards` ingested studio cards; one row each with
    its target metric, its bar, time and training throughput."""
    from components.settings import load_settings

    settings = load_settings(home=workdir / "train-home").activate()
    from flows.ingest import run_ingest  # Prefect reads PREFECT_HOME at import: after activate()
    from flows.train import run_train

    batch = workdir / f"train-{cards}"
    synthesize_batch(batch, n=cards, seed=77)
    ingested = {task for task, _ in runs}
    for task in sorted(ingested):
        summary = run_ingest(settings, str(batch), task)
        if summary.status != "accepted":
            raise RuntimeError(f"bench batch was not accepted for {task}: {summary.message}")
    rows = []
    for task, profile in runs:
        summary = run_train(settings, task, profile=profile)  # type: ignore[arg-type]
        metric, bar = TARGETS[(task, profile)]
        value = summary.metrics[metric]
        in_time = (task, profile) != ("grade", "fast") or summary.seconds < TIME_BUDGET_S
        rows.append({"task": task, "profile": profile, "cards": cards,
                     "metric": metric.removeprefix("val_"), "value": round(value, 3),
                     "bar": bar, "met": value >= bar and in_time, "epochs": summary.epochs_run,
                     "best_epoch": summary.best_epoch, "train_images_per_s": summary.images_per_s,
                     "seconds": summary.seconds})
    return rows


def bench_retrain(workdir: Path, cards: int, new_cards: int) -> list[dict[str, object]]:
    """A batch of `new_cards` phone cards reaches the train bench's grader (trained first when
    the bench home has none): fine-tuning it on them and a replay of older cards (what
    `retrain` does) against training a new grader on everything, both with the fast profile."""
    from components.settings import load_settings

    settings = load_settings(home=workdir / "train-home").activate()
    from flows.ingest import run_ingest  # Prefect reads PREFECT_HOME at import: after activate()
    from flows.train import run_train
    from model_registry import VersionNotFound, get_version

    uri = str(settings.mlflow_tracking_uri)
    try:
        champion = get_version(uri, "card-grader")
    except VersionNotFound:
        bench_train(workdir, cards, [("grade", "fast")])
        champion = get_version(uri, "card-grader")
    batch = workdir / f"retrain-{new_cards}"
    synthesize_batch(batch, n=new_cards, seed=78, camera="phone")
    ingested = run_ingest(settings, str(batch), "grade")
    if ingested.status != "accepted":
        raise RuntimeError(f"the phone batch was not accepted: {ingested.message}")
    rows = []
    for start, warm_from in ((f"warm from v{champion.version}", champion.version),
                             ("from ImageNet", None)):
        summary = run_train(settings, "grade", profile="fast", warm_from=warm_from)
        rows.append({"start": start, "new_cards": new_cards, "train_items": summary.train_items,
                     "epochs": summary.epochs_run, "val_qwk": round(summary.metrics["val_qwk"], 3),
                     **{f"val_qwk_{aspect}": round(summary.metrics[f"val_qwk_{aspect}"], 3)
                        for aspect in ("corners", "edges", "surface")},
                     "seconds": summary.seconds})
    return rows
