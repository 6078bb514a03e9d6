"""The agents service's handler, and what giving up on a request publishes."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.events import ProposalRequested
from services.agents.adapters.ray_agents import AgentPool
from services.agents.domain import chat_request, given_up, outcome
from services.mesh.consuming import Incoming
from services.mesh.publishing import Outgoing


@dataclass(frozen=True)
class AgentHandlers:
    pool: AgentPool
    model: str

    async def on_proposal_requested(self, incoming: Incoming[ProposalRequested]) -> list[Outgoing]:
        # LLM errors come back as typed failures. Ray errors (a dead actor, a lost node) raise, so
        # the request is retried while Ray restarts the actor, and given up on after the last try.
        request = incoming.payload
        answer = await self.pool.propose(request.agent.agent_id, chat_request(request, self.model))
        return [outcome(request, answer)]


def on_proposal_request_given_up(incoming: Incoming[ProposalRequested], reason: str) -> list[Outgoing]:
    return [given_up(incoming.payload, reason)]
