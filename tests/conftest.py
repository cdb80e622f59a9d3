"""Fixtures shared by every test suite: a clean environment, one Prefect test server and one
PostgreSQL server for the session (only tests that ask for them start them), and small factory
batches to feed flows."""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.postgres import PostgresServer, throwaway_postgres
from components.cards import synthesize_batch

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


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness  # after PREFECT_HOME is set

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session, on loopback (cli/postgres.py)."""
    with throwaway_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def factory_batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small card batches made once per session; tests copy before they change one."""
    root = tmp_path_factory.mktemp("batches")
    return {name: synthesize_batch(root / name, n=n, seed=seed, camera="studio") and root / name
            for name, n, seed in (("first", 40, 101), ("second", 30, 102), ("bad", 60, 103))}
