"""The projection's pure part: a batch of stored messages becomes the writes a read model makes.

No I/O here: the projector (projector.py) reads the stream and writes the store around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts import catalog
from contracts.envelope import SCHEDULE as SCHEDULE_HEADER
from contracts.envelope import Envelope
from contracts.errors import ContractViolation
from contracts.events import Event
from services.mesh.deadletters import DeadLetter
from services.mesh.decoding import decode_incoming, stored_position
from streams.definitions import PLANNING_APPROVALS
from streams.subjects import subject_matches

if TYPE_CHECKING:
    from nats.aio.msg import Msg

log = logging.getLogger("fleet.projection")

type ToWrites[W] = Callable[[Event, Envelope], list[W]]


@dataclass(frozen=True)
class Folded[W]:
    writes: list[W]
    last_sequence: int
    rejected: list[tuple[DeadLetter, str]]
    applied_events: int


def letter_for(message: Msg, projection: str) -> DeadLetter:
    meta = message.metadata
    return DeadLetter(
        service=catalog.PROJECTION, consumer=f"projection-{projection}", stream=meta.stream,
        stream_sequence=meta.sequence.stream, deliveries=1, subject=message.subject,
        headers=dict(message.headers or {}), body=message.data,
    )


def fold[W](messages: Sequence[Msg], to_writes: ToWrites[W], projection: str) -> Folded[W]:
    """The writes a batch of stored messages makes, and the messages that break their contract.

    Schedules are skipped: they are timers held in the stream, not events. Ingress that breaks its
    contract, or comes on a subject no event has, is skipped too: the planning service's durable takes
    every ingress subject and dead-letters what it cannot take, once for the mesh.
    """
    writes: list[W] = []
    rejected: list[tuple[DeadLetter, str]] = []
    applied = 0
    for message in messages:
        headers = message.headers or {}
        if SCHEDULE_HEADER in headers:
            continue
        sequence, stored_at = stored_position(message)
        try:
            incoming = decode_incoming(
                message.subject, headers, message.data, received_at=stored_at, stream_sequence=sequence,
                deliveries=1,
            )
        except ContractViolation as exc:
            if _is_ingress(message.subject):
                log.info("%s seq=%s skipped: %s (planning dead-letters ingress)", message.subject, sequence, exc)
            else:
                rejected.append((letter_for(message, projection), str(exc)))
            continue
        try:
            writes += to_writes(incoming.payload, incoming.envelope)
        except Exception as exc:  # noqa: BLE001 - one event the model cannot take must not stop the stream
            log.exception("%s seq=%s: the %s model cannot take it", message.subject, sequence, projection)
            rejected.append((letter_for(message, projection), f"{type(exc).__name__}: {exc}"))
            continue
        applied += 1
    return Folded(writes, stored_position(messages[-1])[0] if messages else 0, rejected, applied)


def _is_ingress(subject: str) -> bool:
    return any(subject_matches(owned, subject) for owned in PLANNING_APPROVALS.filter_subjects)
