"""`fleet dlq`: read dead letters, and re-publish their original messages once the cause is fixed.

A redrive re-publishes the original subject, headers and body under an id derived from the letter,
so JetStream drops a second redrive of the same letter as a duplicate, and records the redrive as
`deadletter.message.redriven.v1`, which later redrives look for first. Consumers are idempotent
besides, so even a redrive past the duplicate window starts no second deliberation.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nats.js import JetStreamContext

from contracts import catalog
from contracts.envelope import MSG_ID, deterministic_id, to_headers
from contracts.events import MessageRedriven, MessageRejected
from services.cli.stream_tools import read_events
from services.mesh.publishing import Cause, Outgoing, envelope_for
from streams.definitions import DEAD_LETTERS

# On a re-published message: the id of the dead letter it redrives.
REDRIVE_OF = "Fleet-Redrive-Of"


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


def republish_of(letter: Letter, body: bytes) -> Republish:
    """The original message again, under an id derived from the letter; its causal headers are kept."""
    # JetStream's own headers (de-duplication, expectations, schedules) belong to the first publish.
    headers = {name: value for name, value in letter.rejected.original_headers.items() if not name.startswith("Nats-")}
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


def shown_body(body: bytes) -> str:
    """A body as an operator can read it: indented JSON, text, or base64 for bytes that are neither."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(body).decode()


# --- NATS --------------------------------------------------------------------------------------------


async def read_letters(js: JetStreamContext) -> list[Letter]:
    letters = []
    async for event in read_events(js, DEAD_LETTERS.name, subject=catalog.MESSAGE_REJECTED.subject):
        letters.append(Letter(event.sequence, event.event_id, event.stored_at, event.headers,
                              catalog.MESSAGE_REJECTED.decoder.decode(event.data)))
    return letters


async def read_redrives(js: JetStreamContext) -> dict[str, tuple[dt.datetime, MessageRedriven]]:
    """Each redriven letter's id, with when and how it was redriven."""
    redrives = {}
    async for event in read_events(js, DEAD_LETTERS.name, subject=catalog.MESSAGE_REDRIVEN.subject):
        redriven = catalog.MESSAGE_REDRIVEN.decoder.decode(event.data)
        redrives.setdefault(redriven.letter_id, (event.stored_at, redriven))
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
    ack = await js.publish(republished.subject, republished.body, headers=republished.headers)
    record = redriven_event(letter, republished, ack.seq, by)
    cause = Cause(letter.event_id, letter.headers.get("Fleet-Correlation-Id") or letter.event_id,
                  letter.headers.get("traceparent", ""))
    envelope = envelope_for(record, producer="fleet-dlq", cause=cause, now=now)
    await js.publish(catalog.MESSAGE_REDRIVEN.subject, catalog.encode(record.payload), headers=to_headers(envelope))
    return Redriven(letter, ack.seq, bool(ack.duplicate))
