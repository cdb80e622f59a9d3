"""The Prefect flow `train`: one model trained on one data version, tracked in one MLflow run
and registered as a candidate version.

    gradeline train --task grade --profile fast --json

Steps: find the data version (the current one, or a past one restored with DVC), train with
progress bars (resuming from the checkpoint a killed run left), then log the model with its
signature, input example, plots and lineage, and register it with `stage=candidate`. Nothing is
logged as a model or registered before training has finished, so a run that dies leaves no
version behind; running the same command again resumes it, in the same MLflow run.
Import this module only after `settings.activate()`: Prefect reads PREFECT_HOME once.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from components.ingest.store import DatasetStore, DataSnapshot
from components.params import load_params
from components.settings import GradelineSettings, find_project_root, load_settings, mask_uri
from components.tracking import TrackedRun, git_sha, package_versions
from components.train.params import Profile, TrainParams
from components.train.pyfunc import log_image_model, logged_model_folder
from components.train.recipes import RECIPES, model_name_for, profile_for, train_task
from components.train.tasks import TrainDataError
from components.train.trainer import TrainResult
from components.train.warm import WarmStart
from components.vision.tasks import plugin_for
from model_registry import (
    RegisteredVersion,
    download_version,
    get_version,
    register_candidate,
    version_of_run,
)

RUN_ID_FILE = "mlflow_run_id"


@dataclass
class TrainSummary:
    """What one training produced and where to find it."""

    task: str
    dataset: str
    data_version: str
    profile: str
    model_name: str
    version: int
    run_id: str
    model_uri: str
    tracking_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0
    best_epoch: int = 0
    resumed_from_epoch: int = 0
    images_per_s: float = 0.0
    seconds: float = 0.0
    train_items: int = 0
    warm_from: int | None = None  # the version fine-tuned, or None: trained from ImageNet

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The summary for a person."""
        shown = "  ".join(f"{k.removeprefix('val_')} {v:.3f}" for k, v in self.metrics.items()
                          if not k.startswith(("val_precision.", "val_recall.", "val_f1.")))
        resumed = f", resumed at epoch {self.resumed_from_epoch}" if self.resumed_from_epoch else ""
        start = "" if self.warm_from is None else f"fine-tuned from version {self.warm_from}, "
        return [f"registered {self.model_name} version {self.version} (stage=candidate)",
                f"  data {self.dataset}@{self.data_version[:12]}, profile {self.profile}, "
                f"{start}{self.train_items} training items, "
                f"{self.epochs_run} epochs (best {self.best_epoch}{resumed}), "
                f"{self.seconds:.0f} s, {self.images_per_s:.1f} training images/s",
                f"  validation: {shown}",
                f"  MLflow run {self.run_id}: `gradeline ui`, then the model's page"]


@task(cache_policy=NO_CACHE)
def fetch_model(settings: GradelineSettings, registered: RegisteredVersion) -> Path:
    """The version's model folder, downloaded from the registry into the cache."""
    target = settings.cache_dir / "evaluate" / f"{registered.name}-{registered.version}" / "model"
    shutil.rmtree(target, ignore_errors=True)
    downloaded = download_version(str(settings.mlflow_tracking_uri), registered.name,
                                  registered.version, target)
    return logged_model_folder(downloaded)


@task(cache_policy=NO_CACHE)
def warm_start(settings: GradelineSettings, model_name: str, version: int,
               data: DataSnapshot) -> WarmStart:
    """Start from registered `version` of the model: its weights, and how many of the
    dataset's items the data version it was trained on held (those it has seen)."""
    registered = get_version(str(settings.mlflow_tracking_uri), model_name, version)
    if registered.tags.get("dataset") != data.dataset or registered.data_version is None:
        raise TrainDataError(f"{model_name} version {version} was not trained on dataset "
                             f"{data.dataset!r}: it cannot be fine-tuned on it")
    seen = DatasetStore.of(settings, data.dataset).items_at(registered.data_version)
    return WarmStart(fetch_model(settings, registered), seen)


@contextmanager
def stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars on stderr, one per stage; yields on_progress(stage, done, total)."""
    bars: dict[str, int] = {}
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as progress:
        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=total)
            progress.update(bars[stage], completed=done, total=total)

        yield on_progress


@task(cache_policy=NO_CACHE)
def fit(task_name: str, data: DataSnapshot, params: TrainParams, profile: Profile,
        work_dir: Path, run: TrackedRun, weights: Path | None,
        warm: WarmStart | None) -> TrainResult:
    """Train with a progress bar per stage; every epoch's metrics go to the MLflow run."""
    logger = get_run_logger()
    with stage_progress() as on_progress:
        def on_epoch(record: dict[str, float]) -> None:
            run.log_epoch(record)
            logger.info("epoch %d: %s", record["epoch"], ", ".join(
                f"{k} {v:.3f}" for k, v in record.items() if k in ("train_loss", "val_loss")
                or k in ("val_qwk", "val_accuracy", "map50", "map50_95")))

        return train_task(task_name, data.root, data.classes, params, profile, work_dir,
                          on_progress, on_epoch, weights, warm)


