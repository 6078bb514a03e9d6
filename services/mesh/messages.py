"""What handlers take and give: an event in, the events it decides to emit out.

The domains import these types, so this module imports nothing that talks to NATS (nor anything
outside the standard library at run time): a domain stays pure in its imports, not only in behaviour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.envelope import Envelope
    from contracts.events import Event

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Incoming[P: Event]:
    """A stored event, decoded and upcast, with where it sits in its stream."""

    payload: P
    envelope: Envelope
    subject: str
    stream_sequence: int
    deliveries: int


@dataclass(frozen=True)
class Cause:
    """What a new event inherits from the event that caused it."""

    event_id: str
    correlation_id: str
    traceparent: str

    @classmethod
    def of(cls, envelope: Envelope) -> Cause:
        return cls(envelope.event_id, envelope.correlation_id, envelope.traceparent)


@dataclass(frozen=True)
class Outgoing:
    """An event a handler decided to emit. `event_id` must be derived from the fact it records.

    With `deliver_at`, the event is handed to the JetStream scheduler instead, which stores it on
    its subject at that time. An aggregate has one schedule: a later one replaces it.
    """

    payload: Event
    event_id: str
    deliver_at: dt.datetime | None = None


@dataclass(frozen=True)
class Refusal:
    """A stored message a consumer gave up on, as it was stored, with every reason.

    `incoming` is the decoded event, or None when the message could not be decoded at all.
    """

    subject: str
    headers: Mapping[str, str]
    body: bytes
    reasons: tuple[str, ...]
    incoming: Incoming | None = None


type Handler = Callable[[Incoming], Awaitable[Sequence[Outgoing]]]
# What to publish when a message is given up on (dead-lettered), so that nobody waits for it in vain.
type GiveUp = Callable[[Refusal], Sequence[Outgoing]]
# What to do once every event a message's handler returned is published, before the message is acked.
type AfterPublished = Callable[[Incoming], Awaitable[None]]
