"""Fixtures of the integration tests: a fresh GRADELINE_HOME per test (the Prefect test server
and the factory batches are session fixtures of tests/conftest.py, shared with e2e tests)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: None) -> Path:
    """A GRADELINE_HOME of the test's own; the environment is restored afterwards, whatever
    `settings.activate()` exported."""
    monkeypatch.setattr("os.environ", dict(os.environ))
    os.environ["GRADELINE_HOME"] = str(tmp_path / "home")
    return tmp_path / "home"


def copy_batch(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
