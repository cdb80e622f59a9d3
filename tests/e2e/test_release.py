"""A release end to end on loopback: `gradeline serve` answers with the champion under generated
traffic; `gradeline promote` takes a challenger through shadow and canary; a reviewer approves it
with clicks in the real MLflow UI (headless Chromium); the service answers with the new champion
without a restart. A challenger that errs on a share of requests is rolled back automatically,
clients never see its errors, and on-call hears of it on a real HTTP receiver. With experts'
grades coming back, a challenger that grades worse than the champion is rolled back on its kappa
although it agrees with the champion, and a better one passes, both judged on params.yaml's
own kappa analysis (every release here with a loose latency limit: the graphs are the same
size, and tail latency on a few dozen requests is noise). An expert grades three photos on
the review page.

The graders are the real network with its answer replaced by a rule of what it sees (tests/
graphs.py), exported and registered with the tags a passing evaluation writes: the test knows
exactly how well each grades against the experts, whose grades the rule with no error gives.
Training and evaluation have their own tests; these check the release machinery.
"""

from __future__ import annotations

import contextvars
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import yaml
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from cli.main import app
from components.evaluate.export import untrained_grader_graph
from components.evaluate.graphs import sha256
from components.predlog import PredictionLog
from components.serving.loopback import free_port, wait_until_up
from components.serving.traffic import Photo, Traffic, TrafficKeys
from components.settings import find_project_root, load_settings
from components.tracking import TrackedRun
from components.vision.graph import read_metadata
from components.vision.models import OnnxGrader
from components.vision.prepare import prepare_photo
from model_registry import AuditLog, get_version, register_candidate
from model_registry.access import add_reviewer
from tests.e2e.mlflow_ui import (
    admin_password,
    launch_browser,
    mlflow_server,
    set_version_tags_in_ui,
)
from tests.graphs import GradeRule, erring_grader_graph, rule_grader_graph

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

GRADER = "card-grader"
SIZE = (96, 128)  # width, height: the tiny budgets' input size


def _release_params(folder: Path) -> tuple[Path, Path]:
    """Two params files with params.yaml's own `promote.analysis`: a service that re-reads
    aliases twice a second, and release steps judged on a few requests (`params.yaml`, latency
    loose), or on enough for 30 expert grades, the kappa test's first look (`judged.yaml`)."""
    production = yaml.safe_load((find_project_root() / "params.yaml").read_text())
    common = {"poll_seconds": 0.5, "reviewers": ["ada"],
              "analysis": production["promote"]["analysis"]}
    # Steps of 8 to 12 requests compare median latencies, which vary up to 2x between two
    # identical graphs on 2 busy cores (measured 18.3 against 9.2 ms): those steps check the
    # machinery, and their latency limit is loose. judged.yaml's kappa analysis is
    # production's; its latency limit is loose too: the graphs are the same size, and the p90
    # of 20 answers a side read 31.0 against 17.2 ms once (a clean-clone run failed on it).
    steps = {"params.yaml": ({"min_pairs": 12}, {"steps": [0.25, 0.5], "min_requests": 8},
                             {"max_latency_ratio": 10.0, "min_timed_requests": 1}),
             "judged.yaml": ({"min_pairs": 40}, {"steps": [0.5], "min_requests": 40},
                             {"max_latency_ratio": 10.0})}
    for name, (shadow, canary, analysis) in steps.items():
        (folder / name).write_text(yaml.safe_dump({
            "serve": {"refresh_seconds": 0.5, "max_wait_ms": 2, "drain_seconds": 0.5},
            "review": {"audit_share": 1.0},  # every answer waits for experts' review
            "promote": {**common, "analysis": {**common["analysis"], **analysis},
                        "shadow": {**shadow, "max_wait_seconds": 120},
                        "canary": {**canary, "max_wait_seconds": 120}}}))
    return folder / "params.yaml", folder / "judged.yaml"


