"""The local stack for tests, through the `gradeline` command as operators run it: `up` (a
Prefect server, the MLflow UI and a process worker on loopback), `deploy` of a project's
prefect.yaml, the Prefect API read with the stack's auth string, and `down`.

    with running_stack(home, project) as stack:       # up, deploy; down when the block ends
        run = stack.start("hourly-monitor", {"window_hours": 1})
        stack.finished(run["id"], timeout=300)         # the flow run once it is final
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.serving.loopback import free_port

GRADELINE = Path(sys.executable).parent / "gradeline"


def gradeline(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the `gradeline` command on `home`, with no PREFECT_API_URL of the caller's."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run([str(GRADELINE), "--home", str(home), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def api(url: str, body: dict[str, Any] | None = None, auth: str | None = None) -> Any:
    """The Prefect API's JSON answer to GET `url` (POST `body`), with basic `auth`."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def flow_runs(api_url: str, deployment_id: str, auth: str) -> list[dict[str, Any]]:
    return api(f"{api_url}/flow_runs/filter",
               {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 50}, auth)


def poll(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """check()'s first truthy answer; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answer := check():
            return answer
        time.sleep(1)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def processes_of(home: Path) -> list[str]:
    """Command lines of live processes started with this GRADELINE_HOME (servers, workers and
    their children all inherit it)."""
    marker = f"GRADELINE_HOME={home.resolve()}".encode() + b"\0"
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes() + b"\0":
                stat = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()
                if stat[0] != "Z":
                    found.append((environ.parent / "cmdline").read_bytes().decode(
                        errors="replace").replace("\0", " "))
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class RunningStack:
    """A stack `gradeline up` started and the deployments registered on it, by name."""

    api_url: str
    auth: str
    deployments: dict[str, dict[str, Any]]

    def start(self, deployment: str, parameters: dict[str, Any]) -> dict[str, Any]:
        """A flow run of the deployment with these parameters, as `prefect deployment run`
        makes one; the worker picks it up."""
        return api(f"{self.api_url}/deployments/{self.deployments[deployment]['id']}"
                   "/create_flow_run", {"parameters": parameters}, self.auth)

    def runs(self, deployment: str) -> list[dict[str, Any]]:
        return flow_runs(self.api_url, self.deployments[deployment]["id"], self.auth)

    def finished(self, run_id: str, timeout: float) -> dict[str, Any]:
        """The flow run once its state is final (completed, failed, crashed, cancelled)."""
        def final() -> dict[str, Any] | None:
            run = api(f"{self.api_url}/flow_runs/{run_id}", auth=self.auth)
            return run if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED",
                                                "CANCELLED") else None
        return poll(f"flow run {run_id} to finish", final, timeout)


@contextmanager
def running_stack(home: Path, project: Path) -> Iterator[RunningStack]:
    """`gradeline up` on free ports and `gradeline deploy` of `project` for the block, then
    `gradeline down`."""
    prefect_port = free_port()
    try:
        up = gradeline(home, "up", "--prefect-port", str(prefect_port), "--mlflow-port",
                       str(free_port()), timeout=300)
        assert up.returncode == 0, up.stderr
        deployed = gradeline(home, "deploy", "--project", str(project), "--json", timeout=180)
        assert deployed.returncode == 0, deployed.stderr
        auth = "gradeline:" + (home / "stack" / "prefect-api.secret").read_text().strip()
        api_url = f"http://127.0.0.1:{prefect_port}/api"
        yield RunningStack(api_url, auth, {d["name"]: d for d in api(
            f"{api_url}/deployments/filter", {"limit": 50}, auth)})
    finally:
        down = gradeline(home, "down", timeout=120)
    assert down.returncode == 0, down.stderr
