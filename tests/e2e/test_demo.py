"""`gradeline demo` end to end at a small scale: a real Prefect flow run on the embedded
defaults, every step's figures in the report, and the pictures it promises on disk."""

import asyncio
from pathlib import Path

import cv2
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import FlowRunSort
from prefect.testing.utilities import prefect_test_harness

from components.settings import load_settings
from flows.demo import run_demo

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TINY_BUDGETS = Path(__file__).parents[1] / "integration" / "tiny_params.yaml"


async def _demo_run_states() -> list[str]:
    async with get_client() as client:
        # Explicit limit and sort: this server rejects the client's defaults (null) with a 422.
        runs = await client.read_flow_runs(limit=10, sort=FlowRunSort.START_TIME_DESC)
        return [run.state.type.value for run in runs if run.name and run.state]


def test_demo_runs_the_day_zero_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.environ", dict(__import__("os").environ))  # activate() must not leak
    lines: list[str] = []
    with prefect_test_harness(server_startup_timeout=120):
        report = run_demo(load_settings(home=tmp_path), studio_cards=24, phone_cards=16,
                          echo=lines.append, params_file=TINY_BUDGETS)
        states = asyncio.run(_demo_run_states())

    assert report.ok, report.error
    assert set(states) == {"COMPLETED"}  # the demo and its ingest, train, evaluate subflows
    names = [step.name for step in report.steps]
    assert names[0] == "synthesize studio batch"
    assert names[-3:] == ["ingest studio batch again", "train card grader (fast profile)",
                          "evaluate card grader"]
    studio = next(s for s in report.steps if s.name == "centering vs truth (studio)")
    assert studio.figures["failures"] == 0 and studio.figures["max_abs"] <= 1.0
    sheets = next(s for s in report.steps if s.name == "contact sheets").files
    assert all(cv2.imread(path) is not None for path in sheets)
    assert all(Path(path).is_relative_to(tmp_path) for path in sheets)
    assert lines[-1] == "demo finished"
    ingests = [s.figures for s in report.steps if s.name.startswith("ingest")]
    assert [f["status"] for f in ingests] == ["accepted", "accepted", "already_ingested"]
    assert ingests[0]["accepted"] == 24 and ingests[1]["accepted"] == 16
    assert ingests[2]["data_version"] == ingests[1]["data_version"]
    trained = report.steps[-2].figures
    assert trained["model_name"] == "card-grader" and trained["version"] == 1
    assert -1 <= trained["qwk"] <= 1 and trained["epochs_run"] >= 1
    evaluated = report.steps[-1]
    # A grader trained on 32 cards is far from the experts: its gates reject it.
    assert evaluated.figures["version"] == 1 and evaluated.figures["stage"] == "rejected"
    assert "kappa" in evaluated.figures["gates_failed"]
    assert "<h2>Gates</h2>" in Path(evaluated.files[0]).read_text()


def test_demo_reports_a_failed_step_instead_of_crashing(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.environ", dict(__import__("os").environ))
    with prefect_test_harness(server_startup_timeout=120):
        report = run_demo(load_settings(home=tmp_path), studio_cards=0, phone_cards=4,
                          echo=None)

    assert not report.ok
    assert "--n must be at least 1" in report.error
