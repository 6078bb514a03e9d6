"""Planning's handlers: approvals and story transitions from upstream, and the plans' deliberations."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.envelope import deterministic_id
from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationRequested,
    PlanAccepted,
    PlanApproved,
    StoryTransitioned,
)
from services.councils.directory import CouncilDirectory
from services.mesh.decoding import position
from services.mesh.kv import ConcurrentUpdate, VersionedStore
from services.mesh.messages import Incoming, Outgoing, Refusal
from services.planning.domain import plan_accepted, plan_rejected, request_deliberations
from services.planning.plan_outcomes import (
    PlanEvent,
    PlanOutcomes,
    conclude,
    conclusion,
    conclusion_id,
    evolve,
    plan_key,
    plan_of,
)


@dataclass(frozen=True)
class PlanningHandlers:
    councils: CouncilDirectory

    async def on_plan_approved(self, incoming: Incoming[PlanApproved]) -> list[Outgoing]:
        councils = await self.councils.councils()
        requests = request_deliberations(incoming.payload, councils)
        approval_id = incoming.envelope.event_id
        accepted = plan_accepted(incoming.payload, approval_id, requests)
        # The answer comes after the requests: an upstream that reads it finds every deliberation requested.
        return [
            *(Outgoing(request, event_id=deterministic_id("deliberation.requested", request.aggregate_id()))
              for request in requests),
            Outgoing(accepted, event_id=deterministic_id("plan.accepted", approval_id)),
        ]

    async def on_story_transitioned(self, incoming: Incoming[StoryTransitioned]) -> list[Outgoing]:
        # Decoding has checked it against its contract; the read models record it from the log.
        return []


def on_approval_refused(refusal: Refusal) -> list[Outgoing]:
    """Upstream's answer to an approval given up on, decoded or not, besides the operators' dead letter."""
    rejected = plan_rejected(refusal)
    return [Outgoing(rejected, event_id=deterministic_id("plan.rejected", rejected.approval_id))]


@dataclass(frozen=True)
class PlanOutcomeHandlers:
    store: VersionedStore[PlanOutcomes]

    async def on_plan_accepted(self, incoming: Incoming[PlanAccepted]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def on_deliberation_requested(self, incoming: Incoming[DeliberationRequested]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def on_deliberation_completed(self, incoming: Incoming[DeliberationCompleted]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def on_deliberation_failed(self, incoming: Incoming[DeliberationFailed]) -> list[Outgoing]:
        return await self._apply(incoming)

    async def _apply(self, incoming: Incoming[PlanEvent]) -> list[Outgoing]:
        """Fold the event into its plan, saved before anything is published; conclude when the plan is over."""
        key = plan_key(*plan_of(incoming.payload))
        cause = position(incoming)
        while True:
            state, revision = await self.store.load(key)
            updated, concluded = conclude(evolve(state, incoming.payload), cause)
            if updated == state:
                # Nothing new, unless this is a redelivery of the message that concluded the plan.
                concluded = conclusion(state) if state.concluded_by == cause else None
                break
            try:
                await self.store.save(key, updated, revision)
            except ConcurrentUpdate:
                continue  # another event of the same plan landed first
            break
        return [Outgoing(concluded, event_id=conclusion_id(concluded))] if concluded else []
