"""`fleet dlq`: read dead letters, and re-publish their original messages once the cause is fixed.

A redrive re-publishes the original subject, headers and body under an id derived from the letter,
so JetStream drops a second redrive of the same letter as a duplicate, and records the redrive as
`deadletter.message.redriven.v1`, which later redrives look for first. Consumers are idempotent
besides, so even a redrive past the duplicate window starts no second deliberation.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nats.js import JetStreamContext
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from contracts import catalog
from contracts.envelope import (
    CAUSATION_ID,
    CORRELATION_ID,
    MSG_ID,
    TRACEPARENT,
    deterministic_id,
    traceparent_for,
)
from contracts.events import MessageRedriven, MessageRejected
from services.cli.stream_tools import read_events
from services.mesh.messages import Cause, Outgoing
from services.mesh.publishing import EventPublisher
from streams.definitions import DEAD_LETTERS

# On a re-published message: the id of the dead letter it redrives.
REDRIVE_OF = "Fleet-Redrive-Of"
REASON_WIDTH = 80



@dataclass(frozen=True)
class Redrive:
    """One recorded redrive of a letter, and when it was stored."""

    at: dt.datetime
    event: MessageRedriven


# Each redriven letter's id, with its redrives, first first. Inside the duplicate window a letter has
# one; a `--force` past it records another.
type Redrives = Mapping[str, list[Redrive]]


@dataclass(frozen=True)
class Letter:
    sequence: int
    event_id: str
    stored_at: dt.datetime
    headers: dict[str, str]
    rejected: MessageRejected


@dataclass(frozen=True)
class Republish:
    subject: str
    headers: dict[str, str]
    body: bytes


def select(letters: Sequence[Letter], wanted: Iterable[str]) -> list[Letter]:
    """Letters named by their DEAD_LETTERS sequence or their event id; an unknown name is an error."""
    chosen = []
    for name in wanted:
        found = [letter for letter in letters if name in (str(letter.sequence), letter.event_id)]
        if not found:
            raise ValueError(f"no dead letter {name!r}; `fleet dlq list` shows them")
        chosen += found
    return chosen


def matching(letters: Sequence[Letter], service: str | None, stream: str | None) -> list[Letter]:
    return [letter for letter in letters
            if (service is None or letter.rejected.service == service)
            and (stream is None or letter.rejected.stream == stream.upper())]


def truncated(text: str, width: int = REASON_WIDTH) -> str:
    """One line of at most `width` characters, ending in an ellipsis when cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"


def listed(letter: Letter, redrives: Redrives) -> dict[str, object]:
    """One letter as `fleet dlq list --json` gives it."""
    rejected = letter.rejected
    return {
        "seq": letter.sequence, "id": letter.event_id, "at": letter.stored_at.isoformat(),
        "service": rejected.service, "consumer": rejected.consumer, "subject": rejected.original_subject,
        "stream": rejected.stream, "stream_seq": rejected.stream_sequence, "deliveries": rejected.deliveries,
        "reason": rejected.reason, "redriven": letter.event_id in redrives,
        "redriven_at": [redrive.at.isoformat() for redrive in redrives.get(letter.event_id, [])],
    }


@dataclass(frozen=True)
class RedrivePlan:
    todo: list[Letter]
    skipped: list[tuple[Letter, dt.datetime]]  # already redriven, and when


def plan_redrive(chosen: Sequence[Letter], redrives: Redrives, force: bool) -> RedrivePlan:
    """Which letters to redrive: each once, the ones already redriven only when forced."""
    unique = list({letter.event_id: letter for letter in chosen}.values())
    if force:
        return RedrivePlan(unique, [])
    return RedrivePlan([x for x in unique if x.event_id not in redrives],
                       [(x, redrives[x.event_id][0].at) for x in unique if x.event_id in redrives])


