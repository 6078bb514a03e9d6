"""Dead letters: the original message, whole, with the reason it was rejected."""

from __future__ import annotations

from dataclasses import dataclass

from contracts import catalog
from contracts.envelope import CORRELATION_ID, MSG_ID, TRACEPARENT, deterministic_id, traceparent_for
from contracts.events import MessageRejected
from services.mesh.messages import Cause, Outgoing

# Base64 in JSON grows a body by a third; 512 KiB inline keeps a dead letter under NATS's 1 MiB payload.
MAX_INLINE_BODY = 512 * 1024
# The letter's JSON stays well under NATS's 1 MiB, leaving room for its own headers (at most 64 KiB).
MAX_LETTER = 900 * 1024
# A reason is read by people; an exception text quoting a huge input must not crowd out the letter.
MAX_REASON_CHARS = 4000


@dataclass(frozen=True)
class DeadLetter:
    service: str
    consumer: str
    stream: str
    stream_sequence: int
    deliveries: int
    subject: str
    headers: dict[str, str]
    body: bytes


def dead_letter_event(letter: DeadLetter, reason: str) -> tuple[Outgoing, Cause | None]:
    """The dead-letter event, with an id derived from where the message sat in its stream.

    Rejecting the same stored message twice (a crash between publishing the dead letter and
    acking) yields the same id, so JetStream keeps one dead letter.
    """
    payload = _rejected(letter, reason, with_body=len(letter.body) <= MAX_INLINE_BODY)
    if payload.original_body and len(catalog.encode(payload)) > MAX_LETTER:
        # Headers can swell in JSON (a control character takes 6 bytes): the body gives way, never the letter.
        payload = _rejected(letter, reason, with_body=False)
    event_id = deterministic_id("dead-letter", letter.consumer, letter.stream, str(letter.stream_sequence))
    return Outgoing(payload=payload, event_id=event_id), _cause_of(letter)


def bounded_reason(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return f"{reason[:MAX_REASON_CHARS]}... ({len(reason) - MAX_REASON_CHARS} more characters)"


def _rejected(letter: DeadLetter, reason: str, *, with_body: bool) -> MessageRejected:
    return MessageRejected(
        service=letter.service,
        consumer=letter.consumer,
        reason=bounded_reason(reason),
        original_subject=letter.subject,
        original_headers=letter.headers,
        original_body=letter.body if with_body else b"",
        stream=letter.stream,
        stream_sequence=letter.stream_sequence,
        deliveries=letter.deliveries,
        original_body_omitted=not with_body,
    )


def _cause_of(letter: DeadLetter) -> Cause | None:
    """Keep the causal chain when the rejected message carried ids; start one when it did not."""
    original_id = letter.headers.get(MSG_ID)
    if not original_id:
        return None
    return Cause(
        event_id=original_id,
        correlation_id=letter.headers.get(CORRELATION_ID) or original_id,
        # The trace the services give a message that came without one, so the dead letter stays in it.
        traceparent=letter.headers.get(TRACEPARENT) or traceparent_for(original_id),
    )
