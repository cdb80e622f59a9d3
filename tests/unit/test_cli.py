"""The `gradeline` command: JSON where it reports results, clear errors, help everywhere."""

import json
import os
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root callback exports the settings' environment; keep it inside each test."""
    monkeypatch.setattr(os, "environ", os.environ.copy())


def _run(tmp_path: Path, *args: str):
    return runner.invoke(app, ["--home", str(tmp_path / "home"), *args])


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    result = _run(tmp_path, "data", "synth", "--n", "12", "--seed", "1", "--out",
                  str(tmp_path / "b"), "--json")
    assert result.exit_code == 0, result.output
    return tmp_path / "b"


def test_synth_prints_a_json_summary(tmp_path: Path) -> None:
    result = _run(tmp_path, "data", "synth", "--n", "12", "--seed", "1", "--out",
                  str(tmp_path / "b"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == 12 and summary["cards_per_s"] > 0
    assert sum(summary["grade_histogram"].values()) == 12


def test_synth_refuses_a_folder_that_holds_a_batch(tmp_path: Path, batch: Path) -> None:
    result = _run(tmp_path, "data", "synth", "--n", "3", "--out", str(batch))
    assert result.exit_code == 2
    assert "error:" in result.output and str(batch) in result.output


def test_sheet_writes_a_png(tmp_path: Path, batch: Path) -> None:
    result = _run(tmp_path, "data", "sheet", str(batch), "--out", str(tmp_path / "s.png"))
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "s.png")) is not None


def test_sheet_needs_a_batch(tmp_path: Path) -> None:
    result = _run(tmp_path, "data", "sheet", str(tmp_path), "--out", str(tmp_path / "s.png"))
    assert result.exit_code == 2 and "no manifest.csv" in result.output


def test_centering_reports_each_image(tmp_path: Path, batch: Path) -> None:
    images = sorted(str(p) for p in (batch / "images").iterdir())[:2]
    result = _run(tmp_path, "centering", *images, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == set(images)
    assert all(0 < report[i]["centering_lr"] < 100 for i in images)


def test_centering_says_which_file_is_not_an_image(tmp_path: Path) -> None:
    text = tmp_path / "card.jpg"
    text.write_text("not a photo")
    result = _run(tmp_path, "centering", str(text), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)[str(text)] == {"error": "not a readable image"}


@pytest.mark.parametrize(
    "command",
    [[], ["data", "synth"], ["data", "sheet"], ["centering"], ["config", "show"], ["demo"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
