"""`fleet dlq`: dead letters listed, shown, and their originals re-published after a fix."""

from __future__ import annotations

from typing import Annotated

import typer

from contracts import catalog
from services.cli.options import AsJson
from services.cli.runner import CommandError, console, on_jetstream, run

app = typer.Typer(help="Dead letters: what was rejected and why, and re-publishing it after a fix.")


@app.command("list")
def dlq_list(
    service: Annotated[str | None, typer.Option("--service", help="Only letters from this service.")] = None,
    stream: Annotated[str | None, typer.Option("--stream", help="Only letters of messages from this stream.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N.")] = 50,
    as_json: AsJson = False,
) -> None:
    """Dead letters, newest last: who rejected what, why, and whether it was redriven."""
    from services.cli.dead_letters import print_letters

    run(on_jetstream(lambda js: print_letters(js, console, service, stream, limit, as_json)))


@app.command("show")
def dlq_show(letter: Annotated[str, typer.Argument(help="The letter's sequence in DEAD_LETTERS, or its id.")]) -> None:
    """One dead letter in full: the reason, the original headers and body, and its redrive."""
    from services.cli.dead_letters import print_letter

    run(on_jetstream(lambda js: print_letter(js, console, letter)))


@app.command("redrive")
def dlq_redrive(
    letters: Annotated[list[str] | None, typer.Argument(help="Letter sequences or ids.")] = None,
    redrive_all: Annotated[bool, typer.Option("--all", help="Every letter not yet redriven (filters apply).")] = False,
    service: Annotated[str | None, typer.Option("--service", help="With --all: only this service's.")] = None,
    stream: Annotated[str | None, typer.Option("--stream", help="With --all: only this stream's.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Redrive letters already redriven too (inside the stream's "
                                        "duplicate window JetStream still drops the copy).")] = False,
    by: Annotated[str, typer.Option("--by", envvar="USER", help="Who redrives, for the record.")] = catalog.OPERATOR,
) -> None:
    """Re-publish dead letters' original messages after a fix; a letter is redriven once unless --force."""
    from services.cli.dead_letters import matching, redrive_letters, select

    if bool(letters) == redrive_all:
        raise CommandError("name the letters to redrive, or give --all (with --service/--stream to narrow it)")

    def chosen(known):
        return matching(known, service, stream) if redrive_all else select(known, letters or [])

    run(on_jetstream(lambda js: redrive_letters(js, console, chosen, force, lambda q: yes or typer.confirm(q), by)))
