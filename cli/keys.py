"""`gradeline keys`: the grading service's API keys (components/serving/keys.py).

    gradeline keys create --name shop-frontend --role client        # prints the key once
    gradeline keys create --name ada --role expert --out ada.key    # or writes it, mode 0600
    gradeline keys list [--json]
    gradeline keys revoke 3f9a0c1b2d4e

Only each key's SHA-256 is kept (in the home's keys.json); a lost key is revoked and replaced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.common import show
from components.serving.keys import KeyStore, Role
from components.settings import load_settings

keys_app = typer.Typer(help="Create, list and revoke the grading service's API keys.",
                       no_args_is_help=True)


def hand_over(secret: str, out: Path | None) -> None:
    """Show a secret made this once: on stdout, or into `out` (mode 0600, never printed)."""
    if out is None:
        typer.echo(secret)
        return
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")


def _store() -> KeyStore:
    return KeyStore(load_settings().keys_file)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who holds the key: a client service, or the expert "
                                           "whose grades it sends.")],
    role: Annotated[Role, typer.Option(help="client: grade; expert: grade and send expert "
                                            "grades; operator: metrics and refresh.")],
    out: Annotated[Path | None, typer.Option(help="Write the key to this file (mode 0600) "
                                                  "instead of printing it.")] = None,
) -> None:
    """Create a key; it is shown (or written) this once and never stored."""
    key, token = _store().create(name, role)
    hand_over(token, out)
    typer.echo(f"key {key.key_id} for {key.name} ({key.role}) created"
               + (f", written to {out}" if out else ""), err=True)


@keys_app.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
              ) -> None:
    """Every key with its holder, role and dates; never the key itself."""
    keys = [key.public() for key in _store().entries()]
    show(keys, as_json, (f"{key['key_id']}  {key['role']:<8}  {key['name']:<24}  "
                         f"created {key['created']}  "
                         + (f"revoked {key['revoked']}" if key["revoked"] else "active")
                         for key in keys))


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id `keys list` shows.")]
           ) -> None:
    """Revoke a key: the running service refuses it from its next request on."""
    try:
        key = _store().revoke(key_id)
    except KeyError as error:
        typer.secho(f"error: {error.args[0]}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    typer.echo(f"key {key.key_id} of {key.name} revoked at {key.revoked}", err=True)