def republish_of(letter: Letter, body: bytes) -> Republish:
    """The original message again, under an id derived from the letter; its causal headers are kept."""
    original = letter.rejected.original_headers
    # JetStream's own headers (de-duplication, expectations, schedules) belong to the first publish.
    headers = {name: value for name, value in original.items() if not name.startswith("Nats-")}
    if original_id := original.get(MSG_ID):
        # An ingress message may carry only its id, and the services default its chain from that id;
        # pinned here, so the new id does not start another chain.
        headers = {CORRELATION_ID: original_id, CAUSATION_ID: original_id,
                   TRACEPARENT: traceparent_for(original_id)} | headers
    headers |= {MSG_ID: deterministic_id("redrive", letter.event_id), REDRIVE_OF: letter.event_id}
    return Republish(letter.rejected.original_subject, headers, body)


def redriven_event(letter: Letter, republished: Republish, sequence: int, by: str) -> Outgoing:
    rejected = letter.rejected
    return Outgoing(
        MessageRedriven(
            letter_id=letter.event_id, letter_sequence=letter.sequence, original_subject=rejected.original_subject,
            original_stream=rejected.stream, original_sequence=rejected.stream_sequence,
            republished_id=republished.headers[MSG_ID], republished_sequence=sequence, redriven_by=by,
        ),
        event_id=deterministic_id("redriven", letter.event_id),
    )


