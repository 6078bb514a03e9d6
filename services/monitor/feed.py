"""The monitor's readers: every stream at once, and JetStream's own view of consumers and dead letters."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from nats.js import JetStreamContext

from contracts import catalog
from contracts.envelope import format_time
from contracts.errors import ContractViolation
from services.mesh.decoding import decode_incoming, stored_position, stream_of
from services.mesh.log_reader import FIRST, Reading, Start, follow
from services.monitor.domain import MonitorState, Source
from streams.definitions import CONFIG, CONSUMERS, DEAD_LETTERS, STREAMS

log = logging.getLogger("fleet.monitor")

# On start, the page shows what happened this long ago and since; councils are read from the start.
LOOK_BACK = dt.timedelta(hours=1)
POLL_EVERY_S = 3.0


async def follow_streams(js: JetStreamContext, state: MonitorState, changed: Callable[[], None]) -> None:
    """Every stream at once, each in order; each event folds into the state as it is stored."""
    since = Start(time=dt.datetime.now(dt.UTC) - LOOK_BACK)
    readings = [Reading(stream.name, start=FIRST if stream is CONFIG else since) for stream in STREAMS]
    log.info("monitor follows %s", ", ".join(s.name for s in STREAMS))
    async for message in follow(js, readings):
        sequence, stored_at = stored_position(message)
        try:
            incoming = decode_incoming(message.subject, message.headers or {}, message.data, received_at=stored_at,
                                       stream_sequence=sequence, deliveries=1)
        except ContractViolation:
            continue  # schedules and rejected input: not shown; the dead-letter count says what was rejected
        if state.apply(incoming.payload, incoming.envelope, message.subject, stream_of(message), sequence):
            changed()


async def poll_jetstream(js: JetStreamContext, state: MonitorState, changed: Callable[[], None]) -> None:
    """Consumer lag and redeliveries, and the dead-letter count, every few seconds, or why not."""
    while True:
        consumers, dead_letters = await _read_consumers(js), await _read_dead_letters(js)
        # Both at once: a page never shows one reading of this round beside one of the last.
        state.consumers, state.dead_letters = consumers, dead_letters
        changed()
        await asyncio.sleep(POLL_EVERY_S)


async def _read_consumers(js: JetStreamContext) -> Source:
    now = format_time(dt.datetime.now(dt.UTC))
    try:
        consumers = []
        for spec in CONSUMERS:
            info = await js.consumer_info(spec.stream, spec.durable)
            consumers.append({"stream": spec.stream, "durable": spec.durable, "service": spec.service,
                              "pending": info.num_pending or 0, "ack_pending": info.num_ack_pending or 0,
                              "redelivered": info.num_redelivered or 0})
    except Exception as exc:  # noqa: BLE001 - shown on the page as the reason it is unavailable
        return Source(unavailable=f"{type(exc).__name__}: {exc}", read_at=now)
    return Source(value=consumers, unavailable=None, read_at=now)


async def _read_dead_letters(js: JetStreamContext) -> Source:
    now = format_time(dt.datetime.now(dt.UTC))
    try:
        info = await js.stream_info(DEAD_LETTERS.name, subjects_filter=catalog.MESSAGE_REJECTED.subject)
    except Exception as exc:  # noqa: BLE001 - as above
        return Source(unavailable=f"{type(exc).__name__}: {exc}", read_at=now)
    subjects = info.state.subjects or {}
    return Source(value={"total": subjects.get(catalog.MESSAGE_REJECTED.subject, 0)}, unavailable=None, read_at=now)
