"""A `gradeline promote` killed (SIGKILL) in the middle of its canary, then recovered: the lock it
held is free at once, a rerun takes the challenger off traffic before judging it again, and
`gradeline release abort` stops what is left. Real MLflow, a real Prefect flow run in its own
process, and prediction-log traffic written as the service would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import prefect.settings
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from components.predlog import PredictionLog, PredictionRecord
from components.release.registry import releases_of
from components.settings import load_settings
from components.vision.properties import PROPERTY_NAMES
from model_registry.audit import ACTION_ABORT, ACTION_CANARY_SHARE
from model_registry.guard import check_release
from model_registry.locks import ReleaseLocked
from model_registry.names import GRADER, TAG_CANARY_SHARE, TAG_STAGE
from tests.integration.conftest import two_graders

pytestmark = pytest.mark.integration


def _traffic(log_uri: str, stop: threading.Event) -> None:
    """Requests answered by the champion (1) and scored by the challenger (2), as the service
    logs them during a release."""
    log, number = PredictionLog(log_uri), 0
    while not stop.is_set():
        number += 1
        log.write([PredictionRecord(
            request_id=f"t-{number}", time=datetime.now(UTC), model=GRADER, version=version,
            role=role, answered=role == "champion", data_version="d", grade=7,
            grade_set_low=7, grade_set_high=7, needs_review=False, probabilities=None,
            subgrades=None, latency_ms=10.0, error=None,
            properties=dict.fromkeys(PROPERTY_NAMES, 1.0))
            for version, role in ((1, "champion"), (2, "challenger"))])
        stop.wait(0.05)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_promote_killed_mid_canary_is_resumed_off_traffic_and_can_be_aborted(
        home: Path, tmp_path: Path) -> None:
    settings = load_settings().activate()
    client = two_graders(settings, 1, tmp_path)
    releases = releases_of(settings)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"promote": {
        "shadow": {"min_pairs": 5, "max_wait_seconds": 60},
        "canary": {"steps": [0.25, 0.5], "min_requests": 5, "max_wait_seconds": 60},
        "analysis": {"max_latency_ratio": 10.0, "min_timed_requests": 1},
        "poll_seconds": 0.2}}))
    stop = threading.Event()
    traffic = threading.Thread(target=_traffic, args=(str(settings.prediction_log_uri), stop))
    traffic.start()
    gradeline = shutil.which("gradeline", path=str(Path(sys.executable).parent))

    def share() -> str | None:
        return client.get_model_version(GRADER, "2").tags.get(TAG_CANARY_SHARE)

    try:
        process = subprocess.Popen(
            [gradeline, "--home", str(home), "promote", "--model", GRADER, "--version", "2",
             "--params", str(params), "--no-wait"],
            env={**os.environ, "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value()},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(lambda: share() == "0.5", 240, "the canary's last step")
            with pytest.raises(ReleaseLocked, match="already running"), \
                    releases.lock(GRADER, "a second promote"):
                pass
        finally:
            process.kill()
            process.wait(timeout=30)
        assert share() == "0.5"  # wedged: half the traffic on a challenger nobody judges
        with releases.lock(GRADER, "test"):  # the killed holder's lock went with it
            pass

        rerun = CliRunner().invoke(app, ["promote", "--model", GRADER, "--version", "2",
                                         "--params", str(params), "--no-wait", "--json"])
    finally:
        stop.set()
        traffic.join(timeout=30)

    assert rerun.exit_code == 0, rerun.output
    report = yaml.safe_load(rerun.stdout)
    assert report["resumed"] is True and report["stage"] == "awaiting_approval"
    assert [step["step"] for step in report["steps"]] == ["canary_25", "canary_50"]
    shares = [(event.details[TAG_CANARY_SHARE]["from"], event.details[TAG_CANARY_SHARE]["to"])
              for event in releases.audit.read(GRADER) if event.action == ACTION_CANARY_SHARE]
    assert shares[-3:] == [("0.5", None), (None, "0.25"), ("0.25", "0.5")]  # off traffic first
    assert check_release(releases, GRADER).findings == []

    aborted = CliRunner().invoke(app, ["release", "abort", "--model", GRADER, "--by", "bob",
                                       "--reason", "the reviewer is away"])
    assert aborted.exit_code == 0, aborted.output
    assert client.get_model_version(GRADER, "2").tags[TAG_STAGE] == "rejected"
    assert "challenger" not in client.get_registered_model(GRADER).aliases
    assert releases.audit.read(GRADER)[-1].action == ACTION_ABORT
    assert check_release(releases, GRADER).findings == []
    assert "release aborted" in (settings.home / "alerts.jsonl").read_text()