@dataclass(frozen=True)
class ExpertRules:
    """The graders' rules on the first factory batch, and its photos with the experts' grades:
    the experts grade by brightness alone (4 grades); the champion adds one to the reddest
    quarter of cards, a worse challenger to the reddest three quarters (so it is within one
    grade of the champion on every photo), a better one grades as the experts do. The rules
    replace the answer of the `untrained` graph."""

    untrained: Path
    experts: GradeRule
    champion: GradeRule
    worse: GradeRule
    photos: list[Photo]

    @classmethod
    def of(cls, batch: Path, untrained: Path) -> ExpertRules:
        paths = sorted((batch / "images").glob("*.jpg"))
        pixels = [prepare_photo(cv2.imread(str(path)), True, SIZE).pixels.astype(np.float32)
                  for path in paths]
        brightness = [float(p.mean()) for p in pixels]
        tint = [float(p[..., 0].mean() - p.mean()) for p in pixels]
        edges = tuple(_between(brightness, share) for share in (0.25, 0.5, 0.75))
        experts = GradeRule(edges)
        grader = OnnxGrader(rule_grader_graph(untrained, untrained.with_name("experts.onnx"),
                                              experts), GRADER, 0)
        grades = [answer.grade for answer in grader.grade([grader.prepare(cv2.imread(str(p)))
                                                           for p in paths])]
        return cls(untrained, experts, GradeRule(edges, _between(tint, 0.75)),
                   GradeRule(edges, _between(tint, 0.25)),
                   [Photo(path, grade) for path, grade in zip(paths, grades, strict=True)])


def _between(values: list[float], share: float) -> float:
    """A threshold halfway between the value at `share` of the sorted values and the next, so
    no photo sits on it."""
    ordered = sorted(values)
    at = int(share * len(ordered))
    return (ordered[at - 1] + ordered[at]) / 2


def _register(graph: Path) -> int:
    """A candidate card-grader version whose exported graph is `graph`, with the tags a passing
    evaluation writes (gates, the graph's URI and checksum)."""
    settings = load_settings()
    uri = str(settings.mlflow_tracking_uri)
    run = TrackedRun.open(uri, str(settings.mlflow_artifact_root), GRADER, "exported graph")
    width, height = read_metadata(graph)["spec"]["size"]
    example = {"pixels": np.zeros((1, height, width, 3), np.float32),
               "geometry": np.zeros((1, 4), np.float32)}
    graph_uri = run.log_onnx_model(graph, "onnx", example)
    tags = {"onnx.model_uri": graph_uri, "onnx.sha256": sha256(graph), "gate.kappa": "pass",
            "gate.ece": "pass", "gate.coverage": "pass", "gate.parity_onnx_fp32": "pass"}
    return register_candidate(uri, GRADER, graph_uri, run.run_id, data_version="d-test",
                              git_sha="test", extra_tags=tags).version


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory,
          factory_batches: dict[str, Path]) -> ExpertRules:
    folder = tmp_path_factory.mktemp("graphs")
    untrained = untrained_grader_graph(folder / "untrained.onnx", SIZE)
    return ExpertRules.of(factory_batches["first"], untrained)


@pytest.fixture(scope="module")
def release_home(tmp_path_factory: pytest.TempPathFactory, prefect_server: None,
                 rules: ExpertRules) -> Iterator[Path]:
    """A home whose card-grader version 1, the champion rule's grader, is champion; its graph
    (grader.onnx) is kept for more versions."""
    root = tmp_path_factory.mktemp("release")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("os.environ", dict(os.environ))
        load_settings(home=root / "home").activate()
        _release_params(root)
        assert _register(rule_grader_graph(rules.untrained, root / "grader.onnx",
                                           rules.champion)) == 1
        result = CliRunner().invoke(app, ["promote", "--model", GRADER, "--version", "1",
                                          "--first", "--json"])
        assert result.exit_code == 0, result.output
        yield root / "home"


