"""The one envelope every event travels in: metadata in NATS headers, payload as msgspec JSON."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Mapping

import msgspec

from contracts.errors import ContractViolation

MSG_ID = "Nats-Msg-Id"
EVENT_TYPE = "Fleet-Event-Type"
SCHEMA_VERSION = "Fleet-Schema-Version"
OCCURRED_AT = "Fleet-Occurred-At"
PRODUCER = "Fleet-Producer"
CORRELATION_ID = "Fleet-Correlation-Id"
CAUSATION_ID = "Fleet-Causation-Id"
AGGREGATE_TYPE = "Fleet-Aggregate-Type"
AGGREGATE_ID = "Fleet-Aggregate-Id"
TRACEPARENT = "traceparent"
# Set by JetStream on a message its scheduler produced; names the schedule it came from.
SCHEDULER = "Nats-Scheduler"
SCHEDULE = "Nats-Schedule"
SCHEDULE_TARGET = "Nats-Schedule-Target"

# Deterministic ids are UUIDv5 in this namespace, so every service derives the same id
# for the same fact and JetStream de-duplication (Nats-Msg-Id) does the rest.
FLEET_NAMESPACE = uuid.UUID("6f1c2d1e-5b7a-4f7e-9a55-2a1f0c3e9b10")


class EnvelopeError(ContractViolation):
    """Headers that cannot form a valid envelope."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    event_type: str
    schema_version: int
    occurred_at: dt.datetime
    producer: str
    correlation_id: str
    causation_id: str
    aggregate_type: str
    aggregate_id: str
    traceparent: str


def deterministic_id(*parts: str) -> str:
    """Same parts, same id: the basis of idempotent publishing."""
    return str(uuid.uuid5(FLEET_NAMESPACE, "/".join(parts)))


def new_traceparent() -> str:
    """A fresh W3C trace context with a random trace and parent span."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def traceparent_for(event_id: str) -> str:
    """The trace an event without a traceparent starts: derived from its id, so a redelivered event
    (handled again after a crash) continues the same trace rather than starting a second one."""
    digest = hashlib.sha256(f"trace/{event_id}".encode()).hexdigest()
    return f"00-{digest[:32]}-{digest[32:48]}-01"


def child_traceparent(parent: str) -> str:
    """Same trace, new span: what each hop forwards."""
    try:
        version, trace_id, _span, flags = parent.split("-")
        if len(trace_id) != 32 or len(version) != 2:
            raise ValueError(parent)
    except ValueError:
        return new_traceparent()
    return f"{version}-{trace_id}-{secrets.token_hex(8)}-{flags}"


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_headers(envelope: Envelope) -> dict[str, str]:
    return {
        MSG_ID: envelope.event_id,
        EVENT_TYPE: envelope.event_type,
        SCHEMA_VERSION: str(envelope.schema_version),
        OCCURRED_AT: format_time(envelope.occurred_at),
        PRODUCER: envelope.producer,
        CORRELATION_ID: envelope.correlation_id,
        CAUSATION_ID: envelope.causation_id,
        AGGREGATE_TYPE: envelope.aggregate_type,
        AGGREGATE_ID: envelope.aggregate_id,
        TRACEPARENT: envelope.traceparent,
    }


def shown(value: str, limit: int = 80) -> str:
    """A header value as a reason quotes it: cut short, so a huge forged header cannot swell the reason."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def _parse_time(raw: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(raw)
        in_utc = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise EnvelopeError(f"header {OCCURRED_AT} is not a valid ISO-8601 time: {shown(raw)}") from exc
    if moment.tzinfo is None:
        raise EnvelopeError(f"header {OCCURRED_AT} has no UTC offset: {shown(raw)}")
    return in_utc


def _check_sent(headers: Mapping[str, str], header: str, expected: str) -> None:
    """A header the publisher sent must say what the subject and payload say."""
    sent = headers.get(header)
    if sent and sent != expected:
        raise EnvelopeError(f"header {header}={shown(sent)} does not match {expected!r}")


def from_headers(
    headers: Mapping[str, str],
    *,
    event_type: str,
    schema_version: int,
    aggregate_type: str,
    aggregate_id: str,
    received_at: dt.datetime,
    fallback_event_id: str | None = None,
) -> Envelope:
    """Read an envelope, defaulting every header but the event id.

    Upstream publishers may send only `Nats-Msg-Id`; the rest is filled from what the
    subject and payload already tell. A header that is present but contradicts the
    subject or the payload is an error, never silently overridden.
    """
    event_id = headers.get(MSG_ID) or fallback_event_id
    if not event_id:
        raise EnvelopeError(f"missing required header {MSG_ID}")
    sent_type = headers.get(EVENT_TYPE)
    if sent_type is not None and sent_type != event_type:
        raise EnvelopeError(f"header {EVENT_TYPE}={shown(sent_type)} does not match {event_type!r}")
    sent_version = headers.get(SCHEMA_VERSION)
    if sent_version is not None and sent_version != str(schema_version):
        raise EnvelopeError(
            f"header {SCHEMA_VERSION}={shown(sent_version)} is not supported on this subject "
            f"(expected {schema_version})"
        )
    # Another aggregate named in the headers would file the event under it (`fleet trace`, the activity feed).
    _check_sent(headers, AGGREGATE_TYPE, aggregate_type)
    _check_sent(headers, AGGREGATE_ID, aggregate_id)
    sent_time = headers.get(OCCURRED_AT)
    return Envelope(
        event_id=event_id,
        event_type=event_type,
        schema_version=schema_version,
        occurred_at=_parse_time(sent_time) if sent_time else received_at,
        producer=headers.get(PRODUCER) or "unknown",
        correlation_id=headers.get(CORRELATION_ID) or event_id,
        causation_id=headers.get(CAUSATION_ID) or event_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        traceparent=headers.get(TRACEPARENT) or traceparent_for(event_id),
    )