@task(cache_policy=NO_CACHE)
def log_and_register(settings: GradelineSettings, run: TrackedRun, result: TrainResult,
                     data: DataSnapshot, model_name: str, sha: str) -> tuple[int, str]:
    """Log the finished model (pyfunc, signature, example), plots and metrics, then register
    it as a candidate; returns (version, model URI). A run that registered before it was
    killed is not registered twice: its version is returned."""
    earlier = version_of_run(str(settings.mlflow_tracking_uri), model_name, run.run_id)
    if earlier is not None:
        get_run_logger().warning("run %s registered %s version %s before it was interrupted; "
                                 "not registering it again", run.run_id, model_name,
                                 earlier.version)
        return earlier.version, earlier.source

    # The registered weights are the best epoch's: its scores go in as best_<metric>, beside
    # the per-epoch curves of the same metric.
    run.log_metrics({**{f"best_{k}": v for k, v in result.metrics.items()},
                     "images_per_s": result.images_per_s, "train_items": result.train_items,
                     "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                     **result.seconds})
    for plot in result.plots:
        run.log_artifact(plot, "plots")
    run.log_json(result.history, "history.json")
    with run.active():
        assert result.example_image is not None
        model_uri = log_image_model(result.model_dir, result.example_image)
    registered = register_candidate(
        str(settings.mlflow_tracking_uri), model_name, model_uri, run.run_id,
        data_version=data.version, git_sha=sha,
        extra_tags={"task": result.task, "dataset": data.dataset},
        description=f"{result.task} model trained on {data.dataset}@{data.version}")
    return registered.version, model_uri


@flow(name="train", persist_result=True)
def train(task: str = "grade", dataset: str | None = None, data_version: str | None = None,
          profile: Profile = "fast", model_name: str | None = None,
          weights: str | None = None, params_file: str | None = None,
          warm_from: int | None = None) -> dict[str, object]:
    """Train, track and register one model; returns the TrainSummary as a dict. Budgets come
    from the `train:` section of `params_file` (default: the project's params.yaml).
    `warm_from`: a registered version of the model to fine-tune (what retraining does) on the
    items it has not seen and a replay of those it has, instead of starting from ImageNet."""
    plugin_for(RECIPES, task, "training")  # an unknown or untrainable task fails here, at once
    started = time.perf_counter()
    settings = load_settings().activate()
    params = load_params("train", TrainParams, Path(params_file) if params_file else None)
    dataset = dataset or task
    model_name = model_name or model_name_for(task, params)
    data = DatasetStore.of(settings, dataset).snapshot(task, data_version)
    warm = warm_start(settings, model_name, warm_from, data) if warm_from is not None else None
    started_from = f"-warm-{warm_from}" if warm_from is not None else ""
    work_dir = (settings.cache_dir / "train" / model_name
                / f"{dataset}-{data.version}-{profile}{started_from}")
    work_dir.mkdir(parents=True, exist_ok=True)
    marker = work_dir / RUN_ID_FILE
    resume_id = marker.read_text().strip() if marker.is_file() else None
    run = TrackedRun.open(str(settings.mlflow_tracking_uri), str(settings.mlflow_artifact_root),
                           model_name,
                           f"{task}-{profile}-{data.version[:8]}", resume_id)
    marker.write_text(run.run_id)
    sha = git_sha(find_project_root())
    chosen = profile_for(task, params, profile)
    run.set_tags({"task": task, "dataset": dataset, "data_version": data.version,
                  "git_sha": sha, "profile": profile})
    run.log_params({"task": task, "dataset": dataset, "data_version": data.version,
                    "profile": profile, "git_sha": sha, "model_name": model_name,
                    "weights": weights or "", "warm_from": warm_from or "",
                    **chosen.model_dump(),
                    **{f"package.{k}": v for k, v in package_versions().items()}})
    run.log_json({"task": task, "profile": profile, **chosen.model_dump()},
                 "training_config.json")
    try:
        result = fit(task, data, params, profile, work_dir, run,
                     Path(weights) if weights else None, warm)
        version, model_uri = log_and_register(settings, run, result, data, model_name, sha)
    except BaseException:
        run.close("FAILED")  # the checkpoint and the run id stay: the next call resumes
        raise
    run.close("FINISHED")
    shutil.rmtree(work_dir)  # caches and checkpoint served their purpose
    summary = TrainSummary(
        task=task, dataset=dataset, data_version=data.version, profile=profile,
        model_name=model_name, version=version, run_id=run.run_id, model_uri=model_uri,
        tracking_uri=mask_uri(str(settings.mlflow_tracking_uri)),
        metrics={k: round(v, 4) for k, v in result.metrics.items()},
        epochs_run=result.epochs_run, best_epoch=result.best_epoch,
        resumed_from_epoch=result.resumed_from_epoch,
        images_per_s=round(result.images_per_s, 1), seconds=round(time.perf_counter() - started, 1),
        train_items=result.train_items, warm_from=warm_from)
    get_run_logger().info("\n".join(summary.lines()))
    return summary.as_dict()


def run_train(settings: GradelineSettings, task: str = "grade", dataset: str | None = None,
              data_version: str | None = None, profile: Profile = "fast",
              model_name: str | None = None, weights: str | None = None,
              params_file: str | None = None, warm_from: int | None = None) -> TrainSummary:
    """Run the flow on these settings' home and return its summary."""
    settings.activate()  # before the flow starts: Prefect reads PREFECT_HOME once
    return TrainSummary(**train(task, dataset, data_version, profile, model_name, weights,
                                params_file, warm_from))
