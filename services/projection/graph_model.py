"""What each event writes into the graph: pure functions from an event to MERGEs.

A property is written by the events of one stream only (ids excepted, which always carry the same value),
and each stream keeps its order, so the final graph does not depend on how the streams interleave: a
rebuild gives the same graph. A node's `expires_at` is its latest event's time plus the retention, the
same whatever order the events come in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from contracts import events as ev
from contracts.envelope import Envelope, format_time
from contracts.queries import DeliberationStatus, failed_status
from services.projection.vocabulary import (
    EdgeWrite,
    GraphWrite,
    Label,
    NodeWrite,
    Rel,
    critique_key,
    plan_key,
    proposal_key,
    revision_key,
    task_key,
)


def _plan_approved(event: ev.PlanApproved, envelope: Envelope) -> list[GraphWrite]:
    plan = plan_key(event.story_id, event.plan_id)
    writes: list[GraphWrite] = [
        NodeWrite(Label.STORY, event.story_id, {"story_id": event.story_id}),
        NodeWrite(Label.PLAN_VERSION, plan, {
            "story_id": event.story_id, "plan_id": event.plan_id, "approved_by": event.approved_by,
            "approved_at": format_time(envelope.occurred_at), "roles": [r.value for r in event.roles],
            "constraints": list(event.constraints), "task_count": len(event.tasks),
        }),
        NodeWrite(Label.ACTOR, event.approved_by, {"name": event.approved_by}),
        EdgeWrite(Label.STORY, event.story_id, Rel.HAS_PLAN, Label.PLAN_VERSION, plan),
        EdgeWrite(Label.ACTOR, event.approved_by, Rel.APPROVED, Label.PLAN_VERSION, plan,
                  {"at": format_time(envelope.occurred_at)}),
    ]
    for position, task in enumerate(event.tasks):
        key = task_key(event.story_id, event.plan_id, task.task_id)
        writes += [
            NodeWrite(Label.TASK, key, {
                "task_id": task.task_id, "story_id": event.story_id, "plan_id": event.plan_id,
                "title": task.title, "description": task.description, "position": position,
            }),
            EdgeWrite(Label.PLAN_VERSION, plan, Rel.HAS_TASK, Label.TASK, key),
        ]
    return writes


def _story_transitioned(event: ev.StoryTransitioned, envelope: Envelope) -> list[GraphWrite]:
    at = format_time(envelope.occurred_at)
    return [
        # The story's state is the last transition's, in the order its one stream keeps.
        NodeWrite(Label.STORY, event.story_id, {"story_id": event.story_id, "state": event.to_state,
                                                 "state_since": at}),
        NodeWrite(Label.TRANSITION, envelope.event_id, {
            "story_id": event.story_id, "from_state": event.from_state, "to_state": event.to_state,
            "by": event.transitioned_by, "reason": event.reason, "at": at,
        }),
        EdgeWrite(Label.STORY, event.story_id, Rel.TRANSITIONED, Label.TRANSITION, envelope.event_id),
    ]


# A plan keeps ingress's latest answer: accepted and rejected are both on ORCHESTRATION, so "latest" is the
# stream's order, and an approval accepted after an earlier one was rejected (or the reverse) replaces it.
def _plan_accepted(event: ev.PlanAccepted, envelope: Envelope) -> list[GraphWrite]:
    return [NodeWrite(Label.PLAN_VERSION, plan_key(event.story_id, event.plan_id), {
        "answer": "accepted", "answered_at": format_time(envelope.occurred_at), "approval_id": event.approval_id,
        "answer_reasons": [], "deliberation_count": len(event.deliberations),
    })]


def _plan_rejected(event: ev.PlanRejected, envelope: Envelope) -> list[GraphWrite]:
    if not (event.story_id and event.plan_id):
        return []  # An approval too broken to name its plan: the dead letter is all there is.
    plan = plan_key(event.story_id, event.plan_id)
    return [
        NodeWrite(Label.STORY, event.story_id, {"story_id": event.story_id}),
        NodeWrite(Label.PLAN_VERSION, plan, {
            "story_id": event.story_id, "plan_id": event.plan_id, "answer": "rejected",
            "answered_at": format_time(envelope.occurred_at), "approval_id": event.approval_id,
            "answer_reasons": list(event.reasons), "deliberation_count": 0,
        }),
        EdgeWrite(Label.STORY, event.story_id, Rel.HAS_PLAN, Label.PLAN_VERSION, plan),
    ]


def _plan_concluded(event: ev.PlanConcluded, envelope: Envelope) -> list[GraphWrite]:
    # The counts only: each outcome is already on its deliberation, and a story's view reads those.
    return [NodeWrite(Label.PLAN_VERSION, plan_key(event.story_id, event.plan_id), {
        "concluded_at": format_time(envelope.occurred_at), "conclusion_revision": event.revision,
        "completed": event.completed, "failed": event.failed,
    })]


def _council_created(event: ev.CouncilCreated, envelope: Envelope) -> list[GraphWrite]:
    council, role = event.council, event.council.role.value
    protocol = council.protocol
    writes: list[GraphWrite] = [
        NodeWrite(Label.COUNCIL, role, {
            "role": role, "active": True, "members": [a.agent_id for a in council.agents],
            "critique_rounds": protocol.critique_rounds, "quorum": protocol.quorum, "top_k": protocol.top_k,
            "phase_deadline_s": protocol.phase_deadline_s,
            "deliberation_deadline_s": protocol.deliberation_deadline_s, "configured_by": event.created_by,
            "configured_at": format_time(envelope.occurred_at),
        }),
    ]
    for agent in council.agents:
        writes += [
            NodeWrite(Label.AGENT, agent.agent_id, {
                "agent_id": agent.agent_id, "role": agent.role.value, "persona": agent.persona,
                "temperature": agent.temperature, "seed": agent.seed, "model": agent.model,
            }),
            EdgeWrite(Label.COUNCIL, role, Rel.HAS_MEMBER, Label.AGENT, agent.agent_id),
        ]
    return writes


def _council_deleted(event: ev.CouncilDeleted, envelope: Envelope) -> list[GraphWrite]:
    return [NodeWrite(Label.COUNCIL, event.role.value, {
        "role": event.role.value, "active": False, "members": [], "configured_by": event.deleted_by,
        "configured_at": format_time(envelope.occurred_at),
    })]


def _deliberation_requested(event: ev.DeliberationRequested, envelope: Envelope) -> list[GraphWrite]:
    ref, attempt = event.deliberation, event.attempt
    task = task_key(ref.story_id, ref.plan_id, ref.task_id)
    writes: list[GraphWrite] = [
        NodeWrite(Label.DELIBERATION, ref.deliberation_id, {
            "deliberation_id": ref.deliberation_id, "story_id": ref.story_id, "plan_id": ref.plan_id,
            "task_id": ref.task_id, "role": ref.role.value, "requested_at": format_time(envelope.occurred_at),
            "architect_id": event.architect.agent_id, "status": DeliberationStatus.PENDING.value,
            "approved_by": event.approved_by, "attempt_number": attempt.number if attempt else 1,
            "first_id": attempt.first_id if attempt else None,
            "previous_id": attempt.previous_id if attempt else None,
            "attempt_requested_by": attempt.requested_by if attempt else None,
            "attempt_reason": attempt.reason if attempt else None,
        }),
        EdgeWrite(Label.TASK, task, Rel.DELIBERATED_IN, Label.DELIBERATION, ref.deliberation_id),
        EdgeWrite(Label.DELIBERATION, ref.deliberation_id, Rel.HELD_BY, Label.COUNCIL, ref.role.value),
    ]
    if attempt is not None:
        writes.append(EdgeWrite(Label.DELIBERATION, attempt.previous_id, Rel.RETRIED_AS, Label.DELIBERATION,
                                ref.deliberation_id))
    return writes


def _cancel_requested(event: ev.DeliberationCancelRequested, envelope: Envelope) -> list[GraphWrite]:
    return [NodeWrite(Label.DELIBERATION, event.deliberation_id, {
        "cancel_requested_by": event.requested_by, "cancel_reason": event.reason,
        "cancel_requested_at": format_time(envelope.occurred_at),
    })]


def _retry_requested(event: ev.DeliberationRetryRequested, envelope: Envelope) -> list[GraphWrite]:
    return [NodeWrite(Label.DELIBERATION, event.deliberation_id, {
        "retry_requested_by": event.requested_by, "retry_reason": event.reason,
        "retry_requested_at": format_time(envelope.occurred_at),
    })]


def _deliberation_started(event: ev.DeliberationStarted, envelope: Envelope) -> list[GraphWrite]:
    return [NodeWrite(Label.DELIBERATION, event.deliberation.deliberation_id, {
        "status": DeliberationStatus.IN_PROGRESS.value, "started_at": format_time(event.started_at),
        "deadline_s": event.council.protocol.deliberation_deadline_s,
        "deadline_at": format_time(ev.overall_deadline(event.started_at, event.council.protocol)),
    })]


def _deliberation_advanced(event: ev.DeliberationAdvanced, envelope: Envelope) -> list[GraphWrite]:
    return [NodeWrite(Label.DELIBERATION, event.deliberation_id, {"phase": event.phase.value, "round": event.round})]


def _deliberation_scored(event: ev.DeliberationScored, envelope: Envelope) -> list[GraphWrite]:
    return [
        NodeWrite(Label.PROPOSAL, proposal_key(event.deliberation_id, score.agent_id), {
            "score": score.score, "qualified": score.qualified, "justification": score.justification,
            "criteria": json.dumps(score.criteria, sort_keys=True), "scoring_error": score.scoring_error,
            "failed_checks": [c.check for c in score.checks if not c.passed],
        })
        for score in event.scores
    ]


def _decision_made(event: ev.DecisionMade, envelope: Envelope) -> list[GraphWrite]:
    winner = proposal_key(event.deliberation_id, event.winner_id)
    writes: list[GraphWrite] = [
        NodeWrite(Label.DECISION, event.deliberation_id, {
            "deliberation_id": event.deliberation_id, "winner_id": event.winner_id, "rationale": event.rationale,
            "decided_by": event.decided_by, "scored_by": event.scored_by.value, "candidates": list(event.candidates),
            "architect_error": event.architect_error, "decided_at": format_time(envelope.occurred_at),
        }),
        EdgeWrite(Label.DELIBERATION, event.deliberation_id, Rel.DECIDED, Label.DECISION, event.deliberation_id),
        EdgeWrite(Label.DECISION, event.deliberation_id, Rel.CHOSE, Label.PROPOSAL, winner),
    ]
    writes += [
        NodeWrite(Label.PROPOSAL, proposal_key(event.deliberation_id, ranked.agent_id), {"rank": ranked.rank})
        for ranked in event.ranking
    ]
    return writes


def _deliberation_completed(event: ev.DeliberationCompleted, envelope: Envelope) -> list[GraphWrite]:
    return [NodeWrite(Label.DELIBERATION, event.deliberation_id, {
        "status": DeliberationStatus.COMPLETED.value, "winner_id": event.winner.agent_id,
        "winner_score": event.winner.score,
        "duration_ms": event.duration_ms, "finished_at": format_time(envelope.occurred_at),
        "failed_agents": list(event.failed_agents),
    })]


def _deliberation_failed(event: ev.DeliberationFailed, envelope: Envelope) -> list[GraphWrite]:
    return [NodeWrite(Label.DELIBERATION, event.deliberation_id, {
        "status": failed_status(event).value, "failed_phase": event.phase.value,
        "reason": event.reason, "duration_ms": event.duration_ms, "finished_at": format_time(envelope.occurred_at),
        "cancelled_by": event.cancelled_by,
    })]


def _turn_completed(event: ev.TurnCompleted, envelope: Envelope) -> list[GraphWrite]:
    deliberation, turn = event.deliberation.deliberation_id, event.turn
    common = {
        "content": event.content, "model": event.model, "temperature": event.temperature, "seed": event.seed,
        "prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
        "latency_ms": event.latency_ms, "context_hash": event.context_hash,
        "written_at": format_time(envelope.occurred_at),
    }
    proposal = proposal_key(deliberation, turn.author_id)
    match turn.phase:
        case ev.Phase.PROPOSE:
            return [
                NodeWrite(Label.PROPOSAL, proposal, {"author_id": turn.author_id, "deliberation_id": deliberation,
                                                     **common}),
                EdgeWrite(Label.DELIBERATION, deliberation, Rel.HAS_PROPOSAL, Label.PROPOSAL, proposal),
                EdgeWrite(Label.AGENT, turn.agent_id, Rel.AUTHORED, Label.PROPOSAL, proposal),
            ]
        case ev.Phase.REVISE:
            revision = revision_key(deliberation, turn.author_id, turn.round)
            return [
                NodeWrite(Label.REVISION, revision, {"author_id": turn.author_id, "round": turn.round, **common}),
                EdgeWrite(Label.PROPOSAL, proposal, Rel.REVISED_AS, Label.REVISION, revision, {"round": turn.round}),
                EdgeWrite(Label.AGENT, turn.agent_id, Rel.AUTHORED, Label.REVISION, revision),
            ]
        case ev.Phase.CRITIQUE:
            critique = critique_key(deliberation, turn.agent_id, turn.author_id, turn.round)
            return [
                NodeWrite(Label.CRITIQUE, critique, {"critic_id": turn.agent_id, "round": turn.round, **common}),
                EdgeWrite(Label.CRITIQUE, critique, Rel.CRITIQUES, Label.PROPOSAL, proposal),
                EdgeWrite(Label.AGENT, turn.agent_id, Rel.AUTHORED, Label.CRITIQUE, critique),
            ]
        case _:
            # Judge and select answers reach the graph through deliberation.scored and decision.made.
            return []


PROJECTORS: dict[type[ev.Event], Callable[[ev.Event, Envelope], list[GraphWrite]]] = {
    ev.PlanApproved: _plan_approved,
    ev.StoryTransitioned: _story_transitioned,
    ev.PlanAccepted: _plan_accepted,
    ev.PlanRejected: _plan_rejected,
    ev.PlanConcluded: _plan_concluded,
    ev.CouncilCreated: _council_created,
    ev.CouncilDeleted: _council_deleted,
    ev.DeliberationRequested: _deliberation_requested,
    ev.DeliberationCancelRequested: _cancel_requested,
    ev.DeliberationRetryRequested: _retry_requested,
    ev.DeliberationStarted: _deliberation_started,
    ev.DeliberationAdvanced: _deliberation_advanced,
    ev.DeliberationScored: _deliberation_scored,
    ev.DecisionMade: _decision_made,
    ev.DeliberationCompleted: _deliberation_completed,
    ev.DeliberationFailed: _deliberation_failed,
    ev.TurnCompleted: _turn_completed,
}


def graph_writes(event: ev.Event, envelope: Envelope) -> list[GraphWrite]:
    """The MERGEs one (upcast) event makes; events the graph does not show make none."""
    projector = PROJECTORS.get(type(event))
    at = envelope.occurred_at.timestamp()
    # Every node an event writes is dated by it, so it expires with the history it belongs to.
    return [replace(write, at=at) for write in projector(event, envelope)] if projector else []
