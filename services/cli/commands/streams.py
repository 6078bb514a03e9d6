"""`fleet streams`: apply the declarations in streams/ and show how the consumers keep up."""

from __future__ import annotations

import typer
from rich.table import Table

from services.cli.options import AsJson
from services.cli.runner import console, on_jetstream, run

app = typer.Typer(help="Streams, durable consumers and KV buckets declared in streams/.")


async def _apply_streams(js) -> None:
    from streams.apply import apply_all

    changes = await apply_all(js)
    table = Table("kind", "name", "action", "details")
    for change in changes:
        colour = {"created": "green", "updated": "yellow"}.get(change.action, "dim")
        table.add_row(change.kind, change.name, f"[{colour}]{change.action}[/]", change.details)
    console.print(table)


@app.command("apply")
def streams_apply() -> None:
    """Create or update every declared stream, consumer and bucket; print what changed."""
    run(on_jetstream(_apply_streams))


@app.command("status")
def streams_status(as_json: AsJson = False) -> None:
    """Streams, their consumers, and each consumer's lag (pending), unacked and redelivered counts."""
    from services.cli.stream_commands import print_status

    run(on_jetstream(lambda js: print_status(js, console, as_json)))
