"""Planning's one handler."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.envelope import deterministic_id
from contracts.events import PlanApproved
from services.councils.directory import CouncilDirectory
from services.mesh.messages import Incoming, Outgoing
from services.planning.domain import request_deliberations


@dataclass(frozen=True)
class PlanningHandlers:
    councils: CouncilDirectory

    async def on_plan_approved(self, incoming: Incoming[PlanApproved]) -> list[Outgoing]:
        councils = await self.councils.councils()
        return [
            Outgoing(request, event_id=deterministic_id("deliberation.requested", request.aggregate_id()))
            for request in request_deliberations(incoming.payload, councils)
        ]
