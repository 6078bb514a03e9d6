"""Publishing events in the envelope, with a deterministic id so JetStream de-duplicates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from faststream.nats import NatsBroker
from nats.js.api import PubAck

from contracts import catalog
from contracts.envelope import Envelope, child_traceparent, new_traceparent, to_headers
from contracts.events import Event
from streams.definitions import stream_for_subject

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
    """An event a handler decided to emit. `event_id` must be derived from the fact it records."""

    payload: Event
    event_id: str


def envelope_for(
    outgoing: Outgoing, *, producer: str, cause: Cause | None, now: dt.datetime
) -> Envelope:
    spec = catalog.spec_for_payload(outgoing.payload)
    return Envelope(
        event_id=outgoing.event_id,
        event_type=spec.event_type,
        schema_version=spec.version,
        occurred_at=now,
        producer=producer,
        correlation_id=cause.correlation_id if cause else outgoing.event_id,
        causation_id=cause.event_id if cause else outgoing.event_id,
        aggregate_type=spec.aggregate_type,
        aggregate_id=outgoing.payload.aggregate_id(),
        traceparent=child_traceparent(cause.traceparent) if cause else new_traceparent(),
    )


class EventPublisher:
    """Publishes to JetStream and waits for the PubAck, so an event is stored before we ack input."""

    def __init__(self, broker: NatsBroker, producer: str, clock: Clock = utc_now) -> None:
        self._broker = broker
        self._producer = producer
        self._clock = clock

    async def publish(self, outgoing: Outgoing, *, cause: Cause | None = None) -> PubAck:
        spec = catalog.spec_for_payload(outgoing.payload)
        envelope = envelope_for(outgoing, producer=self._producer, cause=cause, now=self._clock())
        return await self._broker.publish(
            catalog.encode(outgoing.payload),
            spec.subject,
            headers=to_headers(envelope),
            stream=stream_for_subject(spec.subject).name,
        )
