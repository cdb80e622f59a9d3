"""The local stack and the deployments, with real processes on loopback: `gradeline up` starts
a Prefect server, the MLflow UI and a process worker; `gradeline deploy` registers prefect.yaml;
an event starts the deployment it triggers; `gradeline down` leaves nothing behind.

The deployments are registered from a copy of prefect.yaml beside stand-in flows that have the
real flows' names and parameters, so the test checks scheduling and triggering, not training.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from components.serving.loopback import free_port
from components.settings import load_settings
from model_registry.names import GRADER
from model_registry.versions import registry_client
from tests.stack import api, flow_runs, gradeline, poll, processes_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STAND_INS = {
    "retrain.py": '@flow(name="retrain")\n'
                  'def retrain(model: str = "card-grader", dataset: str | None = None,\n'
                  '            reason: str = "scheduled", source: str | None = None) -> dict:\n'
                  '    return {"model": model, "reason": reason}\n',
    "export_reviews.py": '@flow(name="export-reviews")\n'
                         'def export_reviews(model: str = "card-grader") -> dict:\n'
                         '    return {}\n',
    "monitor.py": '@flow(name="monitor")\n'
                  'def monitor(model: str = "card-grader", window_hours: float | None = None)'
                  ' -> dict:\n'
                  '    return {}\n',
    "release.py": '@flow(name="conclude-releases")\n'
                  'def conclude_releases() -> dict:\n'
                  '    return {}\n',
    "retention.py": '@flow(name="retention")\n'
                    'def retention(params_file: str | None = None, dry_run: bool = False)'
                    ' -> dict:\n'
                    '    return {}\n',
    "ingest.py": '@flow(name="ingest")\n'
                 'def ingest(source: str, task: str = "grade", dataset: str | None = None)'
                 ' -> dict:\n'
                 '    return {"source": source}\n',
}
EXPECTED = {
    "nightly-retrain": {"schedules": ["cron 0 2 * * * (UTC)"], "events": []},
    "hourly-monitor": {"schedules": ["cron 0 * * * * (UTC)"], "events": []},
    "daily-retention": {"schedules": ["cron 30 3 * * * (UTC)"], "events": []},
    "conclude-releases": {"schedules": ["every 300 s"], "events": []},
    "export-reviews": {"schedules": ["cron 30 * * * * (UTC)"], "events": []},
    "ingest-new-batch": {"schedules": [], "events": ["gradeline.batch.landed"]},
    "retrain-on-drift": {"schedules": [], "events": ["gradeline.drift.detected"]},
    "retrain-on-reviews": {"schedules": [], "events": ["gradeline.reviews.exported"]},
}
EMIT = """
from prefect.events import emit_event
model = {"prefect.resource.id": "gradeline.model.card-grader",
         "gradeline.model.name": "card-grader", "gradeline.model.version": "3"}
for incident in ("a", "b"):  # one incident reported twice: one retrain
    emit_event("gradeline.drift.detected", model,
               payload={"incident": incident, "drifted": ["brightness", "embeddings"]})
emit_event("gradeline.reviews.exported",
           {"prefect.resource.id": "gradeline.batch.reviewed-1", "gradeline.batch.task": "grade",
            "gradeline.batch.path": "/inbox/reviewed-1", "gradeline.model.name": "card-grader"},
           payload={"items": 180})
