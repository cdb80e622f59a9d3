"""`gradeline demo`: the platform's main job, the whole lifecycle, on the embedded defaults.

The Prefect flow `demo` tells the story of one card grader in simulated days:

- day 0: a studio batch comes out of the card factory and is ingested (a repeat changes
  nothing); a grader is trained, evaluated against the expert panel and made the first champion,
  and `gradeline serve` starts on loopback, with API keys made for the demo's client and its
  expert panel;
- days 1 to 3: studio traffic, with experts' grades sent back for each photo; each day the
  `monitor` flow compares the day with the champion's reference and finds nothing;
- day 4: a new camera (the factory's `--camera`) shifts the photos; monitoring detects the drift
  and alerts on-call (`<home>/alerts.jsonl`, or the configured channel), and emits the event on
  which the `retrain-on-drift` deployment triggers;
- the expert panel works the review queue through the review API (each expert with their own
  key, grading what the factory says they would), and the reviewed photos with a consensus are
  exported as a labeled batch into the inbox (`export-reviews`); the `retrain` flow (run here as
  the trigger would run it) ingests it, trains, evaluates, and promotes the candidate through
  shadow and canary on live traffic; in demo mode the demo itself gives the reviewer's
  approval, and says so; the service answers with the new champion without a restart;
- day 5: the new camera's traffic, and the drift report is clean again (the recovery is
  announced).

It prints a timeline with each step's figures and files; the CLI exits 1 when a step fails.
The `demo:` section of params.yaml sets its sizes, and `overrides` laid over the other sections
for every flow it runs, each with its reason (`why`), listed first in the timeline. Import this
module only after `settings.activate()`: Prefect reads PREFECT_HOME once.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import cv2
from prefect import flow, task

from components.cards import contact_sheet, synthesize_batch
from components.cards.panel import PANEL, panel_agreement
from components.demo import (
    DEMO_REVIEWER,
    NOT_IN_DEMO,
    DemoFailed,
    DemoReport,
    DemoStep,
    demo_params_file,
    story_summary,
)
from components.release.registry import releases_of
from components.serving.keys import KeyStore, Role
from components.serving.loopback import serve_process, served_champion
from components.serving.traffic import (
    Photo,
    Traffic,
    TrafficKeys,
    panel_works_queue,
    photos_of_batch,
)
from components.settings import GradelineSettings, find_project_root, load_settings
from flows.evaluate import evaluate
from flows.export_reviews import export_reviews
from flows.ingest import ingest
from flows.monitor import monitor
from flows.release import conclude_release
from flows.retrain import retrain
from flows.train import train
from model_registry.names import APPROVED, GRADER, STAGE_CANDIDATE

DEMO_DATASET = "demo-cards"
Figures = tuple[dict[str, object], list[str]]


@task
def synthesize(out: Path, n: int, seed: int, camera: str) -> Figures:
    """A factory batch."""
    summary = synthesize_batch(out, n=n, seed=seed, camera=camera)
    return {"camera": camera, "cards": summary.count, "cards_per_s": summary.cards_per_s,
            "grades": summary.grade_histogram}, [str(out / "manifest.csv")]


@task
def expert_agreement(batch: Path) -> Figures:
    """How the simulated expert panel agrees on a batch."""
    with (batch / "manifest.csv").open() as handle:
        grades = [{g.name: int(row[g.name]) for g in PANEL} for row in csv.DictReader(handle)]
    agreement = panel_agreement(grades)
    return {"all_agree": agreement.all_agree, "exact": agreement.exact_with_consensus,
            "spread_over_one": agreement.spread_over_one}, []


@task
def draw_sheets(batches: dict[str, Path], reports: Path) -> Figures:
    """One contact sheet PNG per batch."""
    reports.mkdir(parents=True, exist_ok=True)
    files = []
    for name, batch in batches.items():
        cv2.imwrite(str(reports / f"{name}.png"), contact_sheet(batch, count=8))
        files.append(str(reports / f"{name}.png"))
    return {"sheets": len(files)}, files


def ingest_batch(batch: Path) -> Figures:
    """The ingest flow (a subflow run) on a batch, into the demo's own dataset."""
    summary = ingest(str(batch), task="grade", dataset=DEMO_DATASET)
    figures = {key: summary[key] for key in ("status", "received", "accepted", "quarantined",
                                             "data_version", "images_per_s")}
    return figures, [summary["data_docs"]] if summary["data_docs"] else []


