"""How `fleet tail`, `replay`, `trace` and `streams status` print what the stream tools read."""

from __future__ import annotations

import datetime as dt
import json

from nats.js import JetStreamContext
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.cli.stream_tools import (
    StoredEvent,
    Until,
    as_record,
    body_of,
    chain_of,
    consumer_statuses,
    follow_events,
    one_line,
    parse_moment,
    read_all,
    read_events,
    trace_rows,
)
from streams.definitions import STREAMS


def _print_event(console: Console, event: StoredEvent, as_json: bool) -> None:
    if as_json:
        print(json.dumps(as_record(event), default=str), flush=True)
        return
    console.print(f"[bold]{escape(event.subject)}[/] [dim]{event.stream}#{event.sequence} "
                  f"{event.stored_at.isoformat(timespec='milliseconds')}[/]")
    for name, value in sorted(event.headers.items()):
        console.print(f"  [dim]{escape(name)}:[/] {escape(value)}")
    console.print("  " + escape(json.dumps(body_of(event), default=str, indent=2)).replace("\n", "\n  "))


async def print_tail(js: JetStreamContext, console: Console, subject_filter: str, last: int, as_json: bool) -> None:
    if not as_json:
        console.print(f"[dim]following {subject_filter} (Ctrl-C stops)...[/]")
    async for event in follow_events(js, subject_filter, last):
        _print_event(console, event, as_json)


def _stream_named(name: str):
    for stream in STREAMS:
        if stream.name == name.upper():
            return stream
    raise ValueError(f"no stream {name!r}; streams are {', '.join(s.name for s in STREAMS)}")


async def print_replay(
    js: JetStreamContext, console: Console, stream: str, from_seq: int | None, since: str | None, subject: str,
    until: str | None, as_json: bool,
) -> None:
    now = dt.datetime.now(dt.UTC)
    start_time = parse_moment(since, now) if since else None
    count = 0
    async for event in read_events(js, _stream_named(stream).name, subject=subject, start_sequence=from_seq,
                                   start_time=start_time, until=Until.parse(until, now)):
        count += 1
        if as_json:
            _print_event(console, event, as_json=True)
        else:
            console.print(escape(one_line(event)), soft_wrap=True)
    if not as_json:
        console.print(f"[dim]{count} events[/]")


async def replay_into_projection(js: JetStreamContext, console: Console, stream: str, into: str, from_seq: int) -> None:
    from services.cli.read_models import ProgressPrinter
    from services.mesh.settings import load_settings
    from services.projection.app import projectors
    from services.projection.rebuild import replay_into

    spec = _stream_named(stream)
    [projector] = [p for p in projectors(load_settings()) if p.spec.name == into]
    if spec not in projector.spec.streams:
        raise ValueError(f"the {into} read model does not fold {spec.name}")
    try:
        console.print(f"re-delivering {spec.name} from seq {from_seq} into the {into} read model "
                      "(the live projector waits meanwhile)...")
        progress = await replay_into(js, projector, spec, from_seq, ProgressPrinter(into, console))
    finally:
        await projector.store.close()
    console.print(f"[green]done[/]: {progress.applied} events applied again, now at seq {progress.last_sequence}; "
                  "writes are idempotent, so nothing was duplicated")


async def print_trace(js: JetStreamContext, console: Console, ident: str, as_json: bool) -> None:
    chain = chain_of(await read_all(js), ident)
    if not chain:
        raise ValueError(f"no event has correlation id or aggregate id {ident!r}")
    rows = trace_rows(chain)
    traces = sorted({e.trace_id for e in chain if e.trace_id})
    if as_json:
        print(json.dumps({"id": ident, "trace_ids": traces, "events": rows}, indent=2))
        return
    table = Table("event", "aggregate", "producer", "at (ms)", "hop (ms)", "stream#seq")
    for row in rows:
        indent = "  " * row["depth"] + ("└ " if row["depth"] else "")
        table.add_row(escape(indent + row["subject"]), escape(row["aggregate_id"]), row["producer"],
                      str(row["offset_ms"]), "" if row["hop_ms"] is None else str(row["hop_ms"]),
                      f"{row['stream']}#{row['seq']}")
    console.print(table)
    console.print(f"{len(rows)} events over {max(r['offset_ms'] for r in rows)} ms; "
                  f"trace id{'s' if len(traces) != 1 else ''}: {', '.join(traces) or 'none'}")


async def print_status(js: JetStreamContext, console: Console, as_json: bool) -> None:
    streams, consumers = await consumer_statuses(js)
    if as_json:
        print(json.dumps({
            "streams": [{"name": s.config.name, "messages": s.state.messages, "bytes": s.state.bytes,
                         "first_seq": s.state.first_seq, "last_seq": s.state.last_seq} for s in streams],
            "consumers": [{"stream": c.stream, "name": c.name, "pending": c.pending, "ack_pending": c.ack_pending,
                           "redelivered": c.redelivered, "declared": c.declared, "present": c.present,
                           "last_active": c.last_active.isoformat() if c.last_active else None}
                          for c in consumers],
        }, indent=2))
        return
    table = Table("stream", "messages", "bytes", "first seq", "last seq")
    for s in sorted(streams, key=lambda s: s.config.name):
        table.add_row(s.config.name, str(s.state.messages), f"{s.state.bytes:,}", str(s.state.first_seq),
                      str(s.state.last_seq))
    console.print(table)
    table = Table("stream", "consumer", "lag (pending)", "unacked", "redelivered", "last active")
    for name_column in table.columns[:2]:
        name_column.overflow = "fold"  # a narrow terminal wraps a name rather than cutting the part that tells
    now = dt.datetime.now(dt.UTC)
    for c in sorted(consumers, key=lambda c: (c.stream, c.name)):
        if not c.present:
            table.add_row(c.stream, c.name, "[red]missing[/]", "", "", "")
            continue
        ago = f"{(now - c.last_active).total_seconds():.0f}s ago" if c.last_active else "never"
        lag = f"[yellow]{c.pending}[/]" if c.pending else "0"
        table.add_row(c.stream, c.name + ("" if c.declared else " [dim](ephemeral)[/]"), lag, str(c.ack_pending),
                      str(c.redelivered), ago)
    console.print(table)
    if any(not c.present for c in consumers):
        console.print("[red]declared durables are missing on the server[/]: `fleet streams apply` creates them")
