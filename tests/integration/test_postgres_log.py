"""The prediction log and the review queue on PostgreSQL, as service replicas share them in a
cluster (infra/): every unit test of both that runs on a log runs here again on a database of
a throwaway PostgreSQL server (cli/postgres.py), and two processes writing at once lose
nothing."""

from __future__ import annotations

import inspect
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import tests.unit.test_predlog as log_suite
import tests.unit.test_review_queue as queue_suite
from cli.postgres import PostgresServer
from components.predlog import PredictionLog

pytestmark = pytest.mark.integration


def _suite_on_a_log(module: object) -> dict[str, Callable[..., None]]:
    """The tests of `module` that take the `log` fixture, to be collected here too."""
    return {name: test for name, test in vars(module).items()
            if name.startswith("test_") and "log" in inspect.signature(test).parameters}


globals().update(_suite_on_a_log(log_suite))
_IN_THE_QUEUE = "_in_the_queue"
globals().update({f"{name}{_IN_THE_QUEUE}": test
                  for name, test in _suite_on_a_log(queue_suite).items()})


@pytest.fixture
def log(request: pytest.FixtureRequest, postgres: PostgresServer) -> PredictionLog:
    """A fresh database per test: the queue's tests start with their answers written."""
    fresh = PredictionLog(postgres.create_database(f"t_{uuid.uuid4().hex}"))
    return queue_suite.with_answers(fresh) if _IN_THE_QUEUE in request.node.name else fresh


_WRITER = """
import sys
from tests.unit.test_predlog import _record
from components.predlog import PredictionLog
log = PredictionLog(sys.argv[1])
for batch in range(50):
    log.write([_record(f"{sys.argv[2]}-{batch}-{i}", batch) for i in range(8)])
"""


def test_two_processes_writing_at_once_lose_nothing(postgres: PostgresServer) -> None:
    uri = postgres.create_database("two_replicas")
    PredictionLog(uri)  # the table exists before either writer starts, as a deployment has it
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, uri, name])
               for name in ("replica-a", "replica-b")]

    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    frame = PredictionLog(uri).window()
    assert len(frame) == 2 * 50 * 8 and frame["request_id"].is_unique


_SCHEMA = """
import sys, time
from pathlib import Path
from components.box_reviews import BoxReviews
from components.predlog import PredictionLog
from components.reviews import ReviewParams, ReviewQueue
folder, count = Path(sys.argv[2]), int(sys.argv[3])
(folder / sys.argv[4]).touch()  # imported; go once every process has
while len(list(folder.iterdir())) < count:
    time.sleep(0.01)
log = PredictionLog(sys.argv[1])
ReviewQueue(log, ReviewParams())
BoxReviews(log)
"""


def test_replicas_starting_together_on_an_empty_database_create_its_tables_once(
        postgres: PostgresServer, tmp_path: Path) -> None:
    """What `gradeline up --profile cluster` does: two replicas open the same empty database
    at once; unserialised, their CREATE TABLEs collided (a unique violation in pg_class)."""
    uri = postgres.create_database("empty_for_replicas")
    replicas = [subprocess.Popen([sys.executable, "-c", _SCHEMA, uri, str(tmp_path), "4",
                                  f"replica-{index}"], stderr=subprocess.PIPE, text=True)
                for index in range(4)]

    assert [(replica.wait(timeout=120), replica.stderr.read()) for replica in replicas] == [
        (0, "")] * 4
    assert PredictionLog(uri).window().empty