def terminal_safe(text: str) -> str:
    """`text` with every unprintable character but a newline escaped, so it cannot drive the terminal."""
    # A rejected message is untrusted input: escape sequences or bidi overrides in it must show, not act.
    return "".join(ch if ch == "\n" or ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def shown_body(body: bytes) -> str:
    """A body as an operator can read it: indented JSON, or the bytes' repr when it is not JSON."""
    try:
        return terminal_safe(json.dumps(json.loads(body), indent=2, ensure_ascii=False))
    except (ValueError, UnicodeDecodeError):
        return repr(body)


# --- NATS --------------------------------------------------------------------------------------------


async def read_letters(js: JetStreamContext) -> list[Letter]:
    letters = []
    async for event in read_events(js, DEAD_LETTERS.name, subject=catalog.MESSAGE_REJECTED.subject):
        letters.append(Letter(event.sequence, event.event_id, event.stored_at, event.headers,
                              catalog.MESSAGE_REJECTED.decoder.decode(event.data)))
    return letters


async def read_redrives(js: JetStreamContext) -> dict[str, list[Redrive]]:
    """Each redriven letter's id, with when and how it was redriven."""
    redrives: dict[str, list[Redrive]] = {}
    async for event in read_events(js, DEAD_LETTERS.name, subject=catalog.MESSAGE_REDRIVEN.subject):
        redriven = catalog.MESSAGE_REDRIVEN.decoder.decode(event.data)
        redrives.setdefault(redriven.letter_id, []).append(Redrive(event.stored_at, redriven))
    return redrives


async def original_body(js: JetStreamContext, letter: Letter) -> bytes:
    """The body the letter holds, or, when it was too large to inline, the original in its stream."""
    if not letter.rejected.original_body_omitted:
        return letter.rejected.original_body
    stored = await js.get_msg(letter.rejected.stream, letter.rejected.stream_sequence)
    return stored.data or b""


@dataclass(frozen=True)
class Redriven:
    letter: Letter
    sequence: int
    duplicate: bool


async def redrive(js: JetStreamContext, letter: Letter, by: str, now: dt.datetime) -> Redriven:
    """Re-publish the original message, then record the redrive; a retry after a crash repeats neither."""
    republished = republish_of(letter, await original_body(js, letter))
    publisher = EventPublisher(js, producer=catalog.OPERATOR, clock=lambda: now)
    ack = await publisher.republish(republished.subject, republished.body, republished.headers,
                                    stream=letter.rejected.stream)
    record = redriven_event(letter, republished, ack.seq, by)
    cause = Cause(letter.event_id, letter.headers.get(CORRELATION_ID) or letter.event_id,
                  letter.headers.get(TRACEPARENT, ""))
    await publisher.publish(record, cause=cause)
    return Redriven(letter, ack.seq, bool(ack.duplicate))


# --- commands ----------------------------------------------------------------------------------------


async def print_letters(js: JetStreamContext, console: Console, service: str | None, stream: str | None,
                        limit: int, as_json: bool) -> None:
    letters, redrives = matching(await read_letters(js), service, stream)[-limit:], await read_redrives(js)
    rows = [listed(letter, redrives) for letter in letters]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("seq", "at", "service", "consumer", "original", "tries", "reason", "redriven")
    for row in rows:
        table.add_row(str(row["seq"]), str(row["at"])[:19], str(row["service"]), str(row["consumer"]),
                      f"{row['subject']} {row['stream']}#{row['stream_seq']}", str(row["deliveries"]),
                      escape(terminal_safe(truncated(str(row["reason"])))),
                      "[green]yes[/]" if row["redriven"] else "no")
    console.print(table)
    console.print(f"{len(rows)} dead letters; `fleet dlq show SEQ` for one in full")


async def print_letter(js: JetStreamContext, console: Console, name: str) -> None:
    [chosen] = select(await read_letters(js), [name])
    rejected, redrives = chosen.rejected, await read_redrives(js)
    console.print(f"[bold]dead letter {chosen.sequence}[/] ({chosen.event_id}) at {chosen.stored_at:%Y-%m-%d %H:%M:%S}")
    console.print(f"rejected by {rejected.service} ({rejected.consumer}) after {rejected.deliveries} deliveries")
    console.print(f"[red]reason:[/] {escape(terminal_safe(rejected.reason))}")
    console.print(f"original: {rejected.original_subject}, {rejected.stream}#{rejected.stream_sequence}")
    for header, value in sorted(rejected.original_headers.items()):
        console.print(terminal_safe(f"  {header}: {value}"), markup=False)
    if rejected.original_body_omitted:
        console.print("[dim](original_body_omitted: too large to inline in the letter, read from the original "
                      "stream)[/]")
    console.print(shown_body(await original_body(js, chosen)), markup=False)
    for redrive in redrives.get(chosen.event_id, []):
        event = redrive.event
        console.print(f"[green]redriven[/] at {redrive.at.isoformat()} by {escape(event.redriven_by)}: "
                      f"{event.original_subject} seq {event.republished_sequence} (id {event.republished_id})")
    if chosen.event_id not in redrives:
        console.print("not redriven")


async def redrive_letters(js: JetStreamContext, console: Console, chosen: Callable[[list[Letter]], list[Letter]],
                          force: bool, confirm: Callable[[str], bool], by: str) -> None:
    redrives = await read_redrives(js)
    plan = plan_redrive(chosen(await read_letters(js)), redrives, force)
    for letter, at in plan.skipped:
        console.print(f"letter {letter.sequence}: already redriven at {at.isoformat()}; skipped "
                      "(--force re-publishes it under the same id, which JetStream drops as a duplicate "
                      "inside the stream's duplicate window)")
    if not plan.todo:
        console.print("nothing to redrive")
        return
    for letter in plan.todo:
        console.print(f"letter {letter.sequence}: {letter.rejected.original_subject} "
                      f"({escape(terminal_safe(truncated(letter.rejected.reason, 60)))})")
    if again := [letter.sequence for letter in plan.todo if letter.event_id in redrives]:
        console.print(f"--force: letters {again} were redriven before; they are re-published under the same id, "
                      "so inside the stream's duplicate window JetStream keeps the earlier copy and stores nothing")
    if not confirm(f"redrive {len(plan.todo)} letters?"):
        raise ValueError("nothing redriven")
    now = dt.datetime.now(dt.UTC)
    for letter in plan.todo:
        done = await redrive(js, letter, by, now)
        kept = "a duplicate: JetStream kept the earlier one" if done.duplicate else f"stored as seq {done.sequence}"
        console.print(f"[green]redriven[/] letter {letter.sequence} to {letter.rejected.original_subject}: {kept}")
