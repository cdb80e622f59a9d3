"""The release commands of `gradeline`: serve, promote, approve, reject, rollback, release abort.

    gradeline serve [--host 127.0.0.1] [--port 8080]
    gradeline promote --model card-grader --version 4 [--first] [--no-wait] [--json]
    gradeline approve --model card-grader --version 4 --by ada
    gradeline reject --model card-grader --version 4 --by ada --reason "corners drift"
    gradeline rollback --model card-grader --by bob --reason "p99 doubled"
    gradeline release abort --model card-grader --by bob --reason "promote was killed"

Mounted by the main CLI with `register(app)`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    ByOption,
    JsonFlag,
    ModelOption,
    ParamsOption,
    VersionOption,
    fail,
    say,
    show,
)
from components.settings import load_settings

# How long `approve` and `reject` wait for a release lock held by another conclusion of the same
# decision (a waiting `gradeline promote` polls every promote.poll_seconds).
LOCK_WAIT_SECONDS = 60.0

if TYPE_CHECKING:
    from model_registry import Releases
    pass

def serve(
    host: Annotated[str | None, typer.Option(help="Interface; default params.yaml serve.host.")]
    = None,
    port: Annotated[int | None, typer.Option(help="Port; default params.yaml serve.port.")]
    = None,
    params: ParamsOption = None,
) -> None:
    """Run the grading service (FastAPI on uvicorn) with the registry's champion; it follows the
    aliases, so promotions and rollbacks need no restart. It answers only holders of API keys
    (`gradeline keys create`) and will not start without one. Stop it with Ctrl-C or SIGTERM:
    it drains first (serve.drain_seconds)."""
    from components.params import load_params
    from components.reviews import ReviewParams
    from components.serving.app import app_from_settings
    from components.serving.keys import KeyStore
    from components.serving.params import ServeParams
    from components.serving.server import DrainingServer

    settings = load_settings()
    if not KeyStore(settings.keys_file).active():
        raise fail(f"no active API key in {settings.keys_file}: every route but the health "
                    "checks needs one; create one first with `gradeline keys create --name "
                    "NAME --role client`")
    serve_params = load_params("serve", ServeParams, params)
    app = app_from_settings(settings, serve_params, load_params("review", ReviewParams, params))
    DrainingServer(app, app.state.service, serve_params, host, port).run()


def promote(
    model: ModelOption = "card-grader",
    version: VersionOption = ...,
    first: Annotated[bool, typer.Option(
        "--first", help="Make this candidate the first champion of a model that has none.")]
    = False,
    wait: Annotated[bool, typer.Option(help="After the canary, wait for the reviewer and "
                                            "conclude.")] = True,
    approval_timeout: Annotated[float, typer.Option(help="Seconds to wait for the reviewer.")]
    = 86_400,
    params: ParamsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Release a candidate through shadow and canary steps to awaiting_approval (the Prefect flow
    `promote`), then wait for the reviewer and make it champion (`conclude-release`).
    Exits 1 when the release stopped (rolled back or rejected)."""
    from components.release.registry import releases_of
    from flows.release import run_promote, wait_for_decision
    from model_registry import ReleaseError, VersionNotFound
    from model_registry.locks import ReleaseLocked
    from model_registry.names import STAGE_AWAITING_APPROVAL, STAGE_CHAMPION

    settings = load_settings()
    try:
        if first:
            aliases = releases_of(settings).crown(model, version, "gradeline promote --first",
                                                  "first champion", first=True)
            report = {"model": model, "version": version, "stage": STAGE_CHAMPION,
                      "aliases": aliases}
        else:
            report = run_promote(settings, model, version, str(params) if params else None)
            for step in report["steps"]:
                say(f"{step['step']}: {'passed' if step['passed'] else 'FAILED'} "
                     + ", ".join(f"{k}={v}" for k, v in step["figures"].items()))
            if wait and report["stage"] == STAGE_AWAITING_APPROVAL:
                report["conclusion"] = wait_for_decision(
                    settings, model, version, str(params) if params else None,
                    approval_timeout, say)
                report["stage"] = report["conclusion"]["stage"]
    except (ReleaseError, VersionNotFound, ReleaseLocked) as error:
        raise fail(str(error)) from None
    typer.echo(json.dumps(report, indent=2, default=str) if as_json
               else f"{model} version {version}: {report['stage']}")
    if report["stage"] not in (STAGE_CHAMPION, STAGE_AWAITING_APPROVAL):
        raise typer.Exit(code=1)


