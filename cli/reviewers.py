"""`gradeline reviewers add`: a reviewer's account on the MLflow server `gradeline up` runs, with
EDIT on the registered models, which is what approving a release in the MLflow UI takes.

    gradeline reviewers add ada [--out ada.password]

Only names listed in params.yaml `promote.reviewers` get an account: the list is what decides
whose approval counts, the account is how they sign in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import ParamsOption, fail
from cli.keys import hand_over
from cli.supervisor import load_stack, running_pid, stack_folder
from components.params import load_params
from components.settings import load_settings
from model_registry.access import AccessError, add_reviewer
from model_registry.names import DETECTOR, GRADER

reviewers_app = typer.Typer(help="Accounts of the reviewers on the MLflow server.",
                            no_args_is_help=True)


@reviewers_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The reviewer, as listed in promote.reviewers.")],
    out: Annotated[Path | None, typer.Option(help="Write the password to this file (mode "
                                                  "0600) instead of printing it.")] = None,
    params: ParamsOption = None,
) -> None:
    """Create the reviewer's MLflow account (a new random password, shown or written once) with
    EDIT on card-grader and defect-detector; `gradeline up` must be running."""
    settings = load_settings()
    from components.release.analysis import PromoteParams  # scipy: only for this command

    reviewers = load_params("promote", PromoteParams, params).reviewers
    if name not in reviewers:
        raise fail(f"{name!r} is not in promote.reviewers ({', '.join(reviewers) or 'empty'}): "
                    "list them in params.yaml first, since only their approvals count")
    stack = load_stack(stack_folder(settings))
    if stack is None or running_pid(stack, "mlflow") is None:
        raise fail("the MLflow server is not running: start it with `gradeline up`")
    try:
        password = add_reviewer(stack.mlflow_url, stack.mlflow_admin_password(), name,
                                [GRADER, DETECTOR])
    except AccessError as error:
        raise fail(str(error)) from None
    hand_over(password, out)
    typer.echo(f"{name} may sign in at {stack.mlflow_url} and approve releases of {GRADER} and "
               f"{DETECTOR}" + (f"; password in {out}" if out else ""), err=True)
