"""Dispatch's one handler."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from contracts.events import DeliberationRequested
from services.dispatch.domain import Claim, CouncilPolicy, claim_for, start
from services.mesh.consuming import Incoming
from services.mesh.kv import VersionedStore
from services.mesh.publishing import Clock, Outgoing

log = logging.getLogger("fleet.dispatch")


@dataclass(frozen=True)
class DispatchHandlers:
    claims: VersionedStore[Claim]
    policy: CouncilPolicy
    clock: Clock

    async def on_deliberation_requested(self, incoming: Incoming[DeliberationRequested]) -> list[Outgoing]:
        request = incoming.payload
        deliberation_id = request.deliberation.deliberation_id
        mine = claim_for(incoming.envelope.event_id, request.deliberation.role, self.policy, self.clock())
        claim = await self.claims.create_or_get(deliberation_id, mine)
        if claim.event_id != incoming.envelope.event_id:
            log.info(
                "deliberation %s already started by event %s; duplicate request %s ignored",
                deliberation_id, claim.event_id, incoming.envelope.event_id,
            )
            return []
        # A redelivery of the claiming event re-publishes the same events; JetStream de-duplicates.
        return start(request, claim, self.policy)
