"""The `train` flow against a real MLflow store and registry, a real Prefect run and real DVC:
registration with lineage, a past data version, a killed run that resumes, and the detector.
Budgets are tiny (tiny_params.yaml): these tests check the mechanics; `make bench` measures
model quality at real sizes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing import Process
from pathlib import Path

import cv2
import mlflow
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient
from prefect.settings import PREFECT_API_URL

from components.settings import load_settings
from flows.ingest import run_ingest
from flows.train import RUN_ID_FILE, run_train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = Path(__file__).with_name("tiny_params.yaml")
PROJECT = Path(__file__).resolve().parents[2]
LONG_EPOCHS = 12  # enough to kill a run half-way: the kill follows the first checkpoint
PLOTS = {"plots/training_curves.png", "plots/sample_predictions.png"}


def _client() -> MlflowClient:
    uri = str(load_settings().mlflow_tracking_uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def _versions(name: str) -> list:
    _client()  # the tracking URI of this test's home, not the last test's
    return mlflow.search_model_versions(filter_string=f"name = '{name}'")


def _ingest(batch: Path, task: str = "grade") -> str:
    summary = run_ingest(load_settings(), str(batch), task)
    assert summary.status == "accepted", summary.message
    assert summary.data_version is not None
    return summary.data_version


def _artifacts(client: MlflowClient, run_id: str, folder: str = "") -> set[str]:
    found = set()
    for entry in client.list_artifacts(run_id, folder or None):
        found |= _artifacts(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return found


def test_a_grader_is_registered_as_a_candidate_with_its_lineage(
        home: Path, factory_batches: dict[str, Path]) -> None:
    data_version = _ingest(factory_batches["first"])
    summary = run_train(load_settings(), "grade", params_file=str(TINY))

    client = _client()
    versions = _versions("card-grader")
    assert [(v.version, v.tags["data_version"]) for v in versions] == [(1, data_version)]
    tags = versions[0].tags
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert tags["stage"] == "candidate" and tags["git_sha"].startswith(head)
    assert client.get_registered_model("card-grader").aliases == {}  # never champion here

    run = client.get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["data_version"] == data_version
    assert run.data.params["package.torch"] and run.data.params["frozen_blocks"] == "11"
    epochs = client.get_metric_history(summary.run_id, "val_qwk")
    assert [m.step for m in epochs] == list(range(1, summary.epochs_run + 1))
    assert run.data.metrics["images_per_s"] > 0
    assert PLOTS | {"plots/val_confusion.png", "history.json",
                    "training_config.json"} <= _artifacts(client, summary.run_id)

    model = mlflow.pyfunc.load_model("models:/card-grader/1")
    assert model.metadata.signature.inputs.input_names() == ["image"]
    photo = next((factory_batches["first"] / "images").glob("*.jpg"))
    graded = model.predict(pd.DataFrame({"image": [photo.read_bytes()]}))
    assert 1 <= int(graded["grade"].iloc[0]) <= 10
    assert graded["centering_lr"].iloc[0] is not None  # the card was found and measured
    assert not any((home / "cache" / "train" / "card-grader").iterdir())  # caches cleaned up


def test_a_past_data_version_is_restored_for_training_without_touching_the_dataset(
        home: Path, factory_batches: dict[str, Path]) -> None:
    first = _ingest(factory_batches["first"])
    second = _ingest(factory_batches["bad"])  # 60 clean cards: only tests that copy it break it

    summary = run_train(load_settings(), "grade", data_version=first, params_file=str(TINY))

    assert summary.data_version == first != second
    restored = home / "cache" / "datasets" / "grade" / first / "grade"
    assert len(pd.read_csv(restored / "manifest.csv")) == 40
    assert len(pd.read_csv(home / "data" / "grade" / "manifest.csv")) == 100  # still current
    (version,) = _versions("card-grader")
    assert version.tags["data_version"] == first


def test_a_retraining_fine_tunes_the_version_it_replaces_on_new_and_replayed_items(
        home: Path, factory_batches: dict[str, Path]) -> None:
    _ingest(factory_batches["first"])  # 40 cards
    first = run_train(load_settings(), "grade", params_file=str(TINY))
    _ingest(factory_batches["bad"])  # 60 more
    warm = run_train(load_settings(), "grade", params_file=str(TINY), warm_from=first.version)

    manifest = pd.read_csv(home / "data" / "grade" / "manifest.csv")
    training = manifest["split"] == "train"
    new, older = int(training[40:].sum()), int(training[:40].sum())
    assert warm.warm_from == 1 and warm.version == 2
    assert warm.train_items == new + min(new, older)  # every new one, as many older ones
    assert warm.epochs_run == 2  # tiny_params.yaml: warm_epochs
    run = _client().get_run(warm.run_id)
    assert run.data.params["warm_from"] == "1" and run.data.metrics["train_items"] == \
        warm.train_items
    assert "fine-tuned from version 1" in "\n".join(warm.lines())

    run_ingest(load_settings(), str(factory_batches["first"]), "grade", dataset="other")
    with pytest.raises(Exception, match="was not trained on dataset 'other'"):
        run_train(load_settings(), "grade", dataset="other", params_file=str(TINY),
                  warm_from=first.version)
    assert len(_versions("card-grader")) == 2


def test_an_unknown_data_version_is_refused_by_name(
        home: Path, factory_batches: dict[str, Path]) -> None:
    _ingest(factory_batches["first"])
    with pytest.raises(Exception, match="has no version 'feedbeef'"):
        run_train(load_settings(), "grade", data_version="feedbeef", params_file=str(TINY))
    assert _versions("card-grader") == []


def _long_params(tmp_path: Path) -> Path:
    """The tiny budgets with many epochs, so that a run can be killed half-way."""
    params = yaml.safe_load(TINY.read_text())
    params["train"]["grade"]["fast"] = {**params["train"]["grade"]["fast"],
                                        "epochs": LONG_EPOCHS, "patience": LONG_EPOCHS}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_a_killed_training_registers_nothing_and_resumes_in_the_same_run(
        home: Path, factory_batches: dict[str, Path], tmp_path: Path) -> None:
    _ingest(factory_batches["first"])
    params = _long_params(tmp_path)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    gradeline = Path(sys.executable).with_name("gradeline")
    process = subprocess.Popen([str(gradeline), "train", "--params", str(params)], env=env,
                               cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = home / "cache" / "train" / "card-grader"
    deadline = time.monotonic() + 240
    while not list(work.glob("*/checkpoint.pt")) and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    (checkpoint,) = work.glob("*/checkpoint.pt")
    killed_run = (checkpoint.parent / RUN_ID_FILE).read_text()
    assert _versions("card-grader") == []
    assert _client().get_run(killed_run).info.status == "RUNNING"
    # Checkpoints are replaced atomically: a kill while the next one is written (tiny epochs
    # take a second) may leave a `.partial`, never a broken checkpoint.
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["loop"]["epoch"] >= 1

    summary = run_train(load_settings(), "grade", params_file=str(params))

    assert summary.resumed_from_epoch >= 1 and summary.run_id == killed_run
    assert summary.epochs_run == LONG_EPOCHS and summary.version == 1
    steps = [m.step for m in _client().get_metric_history(killed_run, "train_loss")]
    assert steps[-1] == LONG_EPOCHS  # at most the killed epoch is missing:
    assert len(set(steps)) >= LONG_EPOCHS - 1


def _train_and_die_after_registering(home: str, params: str, api_url: str) -> None:
    """In a child process: the train flow, killed (SIGKILL) just after its version was
    registered, before its run was closed and its checkpoint removed."""
    os.environ.update(GRADELINE_HOME=home, PREFECT_API_URL=api_url)
    import flows.train

    register = flows.train.register_candidate

    def register_then_die(*args: object, **kwargs: object) -> None:
        register(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    flows.train.register_candidate = register_then_die
    run_train(load_settings(), "grade", params_file=params)


def test_a_training_killed_after_registering_registers_nothing_twice(
        home: Path, factory_batches: dict[str, Path],
        child_process: Callable[..., Process]) -> None:
    _ingest(factory_batches["first"])
    child = child_process(_train_and_die_after_registering,
                          (str(home), str(TINY), str(PREFECT_API_URL.value())), timeout=400)
    assert child.exitcode == -signal.SIGKILL
    [registered] = _versions("card-grader")
    (marker,) = (home / "cache" / "train" / "card-grader").glob(f"*/{RUN_ID_FILE}")
    assert marker.read_text() == registered.run_id  # left for the rerun to resume

    summary = run_train(load_settings(), "grade", params_file=str(TINY))

    assert summary.version == int(registered.version) == 1
    assert summary.run_id == registered.run_id and summary.model_uri == registered.source
    assert len(_versions("card-grader")) == 1
    assert _client().get_run(registered.run_id).info.status == "FINISHED"


def test_a_defect_detector_is_trained_with_yolo_and_registered(
        home: Path, factory_batches: dict[str, Path]) -> None:
    data_version = _ingest(factory_batches["first"], task="detect")

    summary = run_train(load_settings(), "detect", params_file=str(TINY))

    client = _client()
    (version,) = _versions("defect-detector")
    assert version.tags["data_version"] == data_version
    assert version.tags["stage"] == "candidate"
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in runs] == [summary.run_id]  # Ultralytics made no run of its own
    assert [m.step for m in client.get_metric_history(summary.run_id, "map50")] == [1, 2]
    assert _artifacts(client, summary.run_id) >= PLOTS
    model = mlflow.pyfunc.load_model("models:/defect-detector/1")
    photo = cv2.imencode(".jpg", cv2.imread(str(next(
        (factory_batches["first"] / "images").glob("*.jpg")))))[1].tobytes()
    found = model.predict(pd.DataFrame({"image": [photo]}))
    assert list(found.columns) == ["defects"]
