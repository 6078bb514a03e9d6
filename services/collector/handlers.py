"""The collector's handlers: every deliberation event goes through the aggregate's `step`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from contracts.events import (
    DeadlinePassed,
    DeliberationCancelRequested,
    DeliberationRetryRequested,
    DeliberationStarted,
    TurnCompleted,
    TurnFailed,
)
from services.collector.domain import (
    Deliberation,
    DeliberationEvent,
    ended_phase,
    outcome_of,
    step,
    too_large_to_store,
)
from services.mesh.decoding import position
from services.mesh.kv import ConcurrentUpdate, VersionedStore
from services.mesh.messages import Clock, Incoming, Outgoing
from services.mesh.metrics import DELIBERATIONS, PHASE_SECONDS, SCORED_BY
from services.mesh.outbox import Parcel, pack, unpack
from streams.definitions import MiB

log = logging.getLogger("fleet.collector")

# The largest record the collector saves. A KV value is one message, and NATS's max_payload (1 MiB,
# k8s/base/nats/nats.conf; every stream's max_msg_size) bounds its headers and body together. A
# compare-and-set write adds one short header (the expected revision): 4 KiB leaves it room many times over.
RECORD_MAX_BYTES = MiB - 4 * 1024


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """The stored aggregate, with what each message that changed it must publish, until it is published.

    Outboxes are kept per causing message (`<stream>:<sequence>`): if the service dies after saving
    but before publishing, the redelivered message finds its own outbox even when other messages
    changed the deliberation since. Once the consumer has published a message's events, `forget_outbox`
    removes its outbox, so a record holds only the outboxes of messages still being handled. Turn
    requests are kept without their brief, which the state holds once.
    """

    deliberation: Deliberation
    outboxes: dict[str, list[Parcel]] = {}


type CancelSchedule = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class CollectorHandlers:
    store: VersionedStore[Record]
    cancel_schedule: CancelSchedule
    clock: Clock

    async def on_deliberation_started(self, incoming: Incoming[DeliberationStarted]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def on_deadline_passed(self, incoming: Incoming[DeadlinePassed]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def on_turn_completed(self, incoming: Incoming[TurnCompleted]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def on_turn_failed(self, incoming: Incoming[TurnFailed]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def on_deliberation_cancel_requested(
        self, incoming: Incoming[DeliberationCancelRequested]
    ) -> list[Outgoing]:
        return await self._apply(incoming)

    async def on_deliberation_retry_requested(self, incoming: Incoming[DeliberationRetryRequested]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def forget_outbox(self, incoming: Incoming[DeliberationEvent]) -> None:
        """The message's events are published: its outbox has served, and goes (compare-and-set)."""
        key, cause = incoming.payload.aggregate_id(), position(incoming)
        while True:
            record, revision = await self.store.load(key)
            if record is None or cause not in record.outboxes:
                return
            outboxes = {other: parcels for other, parcels in record.outboxes.items() if other != cause}
            try:
                await self.store.save(key, msgspec.structs.replace(record, outboxes=outboxes), revision)
                return
            except ConcurrentUpdate:
                continue

    async def _apply(self, incoming: Incoming[DeliberationEvent]) -> list[Outgoing]:
        key, cause = incoming.payload.aggregate_id(), position(incoming)
        while True:
            record, revision = await self.store.load(key)
            state = record.deliberation if record else None
            now = self.clock()
            updated, outgoing = step(state, incoming.payload, now)
            if updated == state:
                return await self._repeat(key, cause, record, incoming.payload)
            outboxes = dict(record.outboxes) if record else {}
            if outgoing:
                outboxes[cause] = [pack(o, updated.brief) for o in outgoing]
            size = len(msgspec.json.encode(Record(deliberation=updated, outboxes=outboxes)))
            if size > RECORD_MAX_BYTES and state is not None and not state.finished:
                # NATS would refuse the save on every redelivery: end the deliberation, from the state
                # before this event (which was stored), with a failure that fits.
                updated, outgoing = too_large_to_store(state, size, RECORD_MAX_BYTES, now)
                outboxes = {**(record.outboxes if record else {}), cause: [pack(o, updated.brief) for o in outgoing]}
            try:
                await self.store.save(key, Record(deliberation=updated, outboxes=outboxes), revision)
            except ConcurrentUpdate:
                continue  # another event of the same deliberation landed first
            break
        _observe(state, updated, now)
        if updated.finished and not (state and state.finished):
            # The pending deadline can never matter now; remove it so the log shows no stale timer.
            await self.cancel_schedule(key)
            log.info("deliberation %s finished: %s", key, outcome_of(updated))
        if updated.retried_as and not (state and state.retried_as):
            log.info("deliberation %s retried as %s by %s", key, updated.retried_as,
                     updated.retry_request.requested_by if updated.retry_request else "?")
        return outgoing

    async def _repeat(self, key: str, cause: str, record: Record | None, event: DeliberationEvent) -> list[Outgoing]:
        """Nothing new, unless this is a redelivery of a message whose events may not all be published."""
        state = record.deliberation if record else None
        stored = record.outboxes.get(cause, []) if record else []
        if stored and state is not None and state.finished:
            await self.cancel_schedule(key)  # the first delivery may have died before removing it
        if not stored and isinstance(event, DeliberationCancelRequested) and state is not None:
            log.info("deliberation %s had already ended (%s); the cancel by %s changes nothing",
                     key, outcome_of(state), event.requested_by)
        return [unpack(parcel, state.brief if state else None) for parcel in stored]


def _observe(before: Deliberation | None, after: Deliberation, now) -> None:
    """Metrics of a step that was stored: a redelivery that changes nothing observes nothing."""
    role = after.ref.role.value
    if (ended := ended_phase(before, after, now)) is not None:
        PHASE_SECONDS.labels(role, ended[0].value).observe(ended[1])
    if after.finished and not (before and before.finished):
        DELIBERATIONS.labels(role, outcome_of(after)).inc()
        if after.completed is not None:
            SCORED_BY.labels(role, after.completed.scored_by).inc()
