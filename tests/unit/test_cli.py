"""The `gradeline` command: JSON where it reports results, clear errors, help everywhere."""

import json
import os
import stat
from pathlib import Path

import cv2
import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.main import app
from components.cards import synthesize_batch
from components.predlog import PredictionLog
from components.serving.keys import AccessDenied, KeyStore
from tests.unit.test_predlog import START, _record

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root callback exports the settings' environment; keep it inside each test."""
    monkeypatch.setattr(os, "environ", os.environ.copy())


def _run(tmp_path: Path, *args: str) -> Result:
    return runner.invoke(app, ["--home", str(tmp_path), *args])


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "batch"
    synthesize_batch(out, n=4, seed=1, camera="studio", workers=1)
    return out


def test_synth_prints_a_json_summary_and_never_overwrites(tmp_path: Path) -> None:
    args = ("data", "synth", "--n", "12", "--seed", "1", "--out", str(tmp_path / "b"), "--json")
    result = _run(tmp_path, *args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == 12 and summary["cards_per_s"] > 0
    assert sum(summary["grade_histogram"].values()) == 12
    assert len(list((tmp_path / "b" / "images").iterdir())) == 12

    again = _run(tmp_path, *args)
    assert again.exit_code == 2
    assert "error:" in again.output and str(tmp_path / "b") in again.output


def test_sheet_writes_a_png(tmp_path: Path, batch: Path) -> None:
    result = _run(tmp_path, "data", "sheet", str(batch), "--out", str(tmp_path / "s.png"))
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(tmp_path / "s.png"))
    assert sheet is not None and sheet.ndim == 3


def test_sheet_needs_a_batch(tmp_path: Path) -> None:
    result = _run(tmp_path, "data", "sheet", str(tmp_path), "--out", str(tmp_path / "s.png"))
    assert result.exit_code == 2
    assert "error:" in result.output and "no manifest.csv" in result.output
    assert not (tmp_path / "s.png").exists()


def test_centering_reports_each_image(tmp_path: Path, batch: Path) -> None:
    images = sorted(str(p) for p in (batch / "images").iterdir())[:2]
    result = _run(tmp_path, "centering", *images, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == set(images)
    for image in images:
        assert 0 < report[image]["centering_lr"] < 100
        assert 0 < report[image]["centering_tb"] < 100


def test_centering_says_which_file_is_not_an_image(tmp_path: Path, batch: Path) -> None:
    text = tmp_path / "card.jpg"
    text.write_text("not a photo")
    good = str(sorted((batch / "images").iterdir())[0])
    result = _run(tmp_path, "centering", good, str(text), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report[str(text)] == {"error": "not a readable image"}
    assert "centering_lr" in report[good]  # the other photo is still measured


@pytest.mark.parametrize(
    "command",
    [[], ["data"], ["data", "synth"], ["data", "sheet"], ["centering"], ["config", "show"],
     ["demo"], ["review"], ["review", "gold"], ["review", "export"]],
    ids=lambda command: " ".join(command) or "root",
)
def test_every_command_has_help(tmp_path: Path, command: list[str]) -> None:
    result = _run(tmp_path, *command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_silence_holds_back_the_next_drift_alert_and_says_until_when(tmp_path: Path) -> None:
    result = _run(tmp_path, "silence", "--model", "card-grader", "--hours", "2", "--by", "ada",
                  "--reason", "new camera, retraining", "--json")
    assert result.exit_code == 0, result.output
    incident = json.loads(result.stdout)
    assert incident["silenced_by"] == "ada" and incident["silence_reason"].startswith("new camera")
    state = json.loads((tmp_path / "monitor" / "incidents.json").read_text())
    assert "card-grader" in json.dumps(state)


def test_monitor_refuses_a_window_that_is_not_a_duration(tmp_path: Path) -> None:
    result = _run(tmp_path, "monitor", "--window", "yesterday")
    assert result.exit_code == 2
    assert "'yesterday' is not a duration such as 90m, 24h or 7d" in result.output


def test_land_puts_a_batch_in_the_inbox_once(tmp_path: Path, batch: Path) -> None:
    result = _run(tmp_path, "land", str(batch))
    assert result.exit_code == 0, result.output
    assert "no Prefect server to announce it to" in result.stdout
    assert (tmp_path / "inbox" / batch.name / "manifest.csv").is_file()
    again = _run(tmp_path, "land", str(batch))
    assert again.exit_code == 2 and "a batch lands once" in again.output


def test_serve_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    result = _run(tmp_path, "serve", "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert "no active API key" in result.output and "gradeline keys create" in result.output


def test_keys_cli_creates_lists_and_revokes_without_showing_hashes(tmp_path: Path) -> None:
    created = _run(tmp_path, "keys", "create", "--name", "ada", "--role", "expert",
                   "--out", str(tmp_path / "ada.key"))
    [key] = json.loads(_run(tmp_path, "keys", "list", "--json").stdout)
    revoked = _run(tmp_path, "keys", "revoke", key["key_id"])
    after = json.loads(_run(tmp_path, "keys", "list", "--json").stdout)

    assert created.exit_code == 0 and created.stdout == ""  # written to the file, not printed
    token = (tmp_path / "ada.key").read_text().strip()
    assert stat.S_IMODE((tmp_path / "ada.key").stat().st_mode) == 0o600
    assert key["name"] == "ada" and key["role"] == "expert" and "token_sha256" not in key
    assert revoked.exit_code == 0 and after[0]["revoked"]
    with pytest.raises(AccessDenied):
        KeyStore(tmp_path / "keys.json").authenticate(token)


def test_the_head_grader_sets_gold_and_reads_each_expert_against_it(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path}/predictions.db")
    log.write([_record("served"), _record("other", 1)])
    for request_id, grade in (("served", 6), ("other", 8)):
        log.record_expert_grade(request_id, grade, "ada", START)
    log.record_expert_grade("other", 8, "grace", START)

    gold = _run(tmp_path, "review", "gold", "served", "7", "--by", "head grader")
    unknown = _run(tmp_path, "review", "gold", "never-served", "7", "--by", "head grader")
    experts = json.loads(_run(tmp_path, "review", "experts", "--json").stdout)
    lines = _run(tmp_path, "review", "experts").stdout.splitlines()

    assert gold.exit_code == 0, gold.output
    assert unknown.exit_code == 2 and "only a served photo can be a gold item" in unknown.output
    assert experts[0]["expert"] == "ada" and experts[0]["compared"] == 1
    assert experts[0]["gold"] == {"compared": 1, "exact": 0.0, "within_one": 1.0, "bias": -1.0}
    assert lines[1].startswith("grace") and lines[1].endswith("gold: nothing compared")


def test_an_export_since_a_time_without_its_offset_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, "review", "export", "--since", "2026-12-06T00:00")

    assert result.exit_code == 2 and "needs a UTC offset" in result.output
