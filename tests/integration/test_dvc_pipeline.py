"""The DVC pipeline with real `dvc` commands: the reference stage runs, and the card factory's
determinism carries through DVC (a forced rebuild gives the same data version)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
VENV_BIN = Path(sys.executable).parent


def _dvc(project: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=project, env=env, text=True,
                          capture_output=True, timeout=240)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _data_version(project: Path) -> str:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return lock["stages"]["reference"]["outs"][0]["md5"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway git + DVC project with this repo's pipeline and a small reference set."""
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, tmp_path / name)
    # The stage depends on the factory's code, so that a change to it is a new data version.
    shutil.copytree(REPO / "components" / "cards", tmp_path / "components" / "cards",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "components" / "vision").mkdir()
    shutil.copy(REPO / "components" / "vision" / "rubric.py", tmp_path / "components" / "vision")
    shutil.copytree(REPO / ".dvc", tmp_path / ".dvc", ignore=shutil.ignore_patterns("cache",
                                                                                      "tmp"))
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["reference"]["n"] = 12
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def test_reference_stage_is_reproducible_through_dvc(project: Path) -> None:
    _dvc(project, "repro", "reference")
    manifest = project / "data" / "reference" / "manifest.csv"
    assert len(manifest.read_text().splitlines()) == 13  # header + 12 cards
    first = _data_version(project)

    assert "up to date" in _dvc(project, "status", "reference")
    _dvc(project, "repro", "--force", "reference")

    assert _data_version(project) == first


def test_changing_a_parameter_makes_the_stage_stale(project: Path) -> None:
    _dvc(project, "repro", "reference")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["reference"]["seed"] += 1
    (project / "params.yaml").write_text(yaml.safe_dump(params))

    assert "modified" in _dvc(project, "status", "reference")


@pytest.mark.parametrize("code", ["components/cards/render.py", "components/vision/rubric.py"])
def test_changing_the_factory_code_or_its_rubric_makes_the_stage_stale(project: Path,
                                                                        code: str) -> None:
    _dvc(project, "repro", "reference")
    changed = project / code
    changed.write_text(changed.read_text() + "\n# a changed factory is a new data version\n")

    assert "modified" in _dvc(project, "status", "reference")
