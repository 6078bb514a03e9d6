"""Publishing events in the envelope, with a deterministic id so JetStream de-duplicates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from nats.js import JetStreamContext
from nats.js.api import PubAck

from contracts import catalog
from contracts.envelope import (
    SCHEDULE,
    SCHEDULE_TARGET,
    Envelope,
    child_traceparent,
    new_traceparent,
    to_headers,
)
from services.mesh.messages import Cause, Clock, Outgoing, utc_now
from streams.definitions import schedule_subject, stream_for_subject


def schedule_at(moment: dt.datetime) -> str:
    """The scheduler's `@at` takes whole seconds; round up so nothing fires early."""
    utc = moment.astimezone(dt.UTC)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + dt.timedelta(seconds=1)
    return "@at " + utc.strftime("%Y-%m-%dT%H:%M:%SZ")


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
    """The one way onto the log: publishes to JetStream and waits for the PubAck, so an event is
    stored before the input that caused it is acked. It needs only a JetStream context, so a service,
    a CLI command and a test publish the same way."""

    def __init__(self, js: JetStreamContext, producer: str, clock: Clock = utc_now) -> None:
        self._js = js
        self._producer = producer
        self._clock = clock

    async def publish(self, outgoing: Outgoing, *, cause: Cause | None = None) -> PubAck:
        spec = catalog.spec_for_payload(outgoing.payload)
        envelope = envelope_for(outgoing, producer=self._producer, cause=cause, now=self._clock())
        headers, subject = to_headers(envelope), spec.subject
        if outgoing.deliver_at is not None:
            headers |= {SCHEDULE: schedule_at(outgoing.deliver_at), SCHEDULE_TARGET: spec.subject}
            subject = schedule_subject(spec.subject, envelope.aggregate_id)
        return await self.republish(
            subject, catalog.encode(outgoing.payload), headers, stream=stream_for_subject(spec.subject).name)

    async def republish(self, subject: str, body: bytes, headers: Mapping[str, str], *, stream: str) -> PubAck:
        """Store a message exactly as given, such as the original of a dead letter. The stream is
        expected, so a subject since moved elsewhere fails loudly; it is not stored astray."""
        return await self._js.publish(subject, body, headers=dict(headers), stream=stream)


async def cancel_schedule(js: JetStreamContext, target_subject: str, aggregate_id: str) -> None:
    """Remove the aggregate's pending schedule, if any."""
    await js.purge_stream(
        stream_for_subject(target_subject).name, subject=schedule_subject(target_subject, aggregate_id)
    )
