"""The `retention` flow on a home (real Prefect run, real MLflow registry): old prediction rows,
thumbnails, reports and Prefect results go; recent ones, and the cached model of the version the
champion alias names, stay."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from components.predlog import PredictionLog, PredictionRecord
from components.settings import load_settings
from components.vision.properties import PROPERTY_NAMES
from flows.retention import run_retention
from model_registry.names import GRADER
from tests.integration.conftest import two_graders

pytestmark = pytest.mark.integration


def _aged(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 100)
    moment = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    os.utime(path, (moment, moment))
    return path


def _prediction(request_id: str, days_ago: float) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id, time=datetime.now(UTC) - timedelta(days=days_ago),
        model=GRADER, version=1, role="champion", answered=True, data_version="d", grade=7,
        grade_set_low=7, grade_set_high=7, needs_review=False, probabilities=None,
        subgrades=None, latency_ms=5.0, error=None,
        properties=dict.fromkeys(PROPERTY_NAMES, 1.0))


def test_retention_prunes_what_is_past_its_time_and_keeps_the_champion_s_model(
        home: Path, tmp_path: Path) -> None:
    settings = load_settings().activate()
    two_graders(settings, 2, tmp_path)
    PredictionLog(str(settings.prediction_log_uri)).write(
        [_prediction("last-year", 365), _prediction("today", 0)])
    old = [_aged(settings.thumbnails_dir / "a.jpg", 45),
           _aged(settings.reports_dir / "drift" / "old.html", 400),
           _aged(settings.prefect_home / "storage" / "result", 60),
           _aged(settings.cache_dir / "serving" / f"{GRADER}-1" / "model.onnx", 60)]
    kept = [_aged(settings.thumbnails_dir / "b.jpg", 1),
            _aged(settings.cache_dir / "serving" / f"{GRADER}-2" / "model.onnx", 60)]

    dry = CliRunner().invoke(app, ["prune", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert all(path.exists() for path in old)
    summary = run_retention(settings)

    pruned = {item["what"]: item["items"] for item in summary["pruned"]}
    assert pruned == {"prediction_log_rows": 1, "thumbnails": 1, "reports": 1,
                      "prefect_results": 1, "model_cache": 1}
    assert not any(path.exists() for path in old) and all(path.exists() for path in kept)
    log = PredictionLog(str(settings.prediction_log_uri))
    assert log.window()["request_id"].tolist() == ["today"]
