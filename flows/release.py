"""The Prefect flows `promote`, `conclude-release` and `conclude-releases`: a candidate that
passed its gates becomes the challenger, is watched in shadow and then in canary steps on live
traffic, and waits for a reviewer; an approved one becomes champion in one alias move.

    promote("card-grader", 4)           # shadow -> canary 5/25/50% -> awaiting_approval
    conclude_release("card-grader", 4)  # approved -> champion (previous = old); rejected -> stop
    conclude_releases()                 # every challenger with a decision (scheduled)

The serving process does the routing: it reads the `challenger` alias and its `canary_share` tag
on every refresh, and logs both models' answers to the prediction log. These flows only move the
registry state and judge what the log shows. Waiting for the reviewer is not a flow run:
`promote` ends at `awaiting_approval`, and `conclude-release` acts on the decision when it is
there (`gradeline promote` polls for it with `wait_for_decision`; the `conclude-releases`
deployment runs every 5 minutes), so no worker sits idle for hours.
A failed analysis rolls the challenger back at once and tells on-call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task
from prefect.logging import get_run_logger

from components.oncall import tell_on_call
from components.params import load_params
from components.predlog import PredictionLog
from components.release.analysis import PromoteParams, StepVerdict, analyse_step
from components.release.comparison import compare_roles
from components.release.registry import releases_of
from components.settings import GradelineSettings, load_settings
from model_registry import ReleaseError, Releases, VersionNotFound
from model_registry.locks import ReleaseLocked
from model_registry.names import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    APPROVED,
    DETECTOR,
    GRADER,
    STAGE_AWAITING_APPROVAL,
    STAGE_CANARY,
    STAGE_CHAMPION,
    STAGE_REJECTED,
    STAGE_ROLLED_BACK,
    STAGE_SHADOW,
)

ACTOR = "promote flow"


@dataclass(frozen=True)
class Watch:
    """One step to watch: which versions, and how many challenger requests judge it."""

    step: str
    model: str
    champion: int
    challenger: int
    minimum: int
    max_wait_seconds: float
    poll_seconds: float


@task(name="watch-step")
def watch_step(settings: GradelineSettings, watch: Watch, params: PromoteParams) -> StepVerdict:
    """Wait until the challenger has scored `minimum` requests of the step, then judge, and
    keep judging as expert grades arrive while the kappa test is unclear; at the step's time
    limit, judge what there is."""
    log = PredictionLog(str(settings.prediction_log_uri))
    since = datetime.now(UTC)
    deadline = time.monotonic() + watch.max_wait_seconds
    logger = get_run_logger()
    while True:
        final = time.monotonic() >= deadline
        comparison = compare_roles(log, watch.model, watch.champion, watch.challenger, since)
        if comparison.challenger_requests >= watch.minimum or final:
            verdict = analyse_step(watch.step, comparison, params.analysis, watch.minimum,
                                   final)
            if not verdict.pending:
                return verdict
            logger.info("%s: %s; waiting for more", watch.step, verdict.waiting_for)
        else:
            logger.info("%s: %d of %d challenger requests", watch.step,
                        comparison.challenger_requests, watch.minimum)
        time.sleep(watch.poll_seconds)


def _judged(releases: Releases, settings: GradelineSettings, watch: Watch,
            verdict: StepVerdict) -> bool:
    """Record the step's figures on the version; roll it back and tell on-call if it failed."""
    figures = {key: value for key, value in verdict.figures.items() if value is not None}
    reason = f"{watch.step}: " + ("; ".join(verdict.failures) or "passed")
    releases.record_release_figures(watch.model, watch.challenger, watch.step, figures, ACTOR,
                                    reason)
    if verdict.passed:
        return True
    releases.roll_back_challenger(watch.model, watch.challenger, ACTOR, reason, figures)
    tell_on_call(settings, f"{watch.model} version {watch.challenger} rolled back at "
                           f"{watch.step}",
                 f"{reason}\nchampion version {watch.champion} keeps answering.\n"
                 f"figures: {figures}")
    return False


