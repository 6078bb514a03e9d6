"""The agents service's one handler."""

from __future__ import annotations

from dataclasses import dataclass

from ray.exceptions import RayError

from contracts.events import ProposalRequested
from services.agents.adapters.ray_agents import AgentPool
from services.agents.domain import LlmFailure, chat_request, outcome
from services.mesh.consuming import Incoming
from services.mesh.publishing import Outgoing


@dataclass(frozen=True)
class AgentHandlers:
    pool: AgentPool
    model: str
    max_deliveries: int

    async def on_proposal_requested(self, incoming: Incoming[ProposalRequested]) -> list[Outgoing]:
        request = incoming.payload
        try:
            answer = await self.pool.propose(request.agent.agent_id, chat_request(request, self.model))
        except RayError as exc:
            if incoming.deliveries < self.max_deliveries:
                raise  # retried with backoff: Ray restarts the actor meanwhile
            answer = LlmFailure(error_class=type(exc).__name__, message=str(exc)[:2000])
        return [outcome(request, answer)]
