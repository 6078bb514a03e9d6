"""Decoding a stored message into a typed, upcast event: the same for a consumer, a projection and a reader."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

from contracts import catalog
from contracts.envelope import SCHEDULER, deterministic_id, from_headers
from contracts.errors import ContractViolation
from contracts.upcast import upcast
from services.mesh.messages import Incoming
from streams.definitions import stream_for_subject

if TYPE_CHECKING:
    from nats.aio.msg import Msg


def decode_incoming(
    subject: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    received_at: dt.datetime,
    stream_sequence: int,
    deliveries: int,
) -> Incoming:
    """Turn a raw message into a typed, upcast event, or raise ContractViolation with the reason."""
    try:
        spec = catalog.spec_for_subject(subject)
    except KeyError as exc:
        raise ContractViolation(str(exc)) from None
    try:
        payload = spec.decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ContractViolation(f"invalid {spec.subject} payload: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ContractViolation(f"{spec.subject} body is not valid JSON: {exc}") from None
    # Legacy publishers send no Nats-Msg-Id, and the JetStream scheduler drops it from the messages
    # it produces; the body itself identifies the fact.
    fallback_id = (
        body_event_id("legacy" if spec.legacy else SCHEDULER, subject, body)
        if spec.legacy or SCHEDULER in headers
        else None
    )
    envelope = from_headers(
        headers,
        event_type=spec.event_type,
        schema_version=spec.version,
        aggregate_type=spec.aggregate_type,
        aggregate_id=payload.aggregate_id(),
        received_at=received_at,
        fallback_event_id=fallback_id,
    )
    return Incoming(
        payload=upcast(payload),
        envelope=envelope,
        subject=subject,
        stream_sequence=stream_sequence,
        deliveries=deliveries,
    )


def body_event_id(kind: str, subject: str, body: bytes) -> str:
    """The id of a message that came without one: its body identifies the fact."""
    return deterministic_id(kind, subject, hashlib.sha256(body).hexdigest())


def position(incoming: Incoming) -> str:
    """Where the message sits in the log, `<stream>:<sequence>`: what a state records as the cause of a step,
    so that a redelivery of that same message is recognised."""
    return f"{stream_for_subject(incoming.subject).name}:{incoming.stream_sequence}"


# A stored message's reply subject is `$JS.ACK.<stream>.<consumer>.<delivered>.
# <stream seq>.<consumer seq>.<time ns>.<pending>`, or that with a domain and an account hash after `$JS.ACK`.
_V1_ACK_TOKENS = 9


def stream_of(message: Msg) -> str:
    """The stream that stored the message, from its reply subject."""
    tokens = message.reply.split(".")
    return tokens[2 if len(tokens) == _V1_ACK_TOKENS else 4]


def stored_position(message: Msg) -> tuple[int, dt.datetime]:
    """The stream sequence and the time the stream stored the message.

    The same values as nats-py's `message.metadata`, without building its frozen dataclasses, which
    cost as much as decoding the event.
    """
    tokens = message.reply.split(".")
    offset = 0 if len(tokens) == _V1_ACK_TOKENS else 2
    return int(tokens[5 + offset]), dt.datetime.fromtimestamp(int(tokens[7 + offset]) / 1e9, dt.UTC)
