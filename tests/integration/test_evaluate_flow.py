"""The `evaluate` flow against a real MLflow store and registry, a real Prefect run and real
DVC: a tiny grader is judged, exported and gated, its version carries the gates, metrics and
report, and its ONNX graph loads with a plain MLflow client; a tiny detector is judged the same
way. Budgets are tiny (tiny_params.yaml); `make bench` measures quality at real sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from components.serving.loopback import free_port, wait_until_up
from components.settings import load_settings
from components.vision.graph import read_metadata
from flows.evaluate import run_evaluate
from flows.ingest import run_ingest
from flows.train import run_train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = Path(__file__).with_name("tiny_params.yaml")
GRADER_PLOTS = {"reliability.png", "conformal.png", "agreement.png", "confusion_grade.png",
                "confusion_edges.png", "confusion_camera_studio.png"}


def _client() -> MlflowClient:
    uri = str(load_settings().mlflow_tracking_uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _train(batch: Path, task: str) -> None:
    ingested = run_ingest(load_settings(), str(batch), task)
    assert ingested.status == "accepted", ingested.message
    run_train(load_settings(), task, params_file=str(TINY))


def _evaluation_files(client: MlflowClient, run_id: str) -> set[str]:
    return {Path(entry.path).name for entry in client.list_artifacts(run_id, "evaluation")}


@contextmanager
def _served(model_uri: str) -> Iterator[str]:
    """`mlflow models serve` of the model on a free loopback port, stopped afterwards; its URL."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # the scoring server runs `uvicorn` from PATH
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/ping", lambda: server.poll() is None, timeout=90)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _lenient(tmp_path: Path) -> Path:
    """TINY with gates any model passes: the path a good candidate takes."""
    params = yaml.safe_load(TINY.read_text())
    params["evaluate"]["gates"] = {"kappa_margin": 2.0, "max_ece": 1.0, "coverage_margin": 0.9}
    path = tmp_path / "lenient.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_a_grader_version_is_judged_exported_and_gated(
        home: Path, tmp_path: Path, factory_batches: dict[str, Path]) -> None:
    _train(factory_batches["first"], "grade")

    summary = run_evaluate(load_settings(), "card-grader", 1, str(TINY))

    # A tiny model is far below the experts: its kappa gate fails and the candidate is rejected.
    client = _client()
    version = client.get_model_version("card-grader", "1")
    assert summary["stage"] == version.tags["stage"] == "rejected"
    assert version.tags["gate.kappa"] == "fail" and summary["verdict"] == "below"
    assert version.tags["gate.parity_onnx_fp32"] == "pass"
    assert {g["name"] for g in summary["gates"]} == {"kappa", "ece", "coverage",
                                                     "parity_onnx_fp32", "baseline"}
    assert 0.9 < summary["human_bar"] <= 1.0 and summary["kappa"] < summary["human_bar"] - 0.02
    assert summary["tensorrt"].startswith("skipped: no CUDA device")
    assert [row["backend"] for row in summary["latency"]] == ["pytorch eager", "onnx fp32",
                                                              "onnx int8"]
    assert summary["parity"][0]["max_abs_diff"] <= 1e-3

    # The reviewer's view: report, plots and figures on the version's run and model.
    files = _evaluation_files(client, version.run_id)
    assert {"report.html", "evaluation.json"} | GRADER_PLOTS <= files
    report = Path(client.download_artifacts(version.run_id, "evaluation/report.html",
                                            str(tmp_path))).read_text()
    assert "below the experts' own agreement" in report and "data:image/png;base64," in report
    metrics = client.get_run(version.run_id).data.metrics
    assert metrics["gate.kappa"] == pytest.approx(summary["kappa"])
    assert {"eval.ece_before", "eval.ece_after", "eval.ece_chance_p95", "eval.coverage",
            "latency.onnx_fp32.p50_ms", "parity.onnx_fp32.max_abs_diff"} <= set(metrics)
    logged = mlflow.get_logged_model(version.source.removeprefix("models:/"))
    assert "gate.kappa" in {m.key for m in logged.metrics}

    # The exported graph: a plain MLflow client loads and runs it, calibrated.
    onnx_uri = version.tags["onnx.model_uri"]
    assert summary["graphs"]["onnx"] == onnx_uri and len(version.tags["onnx.sha256"]) == 64
    graph = mlflow.pyfunc.load_model(onnx_uri)
    pixels = np.full((3, 128, 96, 3), 128.0, np.float32)
    outputs = graph.predict({"pixels": pixels, "geometry": np.zeros((3, 4), np.float32)})
    probabilities = outputs["probabilities"]
    assert probabilities.shape == (3, 5, 10)
    assert np.allclose(probabilities.sum(axis=2), 1, atol=1e-4)
    with _served(onnx_uri) as url:
        body = json.dumps({"inputs": {"pixels": pixels.tolist(),
                                      "geometry": np.zeros((3, 4)).tolist()}}).encode()
        request = urllib.request.Request(f"{url}/invocations", body,
                                         {"Content-Type": "application/json"})
        served = json.loads(urllib.request.urlopen(request, timeout=60).read())
    assert np.allclose(served["predictions"]["probabilities"], probabilities, atol=1e-6)
    local = Path(mlflow.artifacts.download_artifacts(onnx_uri, dst_path=str(tmp_path / "onnx")))
    metadata = read_metadata(next(local.rglob("*.onnx")))
    assert metadata["temperatures"] == pytest.approx(list(summary["temperatures"].values()))
    assert metadata["version"] == 1 and metadata["conformal"]["coverage"] == 0.9

    # Re-evaluated under gates it meets (through the CLI), it reports them passed, but a
    # rejected version stays rejected: looser params do not revive it.
    result = CliRunner().invoke(app, ["evaluate", "--model", "card-grader", "--version", "1",
                                      "--params", str(_lenient(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    version = client.get_model_version("card-grader", "1")
    assert again["stage"] == version.tags["stage"] == "rejected"
    assert all(version.tags[f"gate.{g}"] == "pass" for g in ("kappa", "ece", "coverage"))


def test_a_detector_version_is_judged_on_recall_per_class(
        home: Path, factory_batches: dict[str, Path]) -> None:
    _train(factory_batches["first"], "detect")

    summary = run_evaluate(load_settings(), "defect-detector", None, str(TINY))

    version = _client().get_model_version("defect-detector", "1")
    classes = json.loads(version.tags.get("classes", "null") or "null") or summary["classes"]
    assert {f"recall_{c}" for c in classes} <= {g["name"] for g in summary["gates"]}
    assert version.tags["gate.parity_detector_onnx"] == "pass"
    # Two epochs at 64 px find no defect: recall gates fail and the candidate is rejected.
    assert version.tags["stage"] == "rejected"
    assert {"report.html", "detector_confusion_matrix.png"} <= _evaluation_files(
        _client(), version.run_id)
    graph = mlflow.pyfunc.load_model(version.tags["onnx.model_uri"])
    outputs = graph.predict({"images": np.zeros((2, 3, 64, 64), np.float32)})
    assert next(iter(outputs.values())).shape[0] == 2