@flow(name="promote")
def promote(model: str, version: int, params_file: str | None = None) -> dict[str, object]:
    """Shadow, then canary steps, then awaiting_approval; stops with `rolled_back` at the first
    failed analysis. Returns each step's verdict and the stage reached. Holds the model's
    release lock throughout. Run again on a release that was interrupted (the process killed),
    it takes the challenger off traffic first and judges its steps again."""
    settings = load_settings()
    params = load_params("promote", PromoteParams, Path(params_file) if params_file else None)
    releases = releases_of(settings)
    with releases.lock(model, f"promote of {model} version {version}"):
        return _release(settings, params, releases, model, version)


def _release(settings: GradelineSettings, params: PromoteParams, releases: Releases,
             model: str, version: int) -> dict[str, object]:
    champion = releases.version_for(model, ALIAS_CHAMPION)
    if champion is None:
        raise ReleaseError(f"{model} has no champion to compare with; make the first one with "
                           f"`gradeline promote --model {model} --version {version} --first`")
    stage = releases.version(model, version).stage
    resumed = stage in (STAGE_SHADOW, STAGE_CANARY) and \
        releases.aliases(model).get(ALIAS_CHALLENGER) == version
    if resumed:
        releases.take_off_traffic(model, version, ACTOR, f"resumed an interrupted release in "
                                                         f"{stage}: its steps are judged again")
    else:
        releases.enter_shadow(model, version, ACTOR, f"challenges champion {champion.version}")
    steps: list[StepVerdict] = []

    def run(step: str, minimum: int, max_wait: float) -> bool:
        watch = Watch(step, model, champion.version, version, minimum, max_wait,
                      params.poll_seconds)
        steps.append(watch_step(settings, watch, params))
        return _judged(releases, settings, watch, steps[-1])

    summary = {"model": model, "version": version, "champion": champion.version,
               "resumed": resumed, "steps": steps}
    if stage != STAGE_CANARY or not resumed:
        if not run("shadow", params.shadow.min_pairs, params.shadow.max_wait_seconds):
            return {**summary, "stage": STAGE_ROLLED_BACK}
        releases.set_stage(model, version, STAGE_CANARY, ACTOR, "shadow analysis passed")
    for share in params.canary.steps:
        releases.set_canary_share(model, version, share, ACTOR, f"canary step {share:.0%}")
        if not run(f"canary_{round(share * 100)}", params.canary.min_requests,
                   params.canary.max_wait_seconds):
            return {**summary, "stage": STAGE_ROLLED_BACK}
    releases.request_approval(model, version, ACTOR, "every canary step passed")
    get_run_logger().info("%s version %s awaits a reviewer: set the tags approved_by=<name> and "
                          "approval=approved (or rejected) on its page in the MLflow UI, or run "
                          "gradeline approve", model, version)
    return {**summary, "stage": STAGE_AWAITING_APPROVAL}


@flow(name="conclude-release")
def conclude_release(model: str, version: int,
                     params_file: str | None = None) -> dict[str, object]:
    """Act on the reviewer's decision: crown an approved version, stop a rejected one. A
    version without a decision, or whose `approved_by` is not one of `promote.reviewers`, is
    left waiting: the audit log names who decided."""
    reviewers = load_params("promote", PromoteParams,
                            Path(params_file) if params_file else None).reviewers
    releases = releases_of(load_settings())
    with releases.lock(model, f"conclusion of {model} version {version}"):
        return _conclude(releases, model, version, reviewers)