"""


def status_of(url: str) -> int:
    """The HTTP status of `url` opened as a browser does (the Prefect UI routes pages only
    for requests that accept HTML)."""
    request = urllib.request.Request(url, headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str, body: dict[str, str] | None = None,
                  user: tuple[str, str] | None = None) -> int:
    """The HTTP status `url` answers with (POST `body` when given), signed in as `user`."""
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(user).encode()).decode()
    request = urllib.request.Request(url, None if body is None else json.dumps(body).encode(),
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _reviewers_sign_in_and_only_they_edit(home: Path, mlflow_url: str) -> None:
    """On the stack's MLflow (basic-auth app): nobody unsigned, a listed reviewer's account
    edits the grader's versions, any other account only reads."""
    client = registry_client(str(load_settings(home=home).mlflow_tracking_uri))
    client.create_registered_model(GRADER)
    client.create_model_version(GRADER, source=str(home), run_id=None)
    added = gradeline(home, "reviewers", "add", "ada", "--out", str(home.parent / "ada.pw"))
    assert added.returncode == 0, added.stderr
    admin = ("admin", (home / "stack" / "mlflow-admin.password").read_text().strip())
    assert http_status(f"{mlflow_url}/api/2.0/mlflow/users/create",
                         {"username": "bob", "password": "bob-reads-only-1"}, admin) == 200
    tag = {"name": GRADER, "version": "1", "key": "approval", "value": "approved"}
    set_tag = f"{mlflow_url}/api/2.0/mlflow/model-versions/set-tag"
    ada = ("ada", (home.parent / "ada.pw").read_text().strip())

    assert http_status(f"{mlflow_url}/api/2.0/mlflow/registered-models/search") == 401
    assert http_status(set_tag, tag) == 401
    assert http_status(set_tag, tag, ("bob", "bob-reads-only-1")) == 403
    assert http_status(set_tag, tag, ada) == 200
    refused = gradeline(home, "reviewers", "add", "mallory")
    assert refused.returncode == 2 and "not in promote.reviewers" in refused.stderr
    assert not any(admin[1] in line or ada[1] in line for line in processes_of(home))


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """prefect.yaml of the repository beside stand-in flows."""
    folder = tmp_path / "project"
    (folder / "flows").mkdir(parents=True)
    (folder / "prefect.yaml").write_text((ROOT / "prefect.yaml").read_text())
    for name, source in STAND_INS.items():
        (folder / "flows" / name).write_text("from prefect import flow\n\n\n" + source)
    return folder


