"""The context of a turn, asked of the projection service over NATS request/reply."""

from __future__ import annotations

import logging

from nats.aio.client import Client

from contracts.events import TurnRequested
from contracts.queries import AGENT_CONTEXT, GetAgentContext
from services.agents.handlers import ContextSource
from services.agents.outcomes import GivenContext
from services.mesh.queries import QueryFailed, ask

log = logging.getLogger("fleet.agents.context")


def read_model_context(client: Client, timeout_s: float) -> ContextSource:
    async def fetch(request: TurnRequested) -> GivenContext:
        query = GetAgentContext(deliberation=request.deliberation, role=request.agent.role, phase=request.turn.phase)
        try:
            reply = await ask(client, AGENT_CONTEXT, query, timeout_s=timeout_s)
        except QueryFailed as exc:
            # The turn goes on without a context, and its outcome event says why: read models help an
            # agent, they must not stop a deliberation.
            log.warning("no context for %s %s: %s", request.deliberation.deliberation_id, request.turn.key, exc)
            return GivenContext(error=f"{exc.status}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a broken connection or a reply we cannot read: same rule
            log.warning("no context for %s %s: %s", request.deliberation.deliberation_id, request.turn.key, exc)
            return GivenContext(error=f"{type(exc).__name__}: {exc}")
        return GivenContext(text=reply.text, context_hash=reply.context_hash)

    return fetch