def _decide(model: str, version: int, decision: str, by: str, reason: str,
            params: Path | None, as_json: bool) -> None:
    """Write the reviewer's decision, then conclude the release with it; refused unless `by`
    is one of promote.reviewers."""
    from components.params import load_params
    from components.release.analysis import PromoteParams
    from components.release.registry import releases_of
    from flows.release import run_conclude
    from model_registry import ReleaseError, VersionNotFound
    from model_registry.locks import ReleaseLocked

    reviewers = load_params("promote", PromoteParams, params).reviewers
    if by.strip() not in reviewers:
        raise fail(f"{by!r} is not a reviewer: only {', '.join(reviewers) or 'nobody'} may "
                    f"decide (promote.reviewers in params.yaml)")
    settings = load_settings()
    try:
        releases_of(settings).decide(model, version, decision, by, reason)
        # A `gradeline promote` waiting for this decision may be concluding it right now: wait
        # for its lock, then read the outcome as it stands.
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                report = run_conclude(settings, model, version, str(params) if params else None)
                break
            except ReleaseLocked:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    except (ReleaseError, VersionNotFound, ReleaseLocked) as error:
        raise fail(str(error)) from None
    typer.echo(json.dumps(report, indent=2, default=str) if as_json
               else f"{model} version {version}: {report['stage']}")


def approve(model: ModelOption = "card-grader", version: VersionOption = ...,
            by: ByOption = ..., reason: Annotated[str, typer.Option()] = "",
            params: ParamsOption = None, as_json: JsonFlag = False) -> None:
    """Approve a version awaiting approval (as the tag approval=approved in the MLflow UI does);
    it becomes champion. `--by` must be one of promote.reviewers."""
    _decide(model, version, "approved", by, reason, params, as_json)


def reject(model: ModelOption = "card-grader", version: VersionOption = ...,
           by: ByOption = ..., reason: Annotated[str, typer.Option()] = "",
           params: ParamsOption = None, as_json: JsonFlag = False) -> None:
    """Reject a version awaiting approval; it stops for good (stage rejected). `--by` must be
    one of promote.reviewers."""
    _decide(model, version, "rejected", by, reason, params, as_json)


def rollback(model: ModelOption = "card-grader", by: ByOption = ...,
             reason: Annotated[str, typer.Option(help="Why, for the audit log and on-call.")]
             = "manual rollback",
             as_json: JsonFlag = False) -> None:
    """Put the previous champion back (one alias move; serving follows within its refresh
    interval) and mark the demoted version rolled_back."""
    def act(releases: Releases) -> tuple[dict[str, object], str, str]:
        moved = releases.rollback(model, by, reason)
        return ({"model": model, **moved}, f"{model} rolled back to version {moved['champion']}",
                f"{model}: champion is version {moved['champion']} again "
                f"(version {moved['rolled_back']} rolled back)")

    _act_and_tell(act, by, reason, as_json)


def _act_and_tell(act: Callable[[Releases], tuple[dict[str, object], str, str]], by: str,
                  reason: str, as_json: bool) -> None:
    """What on-call's release commands share: `act` on this home's releases (it returns the
    result, the on-call subject and the line for people), tell on-call, print the result."""
    from components.oncall import tell_on_call
    from components.release.registry import releases_of
    from model_registry import ReleaseError, VersionNotFound

    settings = load_settings()
    try:
        result, subject, line = act(releases_of(settings))
    except (ReleaseError, VersionNotFound) as error:
        raise fail(str(error)) from None
    tell_on_call(settings, subject, f"{by}: {reason}; {line}")
    show(result, as_json, [line])


release_app = typer.Typer(help="Act on a release in flight.", no_args_is_help=True)


@release_app.command("abort")
def abort(model: ModelOption = "card-grader", by: ByOption = ...,
          reason: Annotated[str, typer.Option(help="Why, for the audit log and on-call.")]
          = "release aborted", as_json: JsonFlag = False) -> None:
    """Stop the release in flight at once, whatever state a killed `promote` left it in: the
    challenger leaves traffic (its alias and canary share go) and becomes rolled_back, or
    rejected when it was awaiting approval. The champion keeps answering."""
    def act(releases: Releases) -> tuple[dict[str, object], str, str]:
        stopped = releases.abort(model, by, reason)
        return ({"model": model, "version": stopped.version, "stage": stopped.stage},
                f"{model} version {stopped.version} release aborted",
                f"{model} version {stopped.version}: {stopped.stage}")

    _act_and_tell(act, by, reason, as_json)


def register(app: typer.Typer) -> None:
    """Add the release commands to the main CLI."""
    for command in (serve, promote, approve, reject, rollback):
        app.command(command.__name__)(command)
    app.add_typer(release_app, name="release")