def train_grader(params_file: str) -> Figures:
    """The train flow (a subflow run) on the demo's current data version."""
    summary = train(task="grade", dataset=DEMO_DATASET, profile="fast", params_file=params_file)
    figures = {key: summary[key] for key in ("model_name", "version", "epochs_run",
                                             "images_per_s")}
    figures.update({key.removeprefix("val_"): summary["metrics"][key]
                    for key in ("val_qwk", "val_exact", "val_within_one")})
    return {**figures, "mlflow_run": summary["run_id"]}, []


def evaluate_grader(params_file: str) -> Figures:
    """The evaluate flow (a subflow run) on the grader just registered; a day-0 grader that
    fails its gates ends the story, since there would be no champion to serve."""
    summary = evaluate(model=GRADER, params_file=params_file)
    failed = [gate["name"] for gate in summary["gates"] if not gate["passed"]]
    figures = {"version": summary["version"], "kappa": round(summary["kappa"], 3),
               "human_bar": round(summary["human_bar"], 3), "verdict": summary["verdict"],
               "ece": f"{summary['ece_before']:.3f}->{summary['ece_after']:.3f}",
               "coverage": round(summary["coverage"], 3),
               "set_size": round(summary["mean_set_size"], 2),
               "parity": f"{summary['parity'][0]['max_abs_diff']:.1e}",
               "gates_failed": ",".join(failed) or "none",
               "gates_from": "demo.overrides (a 2-minute CPU grader cannot reach the experts)",
               "stage": summary["stage"]}
    if summary["stage"] != STAGE_CANDIDATE:
        raise DemoFailed(f"the day-0 grader failed its gates ({', '.join(failed)}): "
                         f"see {summary['report_file']}")
    return figures, [summary["report_file"]]


def crown_first(settings: GradelineSettings, version: int) -> Figures:
    """The first champion of a fresh install: with no champion to compare with, there is no
    release (`crown(first=True)` refuses once a champion exists)."""
    aliases = releases_of(settings).crown(GRADER, version, "gradeline demo",
                                          "day 0: the first champion", first=True)
    return {"champion": aliases["champion"]}, [str(settings.audit_log)]


@contextmanager
def grading_service(settings: GradelineSettings, params_file: Path,
                    log: Path) -> Iterator[tuple[str, TrafficKeys]]:
    """`gradeline serve` of the demo's home, and new keys of a client and of each expert of the
    panel; its URL and those keys until the block ends."""
    store = KeyStore(settings.keys_file)
    keys = TrafficKeys(client=store.create("demo client", Role.CLIENT)[1],
                       panel=tuple(store.create(f"demo panel {grader.name}", Role.EXPERT)[1]
                                   for grader in PANEL))
    with serve_process(settings.home, params_file, log) as url:
        yield url, keys


def serve_day(url: str, keys: TrafficKeys, photos: Path, camera: str, seed: int, count: int,
              clients: int, served: dict[str, Photo], with_feedback: bool) -> Figures:
    """A day of traffic: `count` new cards photographed by `camera` (kept in `photos`), each
    sent once, with the experts' grades sent back unless the queue is to ask for them; each
    answered photo joins `served`."""
    synthesize_batch(photos, n=count, seed=seed, camera=camera)
    traffic = Traffic(url, photos_of_batch(photos), photos.name, keys, clients, with_feedback)
    figures = traffic.run(count)
    if figures.failures:
        raise DemoFailed(f"{len(figures.failures)} requests failed: {figures.failures[:3]}")
    served.update(traffic.served)
    return figures.as_dict(), []


def work_the_queue(url: str, keys: TrafficKeys, served: dict[str, Photo]) -> Figures:
    """The panel grades what the review queue hands each of them, all at once."""
    graded = panel_works_queue(url, keys.panel, served)
    return {"grades_given": sum(graded),
            "by_expert": dict(zip((g.name for g in PANEL), graded, strict=True))}, []


def export_reviewed(since: datetime, params_file: str) -> Figures:
    """The export-reviews flow (a subflow run) on the photos served since `since`."""
    summary = export_reviews(GRADER, since=since.isoformat(), params_file=params_file)
    if summary["status"] != "exported":
        raise DemoFailed(f"only {summary['items']} reviewed photos were ready to export")
    return {"batch": Path(str(summary["folder"])).name, "items": summary["items"],
            "test_items": summary["test_items"], "kappa": summary["answered_qwk"],
            "left_out": summary["skipped"] or "none"}, [f"{summary['folder']}/manifest.csv"]


