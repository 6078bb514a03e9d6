"""When a plan is over: its deliberations folded slot by slot, concluded once every slot's latest attempt ended.

Pure: no I/O. A slot is one (task, role) of the accepted plan; a retry is a new attempt in the same slot, and
the plan concludes again (the next revision) when that attempt ends. The events may come in any order: a
result stored before the plan's acceptance waits in the state until the acceptance names its slot.
"""

from __future__ import annotations

import msgspec

from contracts.envelope import deterministic_id
from contracts.events import (
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationOutcome,
    DeliberationRequested,
    Outcome,
    PlanAccepted,
    PlanConcluded,
)

type PlanEvent = PlanAccepted | DeliberationRequested | DeliberationCompleted | DeliberationFailed

# A plan may have 500 slots (100 tasks x 5 roles, ids of 256 characters): failure reasons are cut so that
# its conclusion, and its state after a retry of every slot, fit in a message (at the worst, 340 and 810 KiB;
# each further attempt adds at most 0.6 KiB). The whole reason stays in the deliberation's DeliberationFailed.
MAX_OUTCOME_REASON_CHARS = 300


class SlotAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """The latest attempt at one slot: the first is 1, a retry's is its Attempt.number."""

    deliberation_id: str
    number: int = 1


class PlanOutcomes(msgspec.Struct, frozen=True, kw_only=True):
    story_id: str
    plan_id: str
    # The slots of the accepted plan, in its order, each named by its first attempt's deliberation id
    # (a retry's Attempt.first_id); empty until the plan's acceptance is seen.
    slots: list[str] = []
    latest: dict[str, SlotAttempt] = {}
    # How each attempt ended, by deliberation id; the first result of an attempt is its result.
    ended: dict[str, DeliberationOutcome] = {}
    # The last conclusion: its revision, the attempts it reported, and the message that caused it, so a
    # redelivery of that message publishes it again (the service may have died before publishing).
    revision: int = 0
    concluded: list[str] = []
    concluded_by: str = ""

    @property
    def accepted(self) -> bool:
        return bool(self.slots)


def plan_key(story_id: str, plan_id: str) -> str:
    """The plan's key in the bucket: ids are upstream's words, which a KV key may not hold."""
    return deterministic_id("plan", story_id, plan_id)


def plan_of(event: PlanEvent) -> tuple[str, str]:
    """(story_id, plan_id) of the plan an event belongs to."""
    if isinstance(event, DeliberationRequested):
        return event.deliberation.story_id, event.deliberation.plan_id
    return event.story_id, event.plan_id


def outcome_of(result: DeliberationCompleted | DeliberationFailed) -> DeliberationOutcome:
    """How one deliberation ended, as a plan's conclusion reports it."""
    if isinstance(result, DeliberationCompleted):
        return DeliberationOutcome(deliberation_id=result.deliberation_id, task_id=result.task_id, role=result.role,
                                   outcome=Outcome.COMPLETED, winner_id=result.winner.agent_id)
    outcome = Outcome.CANCELLED if result.cancelled_by else Outcome.TIMED_OUT if result.timed_out else Outcome.FAILED
    reason = result.reason
    if len(reason) > MAX_OUTCOME_REASON_CHARS:
        reason = reason[:MAX_OUTCOME_REASON_CHARS] + "..."
    return DeliberationOutcome(deliberation_id=result.deliberation_id, task_id=result.task_id, role=result.role,
                               outcome=outcome, reason=reason)


def evolve(state: PlanOutcomes | None, event: PlanEvent) -> PlanOutcomes:
    """The plan with one more of its events; the same event again changes nothing."""
    if state is None:
        story_id, plan_id = plan_of(event)
        state = PlanOutcomes(story_id=story_id, plan_id=plan_id)
    match event:
        case PlanAccepted() if not state.accepted:
            slots = list(dict.fromkeys(planned.deliberation_id for planned in event.deliberations))
            latest = dict(state.latest)
            for slot in slots:
                latest.setdefault(slot, SlotAttempt(deliberation_id=slot))
            return msgspec.structs.replace(state, slots=slots, latest=latest)
        case DeliberationRequested():
            deliberation_id = event.deliberation.deliberation_id
            slot = event.attempt.first_id if event.attempt else deliberation_id
            attempt = SlotAttempt(deliberation_id=deliberation_id, number=event.attempt.number if event.attempt else 1)
            if slot in state.latest and state.latest[slot].number >= attempt.number:
                return state
            return msgspec.structs.replace(state, latest={**state.latest, slot: attempt})
        case DeliberationCompleted() | DeliberationFailed() if event.deliberation_id not in state.ended:
            return msgspec.structs.replace(state, ended={**state.ended, event.deliberation_id: outcome_of(event)})
    return state


def conclude(state: PlanOutcomes, cause: str) -> tuple[PlanOutcomes, PlanConcluded | None]:
    """The plan concluded anew when every slot's latest attempt has ended and that is news; else unchanged."""
    if not state.accepted:
        return state, None
    attempts = [state.latest[slot].deliberation_id for slot in state.slots]
    if attempts == state.concluded or any(d not in state.ended for d in attempts):
        return state, None
    concluded = msgspec.structs.replace(state, revision=state.revision + 1, concluded=attempts, concluded_by=cause)
    return concluded, conclusion(concluded)


def conclusion(state: PlanOutcomes) -> PlanConcluded:
    """The state's last conclusion, as the event that reports it."""
    outcomes = [state.ended[deliberation_id] for deliberation_id in state.concluded]
    completed = sum(outcome.outcome == Outcome.COMPLETED for outcome in outcomes)
    return PlanConcluded(story_id=state.story_id, plan_id=state.plan_id, outcomes=outcomes, completed=completed,
                         failed=len(outcomes) - completed, revision=state.revision)


def conclusion_id(conclusion: PlanConcluded) -> str:
    """One per plan and revision, so publishing a conclusion again is de-duplicated."""
    return deterministic_id("plan.concluded", conclusion.story_id, conclusion.plan_id, str(conclusion.revision))

