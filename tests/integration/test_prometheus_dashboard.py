"""The monitoring files against a real Prometheus (Debian's) scraping the grading service on
loopback: `promtool` accepts the alert rules, Prometheus loads them with the repository's own
scrape config (an operator key as credentials), and every panel of the Grafana dashboard
returns data once the service has answered traffic: a champion with a challenger in shadow,
a refused upload and a refused key. The two events a stand-in grader cannot cause (a failed
prediction, a release state put back) are counted on the service's metrics directly."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import httpx
import pytest
import yaml

from components.serving.loopback import free_port, wait_until_up
from components.serving.source import ServedModels
from tests.integration.test_serving_http import draining_server
from tests.unit.test_serving_service import StandInGrader, _photo, _service

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
PROMETHEUS = ROOT / "infra" / "prometheus"
DASHBOARD = ROOT / "dashboards" / "gradeline-service.json"
# What Grafana puts in place of its variables, at a 1 s scrape interval.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__range": "5m"}


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: `make test` installs Debian's prometheus")
    return found


def _query(url: str, expression: str) -> list[dict]:
    query = urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_promtool_accepts_the_alert_rules() -> None:
    checked = subprocess.run([_binary("promtool"), "check", "rules",
                              str(PROMETHEUS / "gradeline-rules.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_dashboard_panel_returns_data_from_a_live_service(tmp_path: Path) -> None:
    service = _service(tmp_path, ServedModels(StandInGrader(1, 7), StandInGrader(2, 7)))
    folder = tmp_path / "prometheus"
    folder.mkdir()
    with draining_server(service, tmp_path) as (service_url, keys, _, _):
        operator_key = keys["operator"]["Authorization"].removeprefix("Bearer ")
        (folder / "operator.key").write_text(operator_key)
        shutil.copy(PROMETHEUS / "gradeline-rules.yml", folder)
        config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["scrape_configs"][0]["static_configs"] = [
            {"targets": [service_url.removeprefix("http://")]}]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        url = f"http://127.0.0.1:{free_port()}"
        with (folder / "prometheus.log").open("w") as log:
            server = subprocess.Popen(
                [_binary("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address={url.removeprefix('http://')}"],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"{url}/-/ready", lambda: server.poll() is None, timeout=60)
            for _ in range(12):
                answered = httpx.post(f"{service_url}/v1/grade", headers=keys["client"],
                                      files={"file": ("card.jpg", _photo())}, timeout=30)
                assert answered.status_code == 200, answered.text
            assert httpx.post(f"{service_url}/v1/grade", headers=keys["client"], files={
                "file": ("card.jpg", b"not a photo")}, timeout=30).status_code == 415
            assert httpx.post(f"{service_url}/v1/grade", files={
                "file": ("card.jpg", _photo())}, timeout=30).status_code == 401
            service.metrics.observe_prediction("card-grader", 1, "champion", 0.5, error=True)
            service.metrics.count_tampering("card-grader")

            queries = [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"]
                       for target in panel["targets"]]
            for name, value in GRAFANA_VARIABLES.items():
                queries = [query.replace(name, value) for query in queries]
            deadline, empty = time.monotonic() + 60, queries
            while empty and time.monotonic() < deadline:
                time.sleep(1)
                empty = [query for query in queries if not _query(url, query)]
            rules = json.load(urllib.request.urlopen(f"{url}/api/v1/rules", timeout=10))
        finally:
            server.terminate()
            server.wait(timeout=30)

    assert empty == []
    assert sum(len(group["rules"]) for group in rules["data"]["groups"]) == 7
