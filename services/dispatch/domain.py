"""Council selection and the start of a deliberation. Pure: no I/O."""

from __future__ import annotations

import datetime as dt

import msgspec

from contracts.envelope import deterministic_id
from contracts.events import (
    AgentProfile,
    DeliberationRequested,
    DeliberationStarted,
    ProposalRequested,
    Role,
)
from services.mesh.publishing import Outgoing


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """Which stored request started a deliberation, when, and with which council.

    The request is identified by its stream sequence, not its event id: a re-published approval
    yields a request with the same deterministic event id, but it is stored as a new message.
    """

    request_sequence: int
    started_at: dt.datetime
    council: list[str]


class CouncilPolicy(msgspec.Struct, frozen=True, kw_only=True):
    size: int = 3
    temperature: float = 0.7
    max_tokens: int = 2048


def council_for(role: Role, size: int) -> list[str]:
    """Agent ids of a role's council: `dev-1`, `dev-2`, ..."""
    return [f"{role.value.lower()}-{index}" for index in range(1, size + 1)]


def claim_for(request_sequence: int, role: Role, policy: CouncilPolicy, now: dt.datetime) -> Claim:
    return Claim(request_sequence=request_sequence, started_at=now, council=council_for(role, policy.size))


def start(request: DeliberationRequested, claim: Claim, policy: CouncilPolicy) -> list[Outgoing]:
    """The events that start a deliberation, identical on every redelivery of the same claim."""
    ref = request.deliberation
    started = DeliberationStarted(deliberation=ref, council=claim.council, started_at=claim.started_at)
    outgoing = [Outgoing(started, event_id=deterministic_id("deliberation.started", ref.deliberation_id))]
    for agent_id in claim.council:
        proposal = ProposalRequested(
            deliberation=ref,
            agent=AgentProfile(
                agent_id=agent_id,
                role=ref.role,
                temperature=policy.temperature,
                max_tokens=policy.max_tokens,
            ),
            council=claim.council,
            task=request.task,
            rubric=request.rubric,
            constraints=request.constraints,
            started_at=claim.started_at,
        )
        event_id = deterministic_id("proposal.requested", ref.deliberation_id, agent_id)
        outgoing.append(Outgoing(proposal, event_id=event_id))
    return outgoing
