"""The monitor's readers: every stream at once, and JetStream's own view of consumers and dead letters."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts import catalog
from contracts.envelope import format_time
from contracts.errors import ContractViolation
from services.mesh.consuming import decode_incoming
from services.monitor.domain import MonitorState, Source
from streams.definitions import CONFIG, CONSUMERS, DEAD_LETTERS, STREAMS

log = logging.getLogger("fleet.monitor")

# On start, the page shows what happened this long ago and since; councils are read from the start.
LOOK_BACK = dt.timedelta(hours=1)
POLL_EVERY_S = 3.0


async def follow_streams(js: JetStreamContext, state: MonitorState, changed: Callable[[], None]) -> None:
    """One ordered consumer per stream, all at once; each event folds into the state as it is stored."""

    async def take(message: Msg) -> None:
        meta = message.metadata
        try:
            incoming = decode_incoming(message.subject, dict(message.headers or {}), message.data,
                                       received_at=meta.timestamp, stream_sequence=meta.sequence.stream,
                                       deliveries=1)
        except ContractViolation:
            return  # schedules and rejected input: not shown; the dead-letter count says what was rejected
        if state.apply(incoming.payload, incoming.envelope, message.subject, meta.stream, meta.sequence.stream):
            changed()

    since = dt.datetime.now(dt.UTC) - LOOK_BACK
    subscriptions = []
    try:
        for stream in STREAMS:
            config = (ConsumerConfig(deliver_policy=DeliverPolicy.ALL) if stream is CONFIG else
                      ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since.isoformat()))
            subscriptions.append(await js.subscribe(stream.subjects[0], stream=stream.name, ordered_consumer=True,
                                                    config=config, cb=take, inactive_threshold=60.0))
        log.info("monitor follows %s", ", ".join(s.name for s in STREAMS))
        await asyncio.Event().wait()
    finally:
        for subscription in subscriptions:
            await subscription.unsubscribe()


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
