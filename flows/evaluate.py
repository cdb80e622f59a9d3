"""The Prefect flow `evaluate`: one registered model version judged against the expert panel,
calibrated, exported and gated, with everything a reviewer needs on the version's page.

    gradeline evaluate --model card-grader --version 3 --json

Steps: read the version and its lineage from the registry, restore the data version it was
trained on, evaluate on the splits training never read (components/evaluate), then log the
report, plots and ONNX graphs to the version's run, its figures as metrics, and each gate as
`gate.<name>`; a failed gate makes a candidate `stage=rejected`.
Import this module only after `settings.activate()`: Prefect reads PREFECT_HOME once.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.evaluate.graphs import Graph, sha256
from components.evaluate.params import EvaluateParams
from components.evaluate.report import evaluation_report
from components.evaluate.tasks import EVALUATIONS, Evaluation
from components.ingest.store import DatasetStore, DataSnapshot
from components.params import load_params
from components.settings import GradelineSettings, load_settings
from components.tracking import TrackedRun
from components.vision.tasks import plugin_for
from flows.train import fetch_model, stage_progress
from model_registry import (
    RegisteredVersion,
    get_version,
    log_version_metrics,
    record_gates,
)

REPORT = "report.html"
ARTIFACT_FOLDER = "evaluation"


@task(cache_policy=NO_CACHE)
def judge(evaluate: Callable[..., Evaluation], registered: RegisteredVersion, model_dir: Path,
          data: DataSnapshot, out_dir: Path,
          params: EvaluateParams) -> tuple[dict, dict[str, float], list[Path], dict[str, Graph]]:
    """Evaluate with a progress bar per stage; returns the summary, flat metrics, plots and
    the graphs to log with an example input each."""
    lineage = {"model": registered.name, "version": registered.version,
               "data_version": data.version}
    with stage_progress() as on_progress:
        evaluation = evaluate(model_dir, data.root, out_dir, params, on_progress,
                              metadata=lineage)
    return evaluation.summary(), evaluation.metrics(), evaluation.plots, evaluation.graphs()


@task(cache_policy=NO_CACHE)
def publish(settings: GradelineSettings, registered: RegisteredVersion, summary: dict,
            metrics: dict[str, float], plots: list[Path], graphs: dict[str, Graph],
            out_dir: Path) -> tuple[str, dict[str, str]]:
    """Log report, plots, summary and graphs to the version's run, its metrics to the version,
    and the gates; returns the stage after them and the logged graphs' URIs."""
    uri = str(settings.mlflow_tracking_uri)
    title = f"{registered.name} version {registered.version}: evaluation"
    (out_dir / REPORT).write_text(evaluation_report(summary, plots, title))
    (out_dir / "evaluation.json").write_text(json.dumps(summary, indent=2, default=str))
    run = TrackedRun.of(uri, registered.run_id)
    for path in (out_dir / REPORT, out_dir / "evaluation.json", *plots):
        run.log_artifact(path, ARTIFACT_FOLDER)
    graph_uris = {name: run.log_onnx_model(graph.path, name, graph.example)
                  for name, graph in graphs.items()}
    log_version_metrics(uri, registered, metrics)
    tags = {**{f"{name}.model_uri": graph_uri for name, graph_uri in graph_uris.items()},
            **{f"{name}.sha256": sha256(graph.path) for name, graph in graphs.items()},
            "evaluation.report": f"{ARTIFACT_FOLDER}/{REPORT}"}
    stage = record_gates(uri, registered.name, registered.version,
                         {g["name"]: (g["passed"], g["value"]) for g in summary["gates"]}, tags)
    return stage, graph_uris


@flow(name="evaluate", persist_result=True)
def evaluate(model: str = "card-grader", version: int | None = None,
             params_file: str | None = None) -> dict[str, object]:
    """Evaluate, export and gate one model version (the newest when `version` is None);
    returns the summary with the stage it left the version in."""
    settings = load_settings().activate()
    params = load_params("evaluate", EvaluateParams, Path(params_file) if params_file else None)
    registered = get_version(str(settings.mlflow_tracking_uri), model, version)
    task_name = registered.tags.get("task", "grade")
    evaluate = plugin_for(EVALUATIONS, task_name, "evaluation")
    data = DatasetStore.of(settings, registered.tags.get("dataset", task_name)).snapshot(
        task_name, registered.data_version)
    out_dir = settings.cache_dir / "evaluate" / f"{model}-{registered.version}" / "out"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    model_dir = fetch_model(settings, registered)
    summary, metrics, plots, graphs = judge(evaluate, registered, model_dir, data, out_dir,
                                            params)
    stage, graph_uris = publish(settings, registered, summary, metrics, plots, graphs, out_dir)
    summary = {"model": model, "version": registered.version, "stage": stage,
               "data_version": data.version, "run_id": registered.run_id,
               "report": f"runs:/{registered.run_id}/{ARTIFACT_FOLDER}/{REPORT}",
               "report_file": str(out_dir / REPORT),
               "graphs": graph_uris, **summary}
    get_run_logger().info("%s version %s: stage %s, gates %s", model, registered.version, stage,
                          ", ".join(f"{g['name']}={'pass' if g['passed'] else 'fail'}"
                                    for g in summary["gates"]))
    return summary


def run_evaluate(settings: GradelineSettings, model: str, version: int | None = None,
                 params_file: str | None = None) -> dict[str, object]:
    """Run the flow on these settings' home and return its summary."""
    settings.activate()  # before the flow starts: Prefect reads PREFECT_HOME once
    return evaluate(model, version, params_file)
