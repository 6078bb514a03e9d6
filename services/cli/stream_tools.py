"""Reading the event log as an operator: tail, replay, trace a causal chain, and stream status.

The pure part (what an event says, which streams a filter reaches, a chain as a tree) comes first;
the readers below it are thin: ordered consumers that declare nothing durable.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts.envelope import (
    AGGREGATE_ID,
    CAUSATION_ID,
    CORRELATION_ID,
    MSG_ID,
    OCCURRED_AT,
    SCHEDULE,
    TRACEPARENT,
)
from contracts.errors import ContractViolation
from services.mesh.decoding import decode_incoming, stored_position, stream_of
from services.mesh.log_reader import NEW, Reading, Start, follow, read_to_end
from streams.definitions import CONSUMERS, STREAMS, StreamSpec, covers_stream, streams_for

# --- what one stored message says ---------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    stream: str
    sequence: int
    subject: str
    stored_at: dt.datetime
    headers: dict[str, str]
    data: bytes

    @property
    def event_id(self) -> str:
        return self.headers.get(MSG_ID) or f"{self.stream}:{self.sequence}"

    @property
    def causation_id(self) -> str:
        return self.headers.get(CAUSATION_ID) or self.event_id

    @property
    def correlation_id(self) -> str:
        return self.headers.get(CORRELATION_ID) or self.event_id

    @property
    def occurred_at(self) -> dt.datetime:
        try:
            return dt.datetime.fromisoformat(self.headers[OCCURRED_AT])
        except (KeyError, ValueError):
            return self.stored_at

    @property
    def trace_id(self) -> str | None:
        parts = self.headers.get(TRACEPARENT, "").split("-")
        return parts[1] if len(parts) == 4 else None

    @property
    def is_schedule(self) -> bool:
        return SCHEDULE in self.headers


def stored_event(message: Msg) -> StoredEvent:
    sequence, stored_at = stored_position(message)
    return StoredEvent(stream=stream_of(message), sequence=sequence, subject=message.subject, stored_at=stored_at,
                       headers=dict(message.headers or {}), data=message.data)


def body_of(event: StoredEvent) -> object:
    """The payload as the services read it (decoded by its contract, upcast), else as JSON, else as text."""
    try:
        incoming = decode_incoming(event.subject, event.headers, event.data, received_at=event.stored_at,
                                   stream_sequence=event.sequence, deliveries=1)
        return msgspec.to_builtins(incoming.payload)
    except ContractViolation:
        pass  # an operator looks at broken input too: show what was stored
    try:
        return json.loads(event.data)
    except (ValueError, UnicodeDecodeError):
        return event.data.decode("utf-8", errors="replace")


def as_record(event: StoredEvent) -> dict:
    """One event as a JSON-ready object: what `--json` prints, a line each."""
    return {
        "stream": event.stream, "seq": event.sequence, "subject": event.subject,
        "stored_at": event.stored_at.isoformat(), "headers": event.headers, "body": body_of(event),
    }


def one_line(event: StoredEvent) -> str:
    body = json.dumps(body_of(event), default=str, separators=(",", ":"))
    kind = " (schedule)" if event.is_schedule else ""
    return (f"{event.stored_at:%H:%M:%S.%f}"[:-3] + f" {event.stream}#{event.sequence} {event.subject}{kind} "
            f"id={event.event_id} corr={event.correlation_id} {body[:400]}")


# --- when to start and stop ----------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_moment(text: str, now: dt.datetime) -> dt.datetime:
    """An ISO-8601 time (UTC if no offset) or an age such as `90s`, `15m`, `2h`, `1d`."""
    if match := _RELATIVE.match(text.strip()):
        return now - dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO-8601 time nor an age like 15m, 2h or 1d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Until:
    sequence: int | None = None
    moment: dt.datetime | None = None

    @classmethod
    def parse(cls, text: str | None, now: dt.datetime) -> Until:
        if text is None:
            return cls()
        return cls(sequence=int(text)) if text.isdigit() else cls(moment=parse_moment(text, now))

    def passed(self, event: StoredEvent) -> bool:
        return (self.sequence is not None and event.sequence > self.sequence) or (
            self.moment is not None and event.stored_at > self.moment)


# --- a causal chain as a tree --------------------------------------------------------------------


def chain_of(events: Iterable[StoredEvent], ident: str) -> list[StoredEvent]:
    """Events whose correlation or aggregate id is `ident`, widened to every event of their chains."""
    events = list(events)
    correlations = {e.correlation_id for e in events if ident in (e.correlation_id, e.headers.get(AGGREGATE_ID))}
    chain = [e for e in events if e.correlation_id in correlations]
    return sorted(chain, key=lambda e: (e.occurred_at, e.stream, e.sequence))


def causal_tree(chain: Sequence[StoredEvent]) -> list[tuple[int, StoredEvent]]:
    """Depth-first (depth, event) pairs: each event under the one that caused it, in time order.

    An event whose cause is not in the chain (or is itself) is a root. Each event is shown once,
    so a malformed chain with a cycle still ends.
    """
    ids = {e.event_id for e in chain}
    children: dict[str, list[StoredEvent]] = {}
    roots = []
    for event in chain:
        if event.causation_id == event.event_id or event.causation_id not in ids:
            roots.append(event)
        else:
            children.setdefault(event.causation_id, []).append(event)
    shown: set[tuple[str, int]] = set()
    rows: list[tuple[int, StoredEvent]] = []

    def visit(event: StoredEvent, depth: int) -> None:
        if (event.stream, event.sequence) in shown:
            return
        shown.add((event.stream, event.sequence))
        rows.append((depth, event))
        for child in children.get(event.event_id, []):
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    for event in chain:  # anything only reachable through a cycle
        visit(event, 0)
    return rows


def trace_rows(chain: Sequence[StoredEvent]) -> list[dict]:
    """The tree with offsets from the first event and the time each hop took after its cause."""
    if not chain:
        return []
    start = min(e.occurred_at for e in chain)
    by_id = {e.event_id: e for e in chain}
    rows = []
    for depth, event in causal_tree(chain):
        cause = by_id.get(event.causation_id)
        hop = (event.occurred_at - cause.occurred_at) if cause is not None and cause is not event else None
        rows.append({
            "depth": depth, "subject": event.subject, "stream": event.stream, "seq": event.sequence,
            "event_id": event.event_id, "producer": event.headers.get("Fleet-Producer", "?"),
            "aggregate_id": event.headers.get(AGGREGATE_ID, ""),
            "offset_ms": round((event.occurred_at - start).total_seconds() * 1000),
            "hop_ms": None if hop is None else round(hop.total_seconds() * 1000),
        })
    return rows


# --- streams and consumers -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerStatus:
    stream: str
    name: str
    pending: int
    ack_pending: int
    redelivered: int
    last_active: dt.datetime | None
    declared: bool
    present: bool = True


def missing_durables(present: set[tuple[str, str]]) -> list[ConsumerStatus]:
    """Durables declared in streams/ that the server does not have: `fleet streams apply` creates them."""
    return [
        ConsumerStatus(spec.stream, spec.durable, 0, 0, 0, None, declared=True, present=False)
        for spec in CONSUMERS if (spec.stream, spec.durable) not in present
    ]


# --- the readers (NATS) --------------------------------------------------------------------------


async def read_events(
    js: JetStreamContext, stream: str, *, subject: str = ">", start_sequence: int | None = None,
    start_time: dt.datetime | None = None, until: Until = Until(),
) -> AsyncIterator[StoredEvent]:
    """The stored events of one stream in order, from a sequence or a time, to the end or `until`."""
    start = Start(time=start_time) if start_time is not None else Start(sequence=start_sequence or 1)
    async for message in read_to_end(js, Reading(stream, subject, start)):
        event = stored_event(message)
        if until.passed(event):
            return
        yield event


async def read_all(js: JetStreamContext, streams: Sequence[StreamSpec] = STREAMS) -> list[StoredEvent]:
    events = []
    for stream in streams:
        events += [event async for event in read_events(js, stream.name)]
    return events


async def follow_events(js: JetStreamContext, subject_filter: str, last: int = 0) -> AsyncIterator[StoredEvent]:
    """New events on every stream the filter reaches, as they are stored (after the last `last` of each)."""
    readings = []
    for stream in streams_for(subject_filter):
        state = (await js.stream_info(stream.name)).state
        start = (Start(sequence=await _start_of_last(js, stream, subject_filter, last, state))
                 if last and state.messages else NEW)
        readings.append(Reading(stream.name, subject_filter, start))
    async for message in follow(js, readings):
        yield stored_event(message)


async def _start_of_last(js: JetStreamContext, stream: StreamSpec, subject_filter: str, last: int, state) -> int:
    """The sequence from which the stream holds exactly its last `last` messages matching the filter."""
    first = max(state.first_seq, 1)
    if covers_stream(subject_filter, stream):
        return max(state.last_seq - last + 1, first)

    async def matching_from(sequence: int) -> int:
        # A consumer counts what it has pending when it is made: ask one, then drop it.
        info = await js.add_consumer(stream.name, ConsumerConfig(
            filter_subject=subject_filter, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=sequence,
            inactive_threshold=30.0, mem_storage=True))
        await js.delete_consumer(stream.name, info.name)
        return info.num_pending or 0

    low, high = first, state.last_seq  # the latest start from which at least `last` still match
    if await matching_from(low) <= last:
        return low
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if await matching_from(middle) >= last else (low, middle - 1)
    return low


async def consumer_statuses(js: JetStreamContext) -> tuple[list, list[ConsumerStatus]]:
    """Every stream on the server, and every consumer of each, with the declared ones that are missing."""
    declared = {(spec.stream, spec.durable) for spec in CONSUMERS}
    streams = await js.streams_info()
    statuses, present = [], set()
    for stream in streams:
        for info in await js.consumers_info(stream.config.name):
            name = info.name
            present.add((stream.config.name, name))
            statuses.append(ConsumerStatus(
                stream=stream.config.name, name=name, pending=info.num_pending or 0,
                ack_pending=info.num_ack_pending or 0, redelivered=info.num_redelivered or 0,
                last_active=_last_active(info), declared=(stream.config.name, name) in declared,
            ))
    return streams, statuses + missing_durables(present)


def _last_active(info) -> dt.datetime | None:
    delivered = getattr(info, "delivered", None)
    raw = getattr(delivered, "last_active", None) if delivered else None
    if not raw:
        return None
    try:
        return dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