def monitor_day(since: datetime, until: datetime, params_file: str, expect: str) -> Figures:
    """The monitor flow (a subflow run) on one simulated day; the story needs `expect`."""
    summary = monitor(GRADER, since=since.isoformat(), until=until.isoformat(),
                      params_file=params_file)
    figures = {"status": summary["status"], "photos": summary["window_size"],
               "version": summary["version"], "incident": summary["incident"]["action"]}
    for signal in summary["signals"]:
        if signal["score"] is not None and (signal["drifted"] or signal["name"] in
                                            ("embeddings", "kappa", "image_properties")):
            figures[signal["name"]] = float(f"{signal['score']:.3g}")  # p-values are tiny
    figures.update({name: summary[key] for name, key in (
        ("alert", "alert"), ("queued_for_review", "queued_for_review"),
        ("parted_most", "discrepancy_worst")) if summary[key]})
    files = [summary[key] for key in ("report", "discrepancy", "contact_sheet") if summary[key]]
    if summary["status"] != expect:
        raise DemoFailed(f"monitoring found {summary['status']} where the story expects "
                         f"{expect}: {summary['headline']} (see {summary['report']})")
    return figures, files


def retrain_on_drift(settings: GradelineSettings, url: str, keys: TrafficKeys, photos: Path,
                     batch: Path, params_file: str) -> Figures:
    """The retrain flow, as the drift event's trigger starts it, while live traffic from the
    new camera gives the release its shadow and canary requests. The traffic starts once there
    is a challenger to watch: on a 2-core machine, requests during training only slow it."""
    releases = releases_of(settings)
    with Traffic(url, photos_of_batch(photos), "release", keys, clients=2,
                 start_when=lambda: releases.version_for(GRADER, "challenger") is not None
                 ) as traffic:
        summary = retrain(GRADER, dataset=DEMO_DATASET, source=str(batch),
                          reason="drift on day 4: the reviewed photos", params_file=params_file)
    steps = [step.as_dict() for step in summary.get("release", {}).get("steps", [])]
    if summary["status"] != "awaiting_approval":
        failures = [f"{step['step']}: {'; '.join(step['failures'])}" for step in steps
                    if not step["passed"]]
        raise DemoFailed(f"retraining ended {summary['status']} (version "
                         f"{summary.get('version')}): {'; '.join(failures) or summary}")
    figures: dict[str, object] = {"version": summary["version"],
                                  "kappa": round(summary["kappa"], 3),
                                  "gates": "all passed", "stage": summary["status"]}
    for step in steps:
        figures[step["step"]] = (f"pass (kappa {step['figures']['challenger_kappa']} vs "
                                 f"{step['figures']['champion_kappa']}, "
                                 f"{step['figures']['challenger_requests']} requests)"
                                 if step["passed"] else "FAIL")
    figures["release_requests"] = traffic.figures.sent
    return figures, [summary["report"]]


def approve_in_demo_mode(settings: GradelineSettings, url: str, params_file: str) -> Figures:
    """The reviewer's approval, given by the demo itself (demo mode), then the new champion."""
    releases = releases_of(settings)
    challenger = releases.version_for(GRADER, "challenger")
    if challenger is None:
        raise DemoFailed("no challenger awaits approval")
    releases.decide(GRADER, challenger.version, APPROVED, DEMO_REVIEWER,
                    "demo mode: approved by the demo")
    concluded = conclude_release(GRADER, challenger.version, params_file)
    served = served_champion(url, challenger.version)
    return {"approved_by": "the demo itself (demo mode)", "stage": concluded["stage"],
            "champion": served, "previous": concluded["aliases"]["previous"]}, \
        [str(settings.audit_log)]


