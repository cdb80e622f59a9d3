"""Fixtures shared by every test suite."""

import os

import pytest


@pytest.fixture(autouse=True)
def _no_gradeline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own GRADELINE_* variables from leaking into what tests see."""
    for name in [name for name in os.environ if name.startswith("GRADELINE_")]:
        monkeypatch.delenv(name)
