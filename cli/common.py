"""What every `gradeline` command shares: its options, how it fails and how it talks.

Results go to stdout (JSON with --json); progress and errors go to stderr, so a script that reads
`--json` output never sees anything else. A failure exits with code 2 and one red line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ModelOption = Annotated[str, typer.Option(help="Registered model name.")]
VersionOption = Annotated[int, typer.Option(help="Model version.")]
ByOption = Annotated[str, typer.Option(help="Your name, written to the version and the audit "
                                            "log.")]
ParamsOption = Annotated[Path | None, typer.Option(
    help="A params.yaml to read this command's section from; default the project's.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` in red on stderr; the exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def show(result: object, as_json: bool, lines: Iterable[str]) -> None:
    """A command's result on stdout: as JSON with --json, else the `lines` for people."""
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    for line in lines:
        typer.echo(line)


def say(message: str) -> None:
    """Progress for people, on stderr so that stdout keeps the results."""
    typer.echo(message, err=True)


def progress_bar() -> Progress:
    """A progress bar on stderr, so stdout stays clean for --json."""
    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeRemainingColumn(), transient=True,
                    console=Console(stderr=True))