@flow(name="demo")
def demo_flow(settings: GradelineSettings, params_source: Path,
              verbose: bool = True) -> list[DemoStep]:
    """The lifecycle in simulated days (see the module docstring)."""
    workdir = settings.data_dir / "demo"
    params, params_file, changes = demo_params_file(params_source, workdir / "params.yaml")
    flows_params = str(params_file)
    studio, served = workdir / "batch-studio", {}
    steps: list[DemoStep] = []

    def record(done: DemoStep) -> None:
        steps.append(done)
        if verbose:
            print(done.line(len(steps)), flush=True)

    def step(name: str, run: Callable[[], Figures]) -> None:
        started = time.perf_counter()
        figures, files = run()
        record(DemoStep(name, round(time.perf_counter() - started, 2), figures, files))

    record(DemoStep("day 0: settings the demo changes (demo.overrides, demo.why)", 0.0,
                    {"settings": sum(len(change.settings) for change in changes)},
                    [str(params_file)], [change.line() for change in changes]))
    step("day 0: synthesize studio batch",
         lambda: synthesize(studio, params.studio_cards, 1, "studio"))
    step("day 0: expert panel agreement", lambda: expert_agreement(studio))
    step("day 0: contact sheet", lambda: draw_sheets({"studio": studio},
                                                     settings.reports_dir / "demo"))
    step("day 0: ingest studio batch", lambda: ingest_batch(studio))
    step("day 0: ingest studio batch again", lambda: ingest_batch(studio))
    step("day 0: train card grader", lambda: train_grader(flows_params))
    step("day 0: evaluate card grader", lambda: evaluate_grader(flows_params))
    step("day 0: first champion", lambda: crown_first(settings, steps[-1].figures["version"]))
    with grading_service(settings, params_file, workdir / "serve.log") as (url, keys):

        def day(number: int, camera: str, expect: str, count: int = params.traffic_per_day,
                with_feedback: bool = True) -> datetime:
            photos, since = workdir / f"traffic-day{number}", datetime.now(UTC)
            step(f"day {number}: {camera} traffic", lambda: serve_day(
                url, keys, photos, camera, 10 + number, count, params.clients, served,
                with_feedback))
            until = datetime.now(UTC)
            step(f"day {number}: monitor", lambda: monitor_day(since, until, flows_params,
                                                              expect))
            return since

        for number in range(1, params.quiet_days + 1):
            day(number, "studio", "ok")
        change = params.quiet_days + 1
        since = day(change, params.new_camera, "drift", params.new_camera_cards,
                    with_feedback=False)
        step(f"day {change}: the expert panel works the review queue (/v1/review/next)",
             lambda: work_the_queue(url, keys, served))
        step(f"day {change}: reviewed photos become a labeled batch in the inbox",
             lambda: export_reviewed(since, flows_params))
        batch = settings.inbox_dir / str(steps[-1].figures["batch"])
        step(f"day {change}: retrain, as the drift event triggers it (ingest, train, evaluate, "
             "release)", lambda: retrain_on_drift(settings, url, keys,
                                                  workdir / f"traffic-day{change}", batch,
                                                  flows_params))
        step(f"day {change}: approval", lambda: approve_in_demo_mode(settings, url,
                                                                         flows_params))
        day(change + 1, params.new_camera, "ok")
    return steps


def run_demo(settings: GradelineSettings, echo: Callable[[str], None] | None = print,
             params_file: Path | None = None) -> DemoReport:
    """Run the demo flow in its own home, `<home>/demo`, rebuilt each run (the story starts
    on day 0, with no models, data, traffic or incidents, and never touches the home's real
    state), and collect its report (never raises)."""
    demo_home = settings.home / "demo"
    shutil.rmtree(demo_home, ignore_errors=True)
    # Prefect keeps its own home: it was configured once, when flows were imported.
    settings = load_settings(home=demo_home, prefect_home=settings.prefect_home).activate()
    report = DemoReport(home=str(settings.home))
    started = time.perf_counter()
    try:
        report.steps = demo_flow(settings, params_file or find_project_root() / "params.yaml",
                                 verbose=echo is not None)
    except Exception as error:  # noqa: BLE001 - the demo reports any failure as its outcome
        report.error = f"{type(error).__name__}: {error}"
    if echo and report.ok:
        echo(story_summary(report.steps))
    if echo:
        echo("not in the demo: " + "; ".join(NOT_IN_DEMO))
        echo(f"demo {'finished' if report.ok else 'FAILED: ' + str(report.error)} in "
             f"{time.perf_counter() - started:.0f}s; alerts: {settings.home / 'alerts.jsonl'}; "
             f"drift history: evidently ui --workspace {settings.evidently_workspace}")
    return report
