"""`fleet projections rebuild`: the read models refolded from the event log."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.runner import CommandError, console, run

app = typer.Typer(help="The read models (graph and key-value), folded from the event log.")
PROJECTION_CHOICES = {"graph": ["graph"], "kv": ["kv"], "all": ["graph", "kv"]}


@app.command("rebuild")
def projections_rebuild(
    which: Annotated[str, typer.Argument(help="graph, kv or all.")] = "all",
    in_place: Annotated[bool, typer.Option(
        "--in-place", help="Empty and refill the active model, the live projection paused, instead of building a "
        "second one beside it (half the memory; readers see the model grow). Always so on Neo4j Community.",
    )] = False,
) -> None:
    """Rebuild read models from sequence 0 into a fresh namespace, then switch readers to it. The mesh keeps running."""
    from services.cli.read_models import print_rebuilds, rebuild_projections

    if which not in PROJECTION_CHOICES:
        raise CommandError(f"unknown read model {which!r}; choose graph, kv or all")
    results = run(rebuild_projections(PROJECTION_CHOICES[which], console, in_place=in_place or None))
    print_rebuilds(results, console)
