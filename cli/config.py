"""`gradeline config`: inspect the effective settings (env vars, defaults and overrides resolved).

Mounted by the main CLI as `app.add_typer(config_app, name="config")`:

    gradeline config show                 # aligned table, secrets masked
    gradeline config show --json --home /srv/gradeline
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import show
from components.settings import load_settings

config_app = typer.Typer(
    help="Inspect Gradeline settings (GRADELINE_* env vars, defaults derived from home).",
    no_args_is_help=True,
)


@config_app.command("show")
def show_settings(
    home: Annotated[
        Path | None, typer.Option("--home", help="Home folder of all local state.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print every effective setting, secrets and URI passwords masked, so it is safe to share."""
    shown = load_settings(home=home).masked()
    width = max(len(name) for name in shown)
    show(shown, as_json, (f"{name:<{width}}  {'-' if value is None else value}"
                          for name, value in shown.items()))
