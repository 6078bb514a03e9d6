"""Dispatch's one handler."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from contracts.events import DeliberationRequested
from services.dispatch.domain import Claim, start
from services.mesh.kv import VersionedStore
from services.mesh.messages import Clock, Incoming, Outgoing

log = logging.getLogger("fleet.dispatch")


@dataclass(frozen=True)
class DispatchHandlers:
    claims: VersionedStore[Claim]
    clock: Clock

    async def on_deliberation_requested(self, incoming: Incoming[DeliberationRequested]) -> list[Outgoing]:
        request = incoming.payload
        deliberation_id = request.deliberation.deliberation_id
        mine = Claim(request_sequence=incoming.stream_sequence, started_at=self.clock())
        claim = await self.claims.create_or_get(deliberation_id, mine)
        if claim.request_sequence != incoming.stream_sequence:
            log.info(
                "deliberation %s was started by the request at sequence %s; the copy at %s is ignored",
                deliberation_id, claim.request_sequence, incoming.stream_sequence,
            )
            return []
        # Only a redelivery of the claiming message gets here again. It re-publishes the same
        # event with the same id, which JetStream de-duplicates.
        return [start(request, claim)]
