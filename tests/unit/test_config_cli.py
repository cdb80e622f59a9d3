"""`gradeline config show`, run through a throwaway Typer app that mounts it like cli/main.py."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.config import config_app
from components.settings import MASK, GradelineSettings

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(config_app, name="config")
    return app


def test_show_json_reports_home_and_masks_secrets(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADELINE_ALERT_URL", "slack://tokenA/tokenB/tokenC")
    monkeypatch.setenv("GRADELINE_AWS_SECRET_ACCESS_KEY", "topsecret")

    result = runner.invoke(app, ["config", "show", "--json", "--home", str(tmp_path)])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["home"] == str(tmp_path.resolve())
    assert shown["alert_url"] == shown["aws_secret_access_key"] == MASK
    assert "tokenA" not in result.stdout and "topsecret" not in result.stdout
    assert not any(tmp_path.iterdir()), "show must not create folders"


def test_show_prints_every_field_in_a_table(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "show", "--home", str(tmp_path)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    names = list(GradelineSettings.model_fields)
    assert [line.split()[0] for line in lines] == names
    width = max(map(len, names))
    assert all(line[width : width + 2] == "  " and line[width + 2] != " " for line in lines), (
        "values are not aligned in one column"
    )