def _conclude(releases: Releases, model: str, version: int,
              reviewers: tuple[str, ...]) -> dict[str, object]:
    stage = releases.version(model, version).stage
    if stage != STAGE_AWAITING_APPROVAL:  # concluded meanwhile (`gradeline approve`, a schedule)
        return {"model": model, "version": version, "stage": stage}
    approval = releases.approval(model, version)
    waiting = {"model": model, "version": version, "stage": STAGE_AWAITING_APPROVAL}
    if approval is None or not approval.by:  # a decision counts once it names its reviewer
        return waiting
    by = approval.by
    if by not in reviewers:
        get_run_logger().warning("%s version %s: the decision %s by %r is ignored: not one of "
                                 "promote.reviewers %s", model, version, approval.decision, by,
                                 list(reviewers))
        return {**waiting, "ignored": f"{approval.decision} by {by!r}, who is not one of "
                                      f"promote.reviewers"}
    if approval.decision == APPROVED:
        aliases = releases.crown(model, version, ACTOR, f"approved by {by}")
        get_run_logger().info("%s version %s is champion (previous: %s)", model, version,
                              aliases["previous"])
        return {"model": model, "version": version, "stage": STAGE_CHAMPION,
                "approved_by": by, "aliases": aliases}
    releases.reject(model, version, ACTOR, f"rejected by {by}")
    return {"model": model, "version": version, "stage": STAGE_REJECTED, "rejected_by": by}


@flow(name="conclude-releases")
def conclude_releases(models: tuple[str, ...] = (GRADER, DETECTOR),
                      params_file: str | None = None) -> dict[str, object]:
    """Conclude every challenger awaiting approval whose reviewer has decided: the scheduled
    deployment that lands approvals given in the MLflow UI without a waiting CLI."""
    releases = releases_of(load_settings())
    concluded: dict[str, object] = {}
    for model in models:
        try:
            challenger = releases.version_for(model, ALIAS_CHALLENGER)
        except VersionNotFound:
            continue  # not registered here
        if challenger is not None and challenger.stage == STAGE_AWAITING_APPROVAL:
            concluded[model] = conclude_release(model, challenger.version, params_file)
    return concluded


def run_promote(settings: GradelineSettings, model: str, version: int,
                params_file: str | None = None) -> dict[str, object]:
    """Run `promote` on these settings' home and return its summary, verdicts as dicts."""
    settings.activate()
    summary = promote(model, version, params_file)
    return {**summary, "steps": [step.as_dict() for step in summary["steps"]]}


def wait_for_decision(settings: GradelineSettings, model: str, version: int,
                      params_file: str | None, timeout_seconds: float,
                      say: Callable[[str], None]) -> dict[str, object]:
    """Poll the version until one of the reviewers decided (then run `conclude-release`) or the
    time is up; what was concluded elsewhere (`gradeline approve`, even while this poll runs
    its own conclusion) is returned as it stands, and a decision by anyone else is said once
    and ignored."""
    params = load_params("promote", PromoteParams, Path(params_file) if params_file else None)
    releases = releases_of(settings)
    deadline = time.monotonic() + timeout_seconds
    reviewers = ", ".join(params.reviewers) or "none listed in promote.reviewers"
    say(f"waiting for a reviewer ({reviewers}): set the tags approved_by=<name> and "
        f"approval=approved (or rejected) on {model} version {version} in the MLflow UI "
        f"(`gradeline ui`), or run `gradeline approve`")
    ignored = None
    while time.monotonic() < deadline:
        stage = releases.version(model, version).stage
        if stage != STAGE_AWAITING_APPROVAL:
            return {"model": model, "version": version, "stage": stage}
        approval = releases.approval(model, version)
        if approval is not None and approval.by in params.reviewers:
            try:
                return run_conclude(settings, model, version, params_file)
            except ReleaseLocked:
                pass  # `gradeline approve` is concluding it: its outcome is read next poll
        if approval is not None and approval.by and approval.by != ignored:
            ignored = approval.by
            say(f"ignoring the decision by {ignored!r}: not one of promote.reviewers")
        time.sleep(params.poll_seconds)
    return {"model": model, "version": version, "stage": STAGE_AWAITING_APPROVAL}


def run_conclude(settings: GradelineSettings, model: str, version: int,
                 params_file: str | None = None) -> dict[str, object]:
    """Run `conclude-release` on these settings' home."""
    settings.activate()
    return conclude_release(model, version, params_file)
