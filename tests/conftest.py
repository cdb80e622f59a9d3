"""Fixtures shared by every test suite."""

import os
import tempfile

import pytest

# Prefect reads PREFECT_HOME once, when first imported: point it at a throwaway folder before
# any test module imports a flow, so tests never touch a developer's ~/.prefect or the network.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="gradeline-tests-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"


@pytest.fixture(autouse=True)
def _no_gradeline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own GRADELINE_* variables from leaking into what tests see."""
    for name in [name for name in os.environ if name.startswith("GRADELINE_")]:
        monkeypatch.delenv(name)