def test_up_deploy_trigger_down(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    prefect_port, mlflow_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    ports = ("--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port))
    try:
        up = gradeline(home, "up", *ports, timeout=300)
        assert up.returncode == 0, up.stderr
        for url in (f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{mlflow_port}",
                    f"http://127.0.0.1:{prefect_port}/work-pools/work-pool/gradeline"):
            assert url in up.stdout
        for url in (f"http://127.0.0.1:{prefect_port}",
                    f"http://127.0.0.1:{prefect_port}/work-pools/work-pool/gradeline"):
            assert status_of(url) == 200
        assert status_of(f"http://127.0.0.1:{mlflow_port}/health") == 200
        _reviewers_sign_in_and_only_they_edit(home, f"http://127.0.0.1:{mlflow_port}")
        auth = "gradeline:" + (home / "stack" / "prefect-api.secret").read_text().strip()
        assert http_status(f"{api_url}/work_pools/gradeline") == 401  # no auth string
        assert api(f"{api_url}/work_pools/gradeline", auth=auth)["type"] == "process"
        workers = api(f"{api_url}/work_pools/gradeline/workers/filter", {}, auth)
        assert [w["status"] for w in workers] == ["ONLINE"]

        again = gradeline(home, "up", *ports)
        assert again.returncode == 0 and "already up" in again.stdout, again.stderr

        deployed = gradeline(home, "deploy", "--project", str(project), "--json", timeout=180)
        assert deployed.returncode == 0, deployed.stderr
        printed = {d["name"]: d for d in json.loads(deployed.stdout)}
        assert {name: {"schedules": d["schedules"],
                       "events": [e for t in d["triggers"] for e in t["expect"]]}
                for name, d in printed.items()} == EXPECTED

        # Read back from the server itself, not from what deploy printed.
        registered = {d["name"]: d for d in api(f"{api_url}/deployments/filter", {"limit": 50},
                                                     auth)}
        assert set(registered) == set(EXPECTED)
        assert {d["work_pool_name"] for d in registered.values()} == {"gradeline"}
        # Prefect's own CLI lists them too (its client and the pinned FastAPI agree on nulls).
        listed = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "ls"], capture_output=True,
            text=True, timeout=120, env={**os.environ, "PREFECT_API_URL": api_url,
                                         "PREFECT_API_AUTH_STRING": auth, "COLUMNS": "300"})
        assert listed.returncode == 0, listed.stderr
        assert all(name in listed.stdout for name in EXPECTED), listed.stdout
        schedules = {name: [s["schedule"] for s in d["schedules"]]
                     for name, d in registered.items()}
        assert schedules["nightly-retrain"][0]["cron"] == "0 2 * * *"
        assert schedules["nightly-retrain"][0]["timezone"] == "UTC"
        assert schedules["hourly-monitor"][0]["cron"] == "0 * * * *"
        assert schedules["conclude-releases"][0]["interval"] == 300
        assert registered["retrain-on-drift"]["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}]
        automations = api(f"{api_url}/automations/filter", {"limit": 50}, auth)
        owners = {a["actions"][0]["deployment_id"]: a["trigger"] for a in automations}
        drift = owners[registered["retrain-on-drift"]["id"]]
        assert drift["expect"] == ["gradeline.drift.detected"] and drift["within"] == 3600
        assert owners[registered["ingest-new-batch"]["id"]]["expect"] == [
            "gradeline.batch.landed"]
        assert owners[registered["retrain-on-reviews"]["id"]]["expect"] == [
            "gradeline.reviews.exported"]

        env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_API_AUTH_STRING": auth}
        subprocess.run([sys.executable, "-c", EMIT], env=env, check=True, timeout=60)
        (home.parent / "b7").mkdir()
        (home.parent / "b7" / "manifest.csv").write_text("image_path,grade\n")
        landed = gradeline(home, "land", str(home.parent / "b7"), timeout=120)
        assert landed.returncode == 0 and "announced to" in landed.stdout, landed.stderr
        retrain_id = registered["retrain-on-drift"]["id"]
        runs = poll("a retrain-on-drift flow run", lambda: flow_runs(api_url, retrain_id, auth), 60)
        assert runs[0]["parameters"] == {"model": "card-grader",
                                         "reason": "drift: brightness, embeddings"}
        ingest_id = registered["ingest-new-batch"]["id"]
        runs = poll("an ingest-new-batch flow run", lambda: flow_runs(api_url, ingest_id, auth), 60)
        assert runs[0]["parameters"] == {"source": str(home / "inbox" / "b7"), "task": "grade",
                                         "dataset": None}
        reviewed_id = registered["retrain-on-reviews"]["id"]
        runs = poll("a retrain-on-reviews flow run",
                    lambda: flow_runs(api_url, reviewed_id, auth), 60)
        assert runs[0]["parameters"] == {"model": "card-grader", "source": "/inbox/reviewed-1",
                                         "reason": "reviewed photos: 180 items"}
        time.sleep(3)  # the second report of the incident has been evaluated by now
        assert len(flow_runs(api_url, retrain_id, auth)) == 1
    finally:
        down = gradeline(home, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    for service in ("worker", "mlflow", "prefect-server"):
        assert f"stopped {service}" in down.stdout
    assert not listening(prefect_port) and not listening(mlflow_port)
    assert processes_of(home) == []
    assert not list((home / "stack").glob("*.pid"))
    assert "nothing to stop" in gradeline(home, "down").stdout


def test_refusals_without_a_stack(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = gradeline(home, "up", "--prefect-port", str(port), "--mlflow-port",
                       str(free_port()))
    assert up.returncode == 2 and f"port {port}" in up.stderr and "taken" in up.stderr
    assert processes_of(home) == []

    deploy = gradeline(home, "deploy", "--project", str(project))
    assert deploy.returncode == 2 and "no Prefect server answers" in deploy.stderr
    down = gradeline(home, "down")
    assert down.returncode == 0 and "nothing to stop" in down.stdout


def _flow_parameters(path: Path, function: str) -> set[str] | None:
    """Parameter names of the @flow function `function` in `path` (None when it is not one)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            decorators = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
            if any(isinstance(d, ast.Name) and d.id == "flow" for d in decorators):
                return {a.arg for a in node.args.args + node.args.kwonlyargs}
    return None


def test_prefect_yaml_matches_the_flows() -> None:
    """Every entrypoint is a flow of the repository taking the parameters that prefect.yaml
    passes to it (fixed or from the event)."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert [d["name"] for d in config["deployments"]] == list(EXPECTED)
    for deployment in config["deployments"]:
        file, function = deployment["entrypoint"].split(":")
        parameters = _flow_parameters(ROOT / file, function)
        assert parameters is not None, f"{deployment['entrypoint']} is not a flow"
        passed = set(deployment.get("parameters") or {})
        for trigger in deployment.get("triggers") or []:
            passed |= set(trigger.get("parameters") or {})
        assert passed <= parameters, (deployment["name"], passed - parameters)
