"""Fixtures of the integration tests: a fresh GRADELINE_HOME per test (the Prefect test server
and the factory batches are session fixtures of tests/conftest.py, shared with e2e tests)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow import MlflowClient
from moto.server import ThreadedMotoServer

from components.serving.loopback import free_port
from components.settings import GradelineSettings
from model_registry.audit import AuditLog
from model_registry.names import GRADER
from model_registry.releases import Releases
from model_registry.versions import registry_client


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: None) -> Path:
    """A GRADELINE_HOME of the test's own; the environment is restored afterwards, whatever
    `settings.activate()` exported."""
    monkeypatch.setattr("os.environ", dict(os.environ))
    os.environ["GRADELINE_HOME"] = str(tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture()
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) on loopback, stopped after the test."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _in_own_group(target: Callable[..., None], *args: object) -> None:
    os.setsid()  # the child's own process group, so whatever it starts can be killed with it
    target(*args)


@pytest.fixture
def child_process() -> Iterator[Callable[..., multiprocessing.Process]]:
    """Runs a target in a spawned child process until it ends (or `timeout`), then, when the
    test is over, kills every process the child left behind: a flow killed by SIGKILL leaves
    the temporary Prefect server it started running, one leaked per test run otherwise."""
    children: list[multiprocessing.Process] = []

    def run(target: Callable[..., None], args: tuple, timeout: float) -> multiprocessing.Process:
        child = multiprocessing.get_context("spawn").Process(target=_in_own_group,
                                                             args=(target, *args))
        child.start()
        children.append(child)
        child.join(timeout=timeout)
        return child

    yield run
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


def copy_batch(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty registry database made once: creating MLflow's tables takes seconds."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    registry_client(f"sqlite:///{path}").search_registered_models()
    return path


@pytest.fixture()
def uri(tmp_path: Path, migrated_store: Path) -> str:
    """A registry of the test's own: a copy of the empty store."""
    shutil.copyfile(migrated_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture()
def client(uri: str, tmp_path: Path) -> MlflowClient:
    """A client of that store, with the card grader registered (no versions yet)."""
    found = registry_client(uri)
    found.create_registered_model(GRADER)
    return found


@pytest.fixture()
def releases(uri: str, tmp_path: Path, client: MlflowClient) -> Releases:
    """The release state of that registry, audited under tmp_path."""
    return Releases(uri, AuditLog(tmp_path / "audit" / "releases.jsonl"))


def two_graders(settings: GradelineSettings, champion: int, source: Path) -> MlflowClient:
    """The home's registry with card-grader versions 1 and 2 as evaluation leaves them
    (candidates whose gate passed), version `champion` crowned the first champion."""
    client = registry_client(str(settings.mlflow_tracking_uri))
    client.create_registered_model(GRADER)
    for _ in range(2):
        client.create_model_version(GRADER, source=str(source), run_id=None,
                                    tags={"stage": "candidate", "gate.kappa": "pass"})
    Releases(str(settings.mlflow_tracking_uri), AuditLog(settings.audit_log)).crown(
        GRADER, champion, "test", "first champion", first=True)
    return client


@pytest.fixture()
def receiver() -> Iterator[tuple[int, list[dict]]]:
    """A webhook on loopback recording the JSON body of every POST; its port and the bodies."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port, received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
