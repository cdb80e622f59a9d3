"""Fixtures of the integration tests: one Prefect test server for the whole session (it takes
~15 s to start), a fresh GRADELINE_HOME per test, and small factory batches to feed flows."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from components.cards import synthesize_batch


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: None) -> Path:
    """A GRADELINE_HOME of the test's own; the environment is restored afterwards, whatever
    `settings.activate()` exported."""
    monkeypatch.setattr("os.environ", dict(os.environ))
    os.environ["GRADELINE_HOME"] = str(tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture(scope="session")
def factory_batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small card batches made once per session; tests copy before they change one."""
    root = tmp_path_factory.mktemp("batches")
    return {name: synthesize_batch(root / name, n=n, seed=seed, camera="studio") and root / name
            for name, n, seed in (("first", 40, 101), ("second", 30, 102), ("bad", 60, 103))}


def copy_batch(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
