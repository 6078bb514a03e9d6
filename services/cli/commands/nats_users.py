"""`fleet nats auth`: the nats-server users block, derived from the catalog and streams/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.runner import console

app = typer.Typer(help="NATS users and their permissions, derived from the catalog and streams/.")


@app.command("auth")
def nats_auth(
    out: Annotated[Path | None, typer.Option(help="Write it here instead of printing it.")] = None,
) -> None:
    """The nats-server users block: one user per service and per outside client, least privilege from the catalog.

    Each password is read from the server's environment (NATS_PASSWORD_<USER>), never written here.
    """
    from streams.permissions import authorization

    if out is None:
        print(authorization(), end="")
        return
    out.write_text(authorization())
    console.print(f"wrote the NATS users and permissions to {out}")
