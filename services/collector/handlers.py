"""The collector's handlers: one per outcome event."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.envelope import deterministic_id
from contracts.events import ProposalCompleted, ProposalFailed
from services.collector.domain import Collected, ProposalOutcome, record
from services.mesh.consuming import Incoming
from services.mesh.kv import ConcurrentUpdate, VersionedStore
from services.mesh.publishing import Clock, Outgoing


@dataclass(frozen=True)
class CollectorHandlers:
    store: VersionedStore[Collected]
    clock: Clock

    async def on_proposal_completed(self, incoming: Incoming[ProposalCompleted]) -> list[Outgoing]:
        return await self._collect(incoming.payload, incoming.stream_sequence)

    async def on_proposal_failed(self, incoming: Incoming[ProposalFailed]) -> list[Outgoing]:
        return await self._collect(incoming.payload, incoming.stream_sequence)

    async def _collect(self, event: ProposalOutcome, sequence: int) -> list[Outgoing]:
        key = event.deliberation.deliberation_id
        while True:
            state, revision = await self.store.load(key)
            updated = record(state, event, sequence, self.clock())
            if updated != state:
                try:
                    await self.store.save(key, updated, revision)
                except ConcurrentUpdate:
                    continue  # another outcome of the same deliberation landed first
            break
        # The result is stored before it is published. If we die in between, the message that
        # caused it is redelivered and publishes it again; JetStream drops the duplicate.
        if updated.result is None or updated.result_caused_by != sequence:
            return []
        return [Outgoing(updated.result, event_id=deterministic_id("deliberation.result", key))]
