"""Planning's one handler."""

from __future__ import annotations

from contracts.envelope import deterministic_id
from contracts.events import PlanApproved
from services.mesh.consuming import Incoming
from services.mesh.publishing import Outgoing
from services.planning.domain import request_deliberations


async def on_plan_approved(incoming: Incoming[PlanApproved]) -> list[Outgoing]:
    return [
        Outgoing(request, event_id=deterministic_id("deliberation.requested", request.aggregate_id()))
        for request in request_deliberations(incoming.payload)
    ]
