"""`fleet tail`, `replay` and `trace`: the event log as it is stored."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.options import AsJson
from services.cli.runner import CommandError, console, on_jetstream, run

app = typer.Typer()


@app.command()
def tail(
    subject_filter: Annotated[str, typer.Argument(help="A NATS subject filter, e.g. 'orchestration.>'.")] = ">",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line, for piping.")] = False,
    last: Annotated[int, typer.Option("--last", min=0, help="Show the last N stored events of each stream first.")]
    = 0,
) -> None:
    """Follow events as they are stored, with their headers and decoded bodies, until Ctrl-C."""
    from services.cli.stream_commands import print_tail

    run(on_jetstream(lambda js: print_tail(js, console, subject_filter, last, as_json)))


@app.command()
def replay(
    stream: Annotated[str, typer.Option("--stream", help="The stream, e.g. ORCHESTRATION.")],
    from_seq: Annotated[int | None, typer.Option("--from-seq", min=1, help="Start at this sequence.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Start at a time: ISO-8601 or an age (15m, 2h).")] = None,
    subject: Annotated[str, typer.Option("--subject", help="Only subjects matching this filter.")] = ">",
    until: Annotated[str | None, typer.Option("--until", help="Stop after this sequence or time.")] = None,
    into: Annotated[str | None, typer.Option("--into", help="Re-deliver into a read model (graph or kv).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Print a stream's stored events in order, or re-deliver them into a read model (--into)."""
    from services.cli.stream_commands import print_replay, replay_into_projection

    if from_seq is not None and since is not None:
        raise CommandError("give --from-seq or --since, not both")
    if into is not None:
        if into not in ("graph", "kv") or since is not None or subject != ">" or until is not None:
            raise CommandError(
                "--into takes graph or kv, with --from-seq only (a read model is refolded from a sequence on)")
        run(on_jetstream(lambda js: replay_into_projection(js, console, stream, into, from_seq or 1)))
        return
    run(on_jetstream(lambda js: print_replay(js, console, stream, from_seq, since, subject, until, as_json)))


@app.command()
def trace(
    ident: Annotated[str, typer.Argument(help="A correlation id or an aggregate id (a deliberation id, a plan id).")],
    as_json: AsJson = False,
) -> None:
    """Every event of one causal chain, across all streams, as a tree by causation, with timings."""
    from services.cli.stream_commands import print_trace

    run(on_jetstream(lambda js: print_trace(js, console, ident, as_json)))