@pytest.fixture(autouse=True)
def _in_release_home(_no_gradeline_env: None, release_home: Path) -> None:
    """Every test of the module reads and writes the release home (after the suite-wide
    fixture cleared GRADELINE_* variables)."""
    load_settings(home=release_home).activate()


@pytest.fixture(scope="module")
def keys(release_home: Path) -> dict[str, str]:
    """A key per role, made as an operator would: `gradeline keys create --out FILE`."""
    gradeline = shutil.which("gradeline", path=str(Path(sys.executable).parent))
    tokens = {}
    for name, role in (("client", "client"), ("expert", "expert"), ("operator", "operator"),
                       ("reviewer", "expert")):
        out = release_home.parent / f"{name}.key"
        subprocess.run([gradeline, "--home", str(release_home), "keys", "create", "--name",
                        f"e2e {name}", "--role", role, "--out", str(out)], check=True)
        tokens[name] = out.read_text().strip()
    return tokens


@pytest.fixture(scope="module")
def service(release_home: Path, keys: dict[str, str]) -> Iterator[str]:
    """`gradeline serve` as its own process on a free loopback port; its URL."""
    port = free_port()
    params = release_home.parent / "params.yaml"
    gradeline = shutil.which("gradeline", path=str(Path(sys.executable).parent))
    process = subprocess.Popen([gradeline, "--home", str(release_home), "serve", "--port",
                                str(port), "--params", str(params)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/readyz", lambda: process.poll() is None, timeout=120)
        yield url
        assert process.poll() is None, "the service exited during the tests"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _in_background(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `target` in a thread that sees this thread's context (Prefect's test server)."""
    result: list[object] = []
    context = contextvars.copy_context()
    thread = threading.Thread(target=lambda: result.append(context.run(target)), daemon=True)
    thread.start()
    return thread, result


def _promote(version: int, params: Path) -> Callable[[], object]:
    return lambda: CliRunner().invoke(app, ["promote", "--model", GRADER, "--version",
                                            str(version), "--params", str(params), "--json",
                                            "--approval-timeout", "300"])


def _stage(version: int) -> str | None:
    return get_version(str(load_settings().mlflow_tracking_uri), GRADER, version).stage


def _wait_for(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Poll `condition` for up to `timeout` seconds; the failure says `what()` was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what()}"
        time.sleep(0.5)


@pytest.fixture()
def mlflow_ui(release_home: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The MLflow UI (a real `mlflow server` with the basic-auth app, as `gradeline up` runs
    it) on the home's store, on a free loopback port; its URL and reviewer ada's password."""
    settings = load_settings(home=release_home)
    folder = tmp_path / "mlflow-auth"
    with mlflow_server(str(settings.mlflow_tracking_uri), Path(str(settings.mlflow_artifact_root)),
                       tmp_path / "mlflow-server.log", folder) as url:
        yield url, add_reviewer(url, admin_password(folder), "ada", [GRADER])


def test_a_challenger_approved_in_the_mlflow_ui_becomes_champion_without_a_restart(
        release_home: Path, service: str, keys: dict[str, str], mlflow_ui: tuple[str, str],
        factory_batches: dict[str, Path],
        tmp_path: Path) -> None:
    params = release_home.parent / "params.yaml"
    challenger = _register(release_home.parent / "grader.onnx")
    photos = [Photo(path) for path in sorted((factory_batches["first"] / "images").glob("*.jpg"))]

    with Traffic(service, photos, "approval", TrafficKeys(keys["client"], keys["expert"])
                 ) as traffic:
        thread, outcome = _in_background(_promote(challenger, params))
        _wait_for(lambda: _stage(challenger) == "awaiting_approval" or not thread.is_alive(),
                  300, lambda: "the canary to finish")
        assert _stage(challenger) == "awaiting_approval", outcome and outcome[0].output
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            try:
                ui_url, password = mlflow_ui
                page = browser.new_page(viewport={"width": 1400, "height": 900},
                                        http_credentials={"username": "ada",
                                                          "password": password})
                set_version_tags_in_ui(page, ui_url, GRADER, challenger,
                                       {"approved_by": "ada", "approval": "approved"})
            finally:
                browser.close()
        thread.join(timeout=120)
        result = outcome[0]
        assert result.exit_code == 0, result.output
        crowned = len(traffic.figures.answers)
        _wait_for(lambda: any(a["version"] == challenger and a["role"] == "champion"
                              for a in traffic.figures.answers[crowned:]), 30,
                  lambda: f"the new champion's answers ({len(traffic.figures.answers) - crowned} "
                          f"answers since, failures: {traffic.figures.failures[-3:]})")

    report = json.loads(result.stdout)
    assert report["stage"] == "champion" and report["conclusion"]["approved_by"] == "ada"
    assert [s["step"] for s in report["steps"]] == ["shadow", "canary_25", "canary_50"]
    assert all(s["passed"] and s["figures"]["challenger_requests"] >= 8 for s in report["steps"])
    assert not traffic.figures.failures
    roles = {(a["version"], a["role"]) for a in traffic.figures.answers}
    assert {(1, "champion"), (challenger, "challenger"), (challenger, "champion")} <= roles
    assert httpx.get(f"{service}/readyz").json()["loaded"]["champion"]["version"] == challenger

    version = get_version(str(load_settings().mlflow_tracking_uri), GRADER, challenger)
    assert version.tags["release.canary_50.agreement_within_one"] == "1"
    assert get_version(str(load_settings().mlflow_tracking_uri), GRADER, 1).stage == "retired"
    audit = [(e.version, e.to_stage) for e in AuditLog(
        load_settings(home=release_home).audit_log).read(GRADER) if e.to_stage]
    assert [stage for v, stage in audit if v == challenger] == [
        "shadow", "canary", "awaiting_approval", "champion"]
    metrics = httpx.get(f"{service}/metrics",
                        headers={"Authorization": f"Bearer {keys['operator']}"}).text
    assert "gradeline_shadow_agreement" in metrics and "gradeline_request_seconds" in metrics


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_a_challenger_that_errs_is_rolled_back_and_on_call_is_told(
        release_home: Path, service: str, keys: dict[str, str],
        factory_batches: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    params = release_home.parent / "params.yaml"
    photos = [Photo(path) for path in sorted((factory_batches["first"] / "images").glob("*.jpg"))]
    # The graph sees the rectified card: split the photos at the median of what it sees.
    brightness = sorted(float(prepare_photo(cv2.imread(str(p.path)), True, SIZE).pixels.mean())
                        for p in photos)
    erring = _register(erring_grader_graph(release_home.parent / "grader.onnx",
                                           tmp_path / "model.onnx",
                                           brightness[len(brightness) // 2]))
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    monkeypatch.setenv("GRADELINE_ALERT_URL", f"json://127.0.0.1:{receiver.server_port}/")
    champion = httpx.get(f"{service}/readyz").json()["loaded"]["champion"]["version"]

    try:
        with Traffic(service, photos, "erring", TrafficKeys(keys["client"])) as traffic:
            thread, outcome = _in_background(_promote(erring, params))
            thread.join(timeout=240)
    finally:
        receiver.shutdown()

    result = outcome[0]
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["stage"] == "rolled_back" == _stage(erring)
    failed = report["steps"][-1]
    assert not failed["passed"] and failed["figures"]["challenger_error_rate"] > 0.2
    assert any("error rate" in failure for failure in failed["failures"])
    assert not traffic.figures.failures  # the challenger's errors never reached a client
    assert {a["version"] for a in traffic.figures.answers[-5:]} == {champion}
    assert "challenger" not in httpx.get(f"{service}/readyz").json()["loaded"]
    alert = _Receiver.received[-1]
    assert f"version {erring} rolled back" in alert["title"] and "error rate" in alert["message"]


def _release_with_experts(service: str, keys: dict[str, str], rules: ExpertRules,
                          challenger: int, prefix: str,
                          decide: Callable[[], object] | None = None) -> tuple[dict, Traffic]:
    """`gradeline promote` of `challenger` on judged.yaml's steps under traffic whose experts
    grade every photo; `decide` runs once it awaits approval. The report and the traffic."""
    judged = load_settings().home.parent / "judged.yaml"
    with Traffic(service, rules.photos, prefix, TrafficKeys(keys["client"], keys["expert"])
                 ) as traffic:
        thread, outcome = _in_background(_promote(challenger, judged))
        if decide is not None:
            _wait_for(lambda: _stage(challenger) == "awaiting_approval" or not thread.is_alive(),
                      300, lambda: "the canary to finish")
            assert _stage(challenger) == "awaiting_approval", outcome and outcome[0].output
            decide()
        thread.join(timeout=300)
    assert not thread.is_alive() and not traffic.figures.failures
    return json.loads(outcome[0].stdout), traffic


def _cli_environment() -> dict[str, str]:
    """The environment of a `gradeline` command on this module's Prefect server."""
    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


def test_a_challenger_worse_against_the_experts_is_rolled_back_on_kappa_though_it_agrees(
        service: str, keys: dict[str, str], rules: ExpertRules, tmp_path: Path) -> None:
    worse = _register(rule_grader_graph(rules.untrained, tmp_path / "worse.onnx", rules.worse))

    report, _ = _release_with_experts(service, keys, rules, worse, "worse")

    assert report["stage"] == "rolled_back" == _stage(worse)
    [shadow] = report["steps"]
    figures = shadow["figures"]
    # The agreement proxy alone would have passed it: every grade is within one.
    assert figures["agreement_within_one"] == 1.0 and figures["agreement_exact"] < 0.8
    assert figures["kappa_verdict"] == "fail" and figures["kappa_items"] >= 30
    assert figures["kappa_high"] < -0.03 and figures["challenger_kappa"] < figures[
        "champion_kappa"]
    assert [f for f in shadow["failures"] if "worse by more than 0.03" in f] == \
        shadow["failures"]
    tags = get_version(str(load_settings().mlflow_tracking_uri), GRADER, worse).tags
    assert tags["release.shadow.kappa_verdict"] == "fail"
    judged = [e for e in AuditLog(load_settings().audit_log).read(GRADER)
              if e.version == worse and e.action == "step_judged"]
    assert judged[-1].details["figures"]["kappa_verdict"] == "fail"
    assert "worse by more than 0.03" in judged[-1].reason


def test_a_challenger_better_against_the_experts_passes_and_a_reviewer_crowns_it(
        service: str, keys: dict[str, str], rules: ExpertRules, tmp_path: Path) -> None:
    better = _register(rule_grader_graph(rules.untrained, tmp_path / "better.onnx",
                                         rules.experts))
    approve = [shutil.which("gradeline", path=str(Path(sys.executable).parent)), "--home",
               str(load_settings().home), "approve", "--model", GRADER, "--version",
               str(better), "--by", "ada", "--reason", "kappa up on the experts' grades"]

    report, _ = _release_with_experts(service, keys, rules, better, "better",
                                      decide=lambda: subprocess.run(approve, check=True,
                                                                    env=_cli_environment()))

    assert report["stage"] == "champion" == _stage(better)
    assert [s["step"] for s in report["steps"]] == ["shadow", "canary_50"]
    for step in report["steps"]:
        figures = step["figures"]
        assert figures["kappa_verdict"] == "pass" and figures["kappa_items"] >= 30, step
        assert figures["kappa_low"] > -0.03 and figures["challenger_kappa"] == 1.0
    _wait_for(lambda: httpx.get(f"{service}/readyz").json()["loaded"]["champion"]["version"]
              == better, timeout=15, what=lambda: f"the service to serve version {better}")


def test_on_call_rolls_back_through_the_cli_and_the_service_follows_within_its_refresh(
        release_home: Path, service: str) -> None:
    settings = load_settings()
    aliases = httpx.get(f"{service}/readyz").json()["loaded"]
    champion = aliases["champion"]["version"]
    previous = get_version(str(settings.mlflow_tracking_uri), GRADER, champion)
    audit = AuditLog(settings.audit_log)

    result = CliRunner().invoke(app, ["rollback", "--model", GRADER, "--by", "bob",
                                      "--reason", "p99 doubled after the release", "--json"])

    assert result.exit_code == 0, result.output
    moved = json.loads(result.stdout)
    assert moved["rolled_back"] == champion and _stage(champion) == "rolled_back"
    restored = moved["champion"]
    written = [event for event in audit.read(GRADER)
               if event.reason == "p99 doubled after the release"]
    assert {event.action for event in written} >= {"rollback"}
    assert {event.actor for event in written} == {"bob"}
    alert = json.loads((settings.home / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["subject"] == f"{GRADER} rolled back to version {restored}"
    assert "bob: p99 doubled after the release" in alert["body"]
    _wait_for(lambda: httpx.get(f"{service}/readyz").json()["loaded"]["champion"]["version"]
              == restored, timeout=15, what=lambda: f"the service to serve version {restored}")
    assert previous.stage == "champion"

    again = CliRunner().invoke(app, ["rollback", "--model", GRADER, "--by", "bob"])
    assert again.exit_code == 2 and "error:" in again.output  # nothing left to roll back to


def _wait_on_page(page: Page, condition: str, argument: object) -> None:
    """Wait up to a minute for `condition` (a JS function of `argument`) on the page; a
    timeout says what the page showed the expert."""
    try:
        page.wait_for_function(condition, arg=argument, timeout=60_000)
    except PlaywrightTimeout:
        pytest.fail(f"the page never got to {condition}; it says: "
                    f"{page.inner_text('main')!r} / {page.inner_text('header')!r}")


def test_an_expert_grades_three_photos_on_the_review_page_and_sees_the_answer_only_after(
        release_home: Path, service: str, keys: dict[str, str]) -> None:
    shown = []
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{service}/review")
            page.fill("#key", keys["reviewer"])
            page.click("#sign-in")
            for _ in range(3):
                previous = shown[-1][0] if shown else None
                _wait_on_page(page, "id => item && item.request_id !== id && !graded && !busy",
                              previous)
                page.wait_for_selector("#grade-form input:focus")
                assert page.is_visible("#photo") and not page.is_visible("#model-answer")
                assert page.inner_text("#model-answer") == ""  # nothing to anchor on
                request_id = page.evaluate("item.request_id")
                page.keyboard.type("78690")  # grade 7; centering 8, corners 6, edges 9, surface 10
                page.keyboard.press("Enter")
                _wait_on_page(page, "() => $('model-answer').textContent !== '' && !busy", None)
                shown.append((request_id, page.inner_text("#model-answer")))
                page.keyboard.press("Enter")  # the next photo
            _wait_on_page(page, "id => item && item.request_id !== id", shown[-1][0])
            agreement = page.inner_text("#agreement")
        finally:
            browser.close()

    assert len({request_id for request_id, _ in shown}) == 3
    assert all("card-grader v" in text and "you: 7" in text for _, text in shown), shown
    assert agreement  # the expert's own standing against the panel
    panel = PredictionLog(str(load_settings().prediction_log_uri)).expert_panel()
    mine = panel[panel["grader"] == "e2e reviewer"]
    assert sorted(mine["request_id"]) == sorted(request_id for request_id, _ in shown)
    assert mine["subgrades"].tolist() == [{"centering": 8, "corners": 6, "edges": 9,
                                           "surface": 10}] * 3
